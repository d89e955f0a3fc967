"""The things the benchmark times: an engine plus the facts the table reports (file size, where it came from)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_approx.evaluate import Engine, OrtEngine
from onnx_approx.export import ONNX_FILE
from onnx_approx.io_utils import read_json

WEIGHT_SUFFIXES = (".safetensors", ".bin")


@dataclass
class BenchEngine:
    """One engine to time. `engine` runs padded int64 batches (`onnx_approx.evaluate.Engine`); `path` is the
    measured .onnx file, or the PyTorch model folder; `tokenizer_dir` (for accuracy) and the config limits
    come from the model's folder when it has them."""

    name: str
    engine: Engine
    path: Path
    size_bytes: int
    baseline: bool = False
    tokenizer_dir: Path | None = None
    vocab_size: int | None = None
    max_positions: int | None = None


def folder_facts(folder: Path) -> dict[str, Any]:
    """Tokenizer folder, vocabulary size and position limit from a model folder's files, where present."""
    config = read_json(folder / "config.json") if (folder / "config.json").is_file() else {}
    return {
        "tokenizer_dir": folder if (folder / "tokenizer_config.json").is_file() else None,
        "vocab_size": config.get("vocab_size"),
        "max_positions": config.get("max_position_embeddings"),
    }


def onnx_file_of(path: str | Path) -> Path:
    """The .onnx file of a model folder (its model.onnx) or the file itself; clear errors otherwise."""
    path = Path(path)
    if path.is_dir():
        onnx_file = path / ONNX_FILE
        if not onnx_file.is_file():
            pytorch = (path / "config.json").is_file()
            hint = " (a PyTorch folder: export it with `onnx-approx export`)" if pytorch else ""
            raise FileNotFoundError(f"no {ONNX_FILE} in model folder {path}{hint}")
        return onnx_file
    if not path.exists():
        raise FileNotFoundError(f"model not found: {path}")
    if path.suffix != ".onnx":
        raise ValueError(f"model {path} is neither a folder with {ONNX_FILE} nor an .onnx file")
    return path


def onnx_engine(name: str, path: str | Path, threads: int | None, *, baseline: bool = False) -> BenchEngine:
    """An ORT engine (full optimization, no spinning, custom ops registered when needed) for a model folder or
    .onnx file."""
    from onnx_approx.runtime import make_session

    onnx_file = onnx_file_of(path)
    return BenchEngine(name, OrtEngine(make_session(onnx_file, threads=threads), name=name), onnx_file,
                       onnx_file.stat().st_size, baseline, **folder_facts(onnx_file.parent))


def torch_engine(name: str, folder: str | Path, *, baseline: bool = True) -> BenchEngine:
    """PyTorch eager fp32 for an HF model folder; its size is that of the weight files."""
    from onnx_approx.evaluate import TorchEngine
    from onnx_approx.modeling import load_model

    loaded = load_model(folder)
    folder = Path(loaded.source)
    size = sum(f.stat().st_size for f in folder.iterdir() if f.suffix in WEIGHT_SUFFIXES)
    return BenchEngine(name, TorchEngine(loaded.model, loaded.uses_token_type_ids, name=name), folder, size,
                       baseline, **folder_facts(folder))


def model_name(path: Path) -> str:
    """A short name for a user model: its folder's name, or the file's stem when that says more."""
    onnx_file = onnx_file_of(path)
    return onnx_file.parent.name if onnx_file.name == ONNX_FILE else onnx_file.stem


def open_models(paths: list[str | Path], threads: int | None, taken: set[str] | None = None) -> dict[str, BenchEngine]:
    """Engines for user models (folders written by `export`/`passes`, or .onnx files), named after them;
    a name already used (in `taken` or twice here) gets a numeric suffix."""
    used = set(taken or ())
    engines = {}
    for path in paths:
        base = name = model_name(Path(path))
        n = 2
        while name in used:
            name, n = f"{base}-{n}", n + 1
        used.add(name)
        engines[name] = onnx_engine(name, path, threads)
    return engines
