"""Fine-tuning settings (torch-free, so the CLI can show defaults without importing PyTorch)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass
class TrainConfig:
    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 32
    max_seq_len: int = 128
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    seed: int = 42
    max_train_samples: int | None = None  # applied by the caller when it loads the data
    max_dev_samples: int | None = None  # fine-tuning scores a seeded subset of dev (SQuAD's 10,570: ~1 h a core)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
