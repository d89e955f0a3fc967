"""A served model: an ONNX output folder loaded once, turning texts (or text pairs) into labels and scores.

The same object answers HTTP requests (through the batcher) and offline calls, so the two give the same
predictions by construction; tests and the load test compare them.
"""

from __future__ import annotations

import json
import logging
import platform
from collections.abc import Sequence
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

import numpy as np
from transformers import AutoConfig, AutoTokenizer, PretrainedConfig

from onnx_approx import runtime
from onnx_approx.plan import Plan

log = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"
PLAN_FILE = "plan.json"
METRICS_FILE = "metrics.json"
OUTPUT_NAME = "logits"
# Padding a batch may add at most this fraction of its real tokens (see `length_groups`).
MAX_PADDING_FRACTION = 0.25
# Tokenizers without a recorded limit report a huge sentinel instead of a length.
_NO_LIMIT = 1_000_000

# One input item: a text, or a (text, text_pair) for sentence-pair tasks.
Item = str | tuple[str, str]


def length_groups(lengths: Sequence[int], max_padding: float = MAX_PADDING_FRACTION) -> list[list[int]]:
    """Indices grouped by length so that padding each group to its longest member adds at most
    `max_padding` x its real tokens. Measured on CPU (MiniLM, 2 threads) a run costs about the same per
    token at batch 1 and 32, so padding a random batch to its longest text made batching a net loss."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    tokens = 0
    for i in order:  # ascending: the newest member is the group's longest
        if groups and (len(groups[-1]) + 1) * lengths[i] <= (1 + max_padding) * (tokens + lengths[i]):
            groups[-1].append(i)
            tokens += lengths[i]
        else:
            groups.append([i])
            tokens = lengths[i]
    return groups


def label_names(config: PretrainedConfig) -> list[str] | None:
    """Class names in id order from an HF config; None for a regression head (one output, a value)."""
    if config.num_labels == 1 or config.problem_type == "regression":
        return None
    return [config.id2label[i] for i in range(config.num_labels)]


class ServedModel:
    """model.onnx + config.json + tokenizer (+ plan.json, metrics.json) of one output folder."""

    def __init__(self, folder: str | Path, *, threads: int | None = None, device: str = "cpu"):
        self.folder = Path(folder)
        model_path = self.folder / MODEL_FILE
        for required in (model_path, self.folder / "config.json"):
            if not required.is_file():
                raise FileNotFoundError(
                    f"{required} not found: pass an output folder of `onnx-approx export` or `onnx-approx passes`"
                )
        self.device = device
        self.config = AutoConfig.from_pretrained(self.folder)
        self.tokenizer = AutoTokenizer.from_pretrained(self.folder)
        self.session = runtime.make_session(model_path, threads=threads, device=device)
        self.uses_custom_ops = runtime.uses_custom_ops(model_path)
        self.input_names = [i.name for i in self.session.get_inputs()]
        outputs = [o.name for o in self.session.get_outputs()]
        if OUTPUT_NAME not in outputs:
            raise ValueError(
                f"{model_path}: serving needs a sequence classification or regression model with output "
                f"'{OUTPUT_NAME}'; this model has outputs {outputs}"
            )
        unknown = set(self.input_names) - {"input_ids", "attention_mask", "token_type_ids"}
        if unknown:
            raise ValueError(f"{model_path}: unexpected model inputs {sorted(unknown)}")
        self.labels = label_names(self.config)
        self.is_regression = self.labels is None
        self.max_length = self._max_length()
        self.plan = Plan.load(self.folder / PLAN_FILE) if (self.folder / PLAN_FILE).is_file() else None
        metrics_path = self.folder / METRICS_FILE
        self.metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else None
        log.info(
            "loaded %s (%s, %s, providers %s)",
            self.folder,
            self.config.model_type,
            "regression" if self.labels is None else f"{len(self.labels)} labels",
            ", ".join(self.session.get_providers()),
        )

    @property
    def name(self) -> str:
        return self.folder.resolve().name

    def _max_length(self) -> int:
        """Tokens per text: the tokenizer's limit, else the position table's size."""
        limit = self.tokenizer.model_max_length
        if limit and limit < _NO_LIMIT:
            return int(limit)
        positions = int(self.config.max_position_embeddings)
        # RoBERTa numbers positions from pad_token_id + 1, so that many table rows are never used by tokens.
        if self.config.model_type == "roberta":
            positions -= int(self.config.pad_token_id) + 1
        return positions

    # -- inference ----------------------------------------------------------------------------
    def tokenize(self, items: Sequence[Item]) -> list[dict[str, list[int]]]:
        """One unpadded encoding per item, truncated to max_length (texts and pairs may be mixed)."""
        rows: list[dict[str, list[int]]] = [{} for _ in items]
        singles = [i for i, item in enumerate(items) if isinstance(item, str)]
        pairs = [i for i, item in enumerate(items) if not isinstance(item, str)]
        if singles:
            enc = self.tokenizer([items[i] for i in singles], truncation=True, max_length=self.max_length)
            for row, pos in enumerate(singles):
                rows[pos] = {key: enc[key][row] for key in enc}
        if pairs:
            firsts, seconds = [items[i][0] for i in pairs], [items[i][1] for i in pairs]
            enc = self.tokenizer(firsts, seconds, truncation=True, max_length=self.max_length)
            for row, pos in enumerate(pairs):
                rows[pos] = {key: enc[key][row] for key in enc}
        return rows

    def pad(self, rows: Sequence[dict[str, list[int]]]) -> dict[str, np.ndarray]:
        """Model feeds (int64) for encodings padded to the longest of them."""
        batch = self.tokenizer.pad(list(rows), padding=True, return_tensors="np")
        feeds = {}
        for name in self.input_names:
            if name in batch:
                feeds[name] = batch[name].astype(np.int64)
            else:  # e.g. a tokenizer that emits no token types for a graph that takes them
                feeds[name] = np.zeros_like(batch["input_ids"], dtype=np.int64)
        return feeds

    def predict(self, items: Sequence[Item]) -> list[dict[str, Any]]:
        """One JSON-ready prediction per item: label, score and all class probabilities, or a value.

        Items are run in groups of similar token length (see `length_groups`), so a short text does not
        pay for the padding of a long one that happens to share its batch.
        """
        if not items:
            return []
        rows = self.tokenize(items)
        logits = np.empty((len(items), self.config.num_labels), dtype=np.float32)
        for group in length_groups([len(row["input_ids"]) for row in rows]):
            logits[group] = self.session.run([OUTPUT_NAME], self.pad([rows[i] for i in group]))[0]
        return self.to_predictions(logits)

    def to_predictions(self, logits: np.ndarray) -> list[dict[str, Any]]:
        if self.is_regression:
            return [{"value": float(row[0])} for row in logits]
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted)
        probs /= probs.sum(axis=1, keepdims=True)
        predictions = []
        for row in probs:
            best = int(row.argmax())
            predictions.append(
                {
                    "label": self.labels[best],
                    "score": float(row[best]),
                    "scores": {label: float(p) for label, p in zip(self.labels, row)},
                }
            )
        return predictions

    # -- description --------------------------------------------------------------------------
    def task(self) -> str:
        """The task name recorded in metrics.json, else what the head does."""
        if self.metrics and isinstance(self.metrics.get("task"), str):
            return self.metrics["task"]
        return "regression" if self.is_regression else "classification"

    def metadata(self) -> dict[str, Any]:
        model_path = self.folder / MODEL_FILE
        return {
            "model": {
                "name": self.name,
                "path": str(self.folder.resolve()),
                "model_type": self.config.model_type,
                "architectures": self.config.architectures,
                "labels": self.labels,
                "regression": self.is_regression,
                "inputs": self.input_names,
                "max_length": self.max_length,
                "size_bytes": model_path.stat().st_size,
                "uses_custom_ops": self.uses_custom_ops,
            },
            "task": self.task(),
            "plan": self.plan.summary() if self.plan else None,
            "metrics": self.metrics,
            "runtime": {"device": self.device, "providers": self.session.get_providers()},
            "versions": _versions(),
        }


def _versions() -> dict[str, str]:
    """Versions of what decides the numbers (ORT by module: the GPU wheel has another distribution name)."""
    import onnx
    import onnxruntime
    import tokenizers
    import transformers

    versions = {
        "python": platform.python_version(),
        "onnxruntime": onnxruntime.__version__,
        "onnx": onnx.__version__,
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
    }
    for package in ("onnx-approx", "starlette", "uvicorn"):
        try:
            versions[package] = importlib_metadata.version(package)
        except importlib_metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions
