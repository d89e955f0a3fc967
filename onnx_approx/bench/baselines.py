"""The conventional engines an approximated model is compared with, built from the fine-tuned HF folder.

- `torch`: PyTorch eager fp32.
- `ort-fp32`: our dynamo export with onnxscript's ORT fusions (`apply_plan` with a plan that changes nothing).
- `ort-int8`: that model, dynamically quantized as optimum's avx512_vnni configuration does.
- `ort-int8-fused`: TorchScript export, ORT's `onnxruntime.transformers` BERT optimizer, the same quantization:
  the strongest int8 baseline a user has today (fused attention becomes QAttention).
- `ort-int8-static`: `ort-fp32` with static QDQ int8 (u8 activations calibrated on training examples).

Each ONNX baseline is a model folder (model.onnx, config.json, tokenizer) under the work folder, with
`baseline.json` recording the fingerprint of what it was built from (the reference's config and weights,
the recipe version, the ONNX Runtime / onnxscript / torch versions, the calibration inputs): a folder whose
fingerprint matches is reused, otherwise rebuilt atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from onnx_approx.bench.engines import WEIGHT_SUFFIXES, BenchEngine, onnx_engine, torch_engine
from onnx_approx.data import TaskSpec
from onnx_approx.export import ONNX_FILE, TOKENIZER_FILES
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, read_json

log = logging.getLogger(__name__)

BASELINES = ("torch", "ort-fp32", "ort-int8", "ort-int8-fused", "ort-int8-static")
FP32_BASELINE = "ort-fp32"
STATIC_BASELINE = "ort-int8-static"
INFO_FILE = "baseline.json"
RECIPE_VERSION = 1  # bump when a recipe below changes, so cached baselines are rebuilt
_NEEDS_FP32 = ("ort-int8", STATIC_BASELINE)


def folder_fingerprint(folder: Path) -> str:
    """sha256 of a model folder's config.json and weight files (names and contents)."""
    digest = hashlib.sha256()
    files = sorted(f for f in folder.iterdir() if f.name == "config.json" or f.suffix in WEIGHT_SUFFIXES)
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def _feeds_fingerprint(feeds: list[dict[str, np.ndarray]]) -> str:
    digest = hashlib.sha256()
    for feed in feeds:
        for name in sorted(feed):
            digest.update(name.encode() + np.ascontiguousarray(feed[name]).tobytes())
    return digest.hexdigest()


def calibration_feeds(
    folder: Path, examples: Sequence, input_names: Sequence[str], task: TaskSpec | None = None
) -> list[dict[str, np.ndarray]]:
    """One feed dict per example, tokenized by the reference's tokenizer (`task` for QA windows; sentence or
    sentence-pair examples need none), restricted to the model's inputs."""
    from transformers import AutoTokenizer

    from onnx_approx.dataset import EncodedDataset, default_max_seq_len, encode_dataset
    from onnx_approx.features import encode_examples

    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples = list(examples)
    if task is not None:
        data = encode_dataset(tokenizer, task, examples, default_max_seq_len(task))
    else:
        data = EncodedDataset(encode_examples(tokenizer, examples), tokenizer.pad_token_id)
    with_types = "token_type_ids" in input_names
    feeds = []
    for i in range(len(data)):
        batch = data.collate([i], with_token_type_ids=with_types, with_labels=False, return_tensors="np")
        feeds.append({name: batch[name] for name in input_names})
    return feeds


