"""A task's examples encoded once, ready to be cut into padded batches by index."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from onnx_approx.data import TaskSpec
from onnx_approx.features import TARGETS, collate, encode_examples, prepare_qa_features

QA_MAX_SEQ_LEN = 384  # the usual SQuAD window; callers pass it as max_seq_len for QA tasks


def default_max_seq_len(task: TaskSpec) -> int:
    return QA_MAX_SEQ_LEN if task.kind == "qa" else 128


@dataclass
class EncodedDataset:
    """Columnar token features (one row per model input; QA contexts may give several rows per example)."""

    features: dict[str, list]
    pad_id: int

    def __len__(self) -> int:
        return len(self.features["input_ids"])

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.features["input_ids"]]

    @property
    def qa_features(self) -> dict[str, list]:
        return self.features

    def collate(
        self, indices: Sequence[int], *, with_token_type_ids: bool, with_labels: bool, return_tensors: str = "pt"
    ) -> dict[str, Any]:
        batch = collate(self.features, self.pad_id, with_token_type_ids, return_tensors=return_tensors, indices=indices)
        if not with_labels:
            for key in TARGETS:
                batch.pop(key, None)
        return batch


def encode_dataset(tokenizer: Any, task: TaskSpec, examples: list, max_seq_len: int) -> EncodedDataset:
    """Tokenize `examples` for `task`: sentence(-pair) inputs with labels, or overlapping QA windows."""
    if task.kind == "qa":
        stride = min(128, max_seq_len // 4)  # 128 at the usual 384 window
        features = prepare_qa_features(tokenizer, examples, max_length=max_seq_len, doc_stride=stride)
    else:
        features = encode_examples(tokenizer, examples, max_length=max_seq_len)
    return EncodedDataset(features=features, pad_id=tokenizer.pad_token_id)
