"""Finding the data folder, loading a task's split, seeded subsets and the validation split carved from train."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from onnx_approx.data.glue import LAYOUTS, load_glue_split
from onnx_approx.data.squad import load_squad, squad_file
from onnx_approx.data.tasks import Example, QAExample, TaskSpec, get_task

ENV_VAR = "ONNX_APPROX_DATA"
_REPO_ROOT = Path(__file__).resolve().parents[2]

T = TypeVar("T", Example, QAExample)


def resolve_data_dir(arg: str | Path | None = None) -> Path:
    """The data folder: `arg` (--data-dir), else $ONNX_APPROX_DATA, else ../shared/data from the working
    directory, else ../shared/data from the repository root. An explicit choice that is missing is an error."""
    for value, origin in ((arg, "--data-dir"), (os.environ.get(ENV_VAR), f"${ENV_VAR}")):
        if value:
            path = Path(value).expanduser()
            if not path.is_dir():
                raise FileNotFoundError(f"data folder {path} (from {origin}) not found")
            return path
    tried = [Path.cwd() / ".." / "shared" / "data", _REPO_ROOT.parent / "shared" / "data"]
    for path in tried:
        if path.is_dir():
            return path.resolve()
    raise FileNotFoundError(f"no data folder found (tried {', '.join(str(p) for p in tried)}); "
                            f"pass --data-dir DIR or set {ENV_VAR}=DIR")


def load_split(task: TaskSpec | str, split: str, data_dir: str | Path | None = None,
               max_samples: int | None = None, seed: int = 0) -> list[Example] | list[QAExample]:
    """Examples of `split` ("train", "dev", and "val"/"test" where the task has them), optionally a seeded
    random subset of `max_samples` kept in file order."""
    task = get_task(task)
    data_dir = resolve_data_dir(data_dir)
    if task.kind == "qa":
        examples = load_squad(squad_file(split, data_dir))
    elif task.name in LAYOUTS:
        examples = load_glue_split(task, split, data_dir)
    else:
        raise ValueError(f"task {task.name!r} has no files in the data folder; read its table with load_table")
    return subsample(examples, max_samples, seed)


def subsample(examples: Sequence[T], max_samples: int | None, seed: int = 0) -> list[T]:
    """A seeded random subset of at most `max_samples`, in the original order (all when None)."""
    if max_samples is None or max_samples >= len(examples):
        return list(examples)
    if max_samples < 1:
        raise ValueError(f"max_samples must be at least 1, got {max_samples}")
    keep = np.sort(np.random.default_rng(seed).choice(len(examples), size=max_samples, replace=False))
    return [examples[i] for i in keep]


def carve_validation(examples: Sequence[T], fraction: float = 0.1, max_samples: int | None = None,
                     seed: int = 0, stratify: bool = True) -> tuple[list[T], list[T]]:
    """Split train into (rest, validation), seeded; stratified by class when labels are class ids.

    The validation split (round(fraction * n) examples, at most `max_samples`) is what significance
    analysis measures on, so the dev set stays untouched. Both parts keep the original order.
    """
    n = len(examples)
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be between 0 and 1, got {fraction}")
    n_val = max(1, round(fraction * n))
    if max_samples is not None:
        if max_samples < 1:
            raise ValueError(f"max_samples must be at least 1, got {max_samples}")
        n_val = min(n_val, max_samples)
    if n_val >= n:
        raise ValueError(f"cannot carve a validation split from {n} examples: nothing would be left to train on")
    rng = np.random.default_rng(seed)
    labels = [getattr(ex, "label", None) for ex in examples]
    if stratify and all(isinstance(y, int) for y in labels):
        val_idx = _stratified_pick(np.asarray(labels), n_val, rng)
    else:
        val_idx = rng.choice(n, size=n_val, replace=False)
    is_val = np.zeros(n, dtype=bool)
    is_val[val_idx] = True
    return ([ex for ex, v in zip(examples, is_val) if not v], [ex for ex, v in zip(examples, is_val) if v])


def _stratified_pick(labels: np.ndarray, n_val: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `n_val` examples with class shares as in `labels` (largest remainder rounding)."""
    classes, counts = np.unique(labels, return_counts=True)
    quota = n_val * counts / counts.sum()
    take = np.floor(quota).astype(int)
    by_remainder = np.argsort(-(quota - take), kind="stable")
    take[by_remainder[: n_val - take.sum()]] += 1
    picked = [rng.permutation(np.flatnonzero(labels == c))[:k] for c, k in zip(classes, take)]
    return np.concatenate(picked)