class BaselineBuilder:
    """Builds (or reuses) the baselines of one reference folder inside `work_dir`."""

    def __init__(self, reference: Path, work_dir: Path, calibration: list[dict[str, np.ndarray]] | None = None):
        self.reference, self.work_dir, self.calibration = reference, work_dir, calibration
        self.source = folder_fingerprint(reference)
        self.built: list[str] = []
        self._loaded = None

    @property
    def loaded(self):
        """The reference PyTorch model, loaded on first use (cached baselines need no PyTorch)."""
        if self._loaded is None:
            from onnx_approx.modeling import load_model

            self._loaded = load_model(self.reference)
        return self._loaded

    def fingerprint(self, name: str) -> str:
        inputs: dict[str, Any] = {
            "baseline": name, "recipe": RECIPE_VERSION, "source": self.source,
            "versions": {p: version(p) for p in ("onnxruntime", "onnxscript", "torch")},
        }
        if name == STATIC_BASELINE:
            inputs["calibration"] = _feeds_fingerprint(self.calibration or [])
        return hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()

    def ensure(self, name: str) -> Path:
        """The folder of baseline `name`, built unless a folder with the same fingerprint exists."""
        folder = self.work_dir / name
        fingerprint = self.fingerprint(name)
        info = folder / INFO_FILE
        if info.is_file() and (folder / ONNX_FILE).is_file() and read_json(info).get("fingerprint") == fingerprint:
            log.debug("baseline %s: reusing %s", name, folder)
            return folder
        if name in _NEEDS_FP32:
            self.ensure(FP32_BASELINE)
        log.info("baseline %s: building in %s", name, folder)
        build = {FP32_BASELINE: self._build_ort_fp32, "ort-int8": self._build_ort_int8,
                 "ort-int8-fused": self._build_ort_int8_fused, STATIC_BASELINE: self._build_ort_int8_static}[name]
        with atomic_output_dir(folder, overwrite=True) as tmp, tempfile.TemporaryDirectory() as scratch:
            details = build(tmp / ONNX_FILE, Path(scratch))
            for file_name in ("config.json", *TOKENIZER_FILES):
                if (self.reference / file_name).is_file():
                    shutil.copy2(self.reference / file_name, tmp / file_name)
            record = {"baseline": name, "fingerprint": fingerprint, "reference": str(self.reference), **details}
            atomic_write_text(tmp / INFO_FILE, json.dumps(record, indent=2) + "\n")
        self.built.append(name)
        return folder

    def _build_ort_fp32(self, target: Path, scratch: Path) -> dict[str, Any]:
        import onnx_ir as ir

        from graph_passes.apply import apply_plan
        from onnx_approx.export import export_onnx
        from onnx_approx.plan import Plan

        loaded = self.loaded
        export = export_onnx(loaded.model, scratch / "export.onnx")
        model_type = loaded.model.config.model_type
        fused, report = apply_plan(export, Plan.identity(model_type, loaded.dims()), model_type=model_type)
        ir.save(fused, target)
        return {"fusions": report.fusions}

    def _build_ort_int8(self, target: Path, scratch: Path) -> dict[str, Any]:
        from onnx_approx.bench.quantization import quantize_dynamic_avx512_vnni

        quantize_dynamic_avx512_vnni(self.work_dir / FP32_BASELINE / ONNX_FILE, target)
        return {"quantization": "dynamic, optimum avx512_vnni (s8 symmetric per-channel weights, u8 activations)"}

    def _build_ort_int8_fused(self, target: Path, scratch: Path) -> dict[str, Any]:
        from onnxruntime.transformers.optimizer import optimize_model

        from onnx_approx.bench.quantization import quantize_dynamic_avx512_vnni
        from onnx_approx.export import export_onnx_torchscript

        loaded = self.loaded
        export = export_onnx_torchscript(loaded.model, scratch / "torchscript.onnx", eager_attention=True)
        dims = loaded.dims()
        optimized = optimize_model(str(export), model_type="bert", num_heads=dims["num_heads"],
                                   hidden_size=dims["hidden_size"])
        optimized.save_model_to_file(str(scratch / "optimized.onnx"))
        quantize_dynamic_avx512_vnni(scratch / "optimized.onnx", target)
        fusions = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v}
        return {"fusions": fusions, "quantization": "dynamic, optimum avx512_vnni"}

    def _build_ort_int8_static(self, target: Path, scratch: Path) -> dict[str, Any]:
        from onnx_approx.bench.quantization import quantize_static_qdq

        quantize_static_qdq(self.work_dir / FP32_BASELINE / ONNX_FILE, target, self.calibration or [])
        return {"quantization": "static QDQ (u8 activations MinMax-calibrated, s8 symmetric per-channel weights)",
                "calibration_samples": len(self.calibration or [])}


def _resolve_names(names: Sequence[str] | None, has_calibration: bool) -> list[str]:
    if names is None:
        if not has_calibration:
            log.info("baseline %s left out: no calibration examples given", STATIC_BASELINE)
        return [n for n in BASELINES if n != STATIC_BASELINE or has_calibration]
    unknown = [n for n in names if n not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    if STATIC_BASELINE in names and not has_calibration:
        raise ValueError(f"baseline {STATIC_BASELINE} needs calibration examples (the CLI: --task with a train split)")
    return list(dict.fromkeys(names))


def build_baselines(
    reference_dir: str | Path,
    work_dir: str | Path,
    names: Sequence[str] | None = None,
    calibration_examples: Sequence | None = None,
    threads: int | None = None,
    *,
    task: TaskSpec | None = None,
) -> dict[str, BenchEngine]:
    """Engines of the baselines `names` (default: all of BASELINES; `ort-int8-static` only with calibration
    examples) for the fine-tuned HF folder `reference_dir`, their files cached in `work_dir`.

    `calibration_examples`: training examples (Example, or QAExample with `task`) for the static baseline.
    `threads`: ORT intra-op threads (PyTorch threads are set when timing).
    """
    from onnx_approx.model_sources import resolve_model_source

    reference = Path(resolve_model_source(reference_dir))
    if not reference.is_dir():
        raise FileNotFoundError(f"reference model folder not found: {reference_dir}")
    names = _resolve_names(names, bool(calibration_examples))
    builder = BaselineBuilder(reference, Path(work_dir))
    if STATIC_BASELINE in names:
        import onnx

        fp32 = onnx.load(str(builder.ensure(FP32_BASELINE) / ONNX_FILE), load_external_data=False)
        inputs = [i.name for i in fp32.graph.input]
        builder.calibration = calibration_feeds(reference, calibration_examples, inputs, task)
    engines = {}
    for name in names:
        if name == "torch":
            engines[name] = torch_engine(name, reference)
        else:
            engines[name] = onnx_engine(name, builder.ensure(name), threads, baseline=True)
    reused = [n for n in names if n != "torch" and n not in builder.built]
    log.info("baselines in %s: built %s; reused %s", work_dir, ", ".join(builder.built) or "none",
             ", ".join(reused) or "none")
    return engines
