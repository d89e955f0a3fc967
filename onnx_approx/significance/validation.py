"""The validation split that significance analysis and the search measure on, encoded and batched once.

It is the task's own "val" split where one exists (AxFormer splits, a table task's --val-file), otherwise a
seeded, stratified slice carved from train. Never the dev set: dev is what the final result is reported on.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from onnx_approx.data import TaskSpec, carve_validation
from onnx_approx.data.glue import LAYOUTS
from onnx_approx.dataset import EncodedDataset, encode_dataset
from onnx_approx.evaluate import predictions_from_outputs, references_of
from onnx_approx.features import in_original_order, sorted_batches
from onnx_approx.metrics import compute_metrics
from onnx_approx.task_data import TaskData

log = logging.getLogger(__name__)


def has_val_split(data: TaskData) -> bool:
    if data.files:
        return "val" in data.files
    return data.task.name in LAYOUTS and "val" in LAYOUTS[data.task.name].splits


def validation_examples(data: TaskData, fraction: float = 0.1, max_samples: int | None = 2000,
                        seed: int = 0) -> tuple[list, list, str]:
    """(validation examples, the training examples not in it, where validation came from)."""
    train = data.load("train")
    if has_val_split(data):
        val = data.load("val", max_samples=max_samples, seed=seed)
        return val, train, f"{data.task.name} val split ({len(val)} examples)"
    rest, val = carve_validation(train, fraction=fraction, max_samples=max_samples, seed=seed)
    return val, rest, f"{len(val)} examples carved from {data.task.name} train (fraction {fraction}, seed {seed})"


@dataclass
class ValidationSet:
    """Examples, their features, and length-sorted padded batches (with targets) built once."""

    task: TaskSpec
    examples: list
    data: EncodedDataset
    batches: list[list[int]]
    inputs: list[dict[str, torch.Tensor]]

    @classmethod
    def build(cls, tokenizer: Any, task: TaskSpec, examples: list, *, uses_token_type_ids: bool,
              max_seq_len: int = 128, batch_size: int = 128) -> "ValidationSet":
        data = encode_dataset(tokenizer, task, examples, max_seq_len)
        batches = sorted_batches(data.lengths, batch_size)
        inputs = [data.collate(b, with_token_type_ids=uses_token_type_ids, with_labels=True) for b in batches]
        log.info("validation set: %d features in %d batches, %d tokens", len(data), len(batches), sum(data.lengths))
        return cls(task, examples, data, batches, inputs)

    def __len__(self) -> int:
        return len(self.data)

    def in_order(self, per_batch: list[np.ndarray]) -> np.ndarray:
        """Per-batch rows (first axis) stacked back into feature order."""
        return in_original_order(self.batches, per_batch)

    def metrics(self, outputs: dict[str, np.ndarray]) -> dict[str, float]:
        """The task's metrics from outputs in feature order (logits, or start/end logits for QA)."""
        predictions = predictions_from_outputs(self.task, self.data, outputs, self.examples)
        return compute_metrics(self.task, predictions, references_of(self.task, self.examples))


def per_sample_loss(task: TaskSpec, outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Loss of each row of `batch`, as the HF heads compute it before averaging ([B]). For QA, padding
    positions are left out of the start/end softmax, so a sample's loss does not depend on its batch."""
    if task.kind == "qa":
        padding = batch["attention_mask"] == 0
        losses = [torch.nn.functional.cross_entropy(logits.masked_fill(padding, torch.finfo(logits.dtype).min),
                                                    batch[target], reduction="none")
                  for logits, target in ((outputs.start_logits, "start_positions"), (outputs.end_logits, "end_positions"))]
        return (losses[0] + losses[1]) / 2
    if task.kind == "regression":
        return (outputs.logits.squeeze(-1) - batch["labels"]) ** 2
    return torch.nn.functional.cross_entropy(outputs.logits, batch["labels"], reduction="none")


def model_inputs(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The batch without its targets (losses are computed per sample, not by the model)."""
    return {k: v for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def output_arrays(task: TaskSpec, outputs: Any, width: int) -> dict[str, np.ndarray]:
    """The outputs metrics need, as NumPy; QA logits padded to `width` positions so batches stack."""
    if task.kind != "qa":
        return {"logits": outputs.logits.detach().float().numpy()}
    arrays = {}
    for name in ("start_logits", "end_logits"):
        value = outputs[name].detach().float()
        arrays[name] = torch.nn.functional.pad(value, (0, width - value.shape[-1]), value=-1e4).numpy()
    return arrays
