"""Knowledge distillation for recovery: the pruned model also learns the fine-tuned model's outputs.

Matching the teacher's softened distribution carries more than the labels (how sure the teacher is, and
about which classes), which is what a pruned model needs to recover; the usual recipe of
pruning work such as DynaBERT and CoFi.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

OUTPUT_NAMES = ("logits", "start_logits", "end_logits")  # classification / regression, extractive QA


@dataclass
class Distillation:
    """`weight` of the distillation term in the loss (the task loss keeps 1 - weight), at `temperature`."""

    teacher: nn.Module
    weight: float
    temperature: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.weight <= 1.0:
            raise ValueError(f"distillation weight must be in (0, 1], got {self.weight}")
        if self.temperature <= 0:
            raise ValueError(f"distillation temperature must be positive, got {self.temperature}")

    def loss(self, student_outputs: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The blended loss of one batch, given the student's outputs (with its task `.loss`)."""
        with torch.no_grad():
            teacher_outputs = self.teacher(**batch)
        matched = distillation_loss(student_outputs, teacher_outputs, self.temperature)
        return (1.0 - self.weight) * student_outputs.loss + self.weight * matched


def distillation_loss(student: Any, teacher: Any, temperature: float) -> torch.Tensor:
    """Mean over the model's outputs (logits; start and end logits for QA) of the temperature-scaled
    KL divergence KL(teacher || student) * T^2, or the squared error for a single regression output."""
    terms = []
    for name in OUTPUT_NAMES:
        s, t = getattr(student, name, None), getattr(teacher, name, None)
        if s is None or t is None:
            continue
        if s.shape[-1] == 1:
            terms.append(F.mse_loss(s, t))
        else:
            log_s = F.log_softmax(s / temperature, dim=-1)
            log_t = F.log_softmax(t / temperature, dim=-1)
            terms.append(F.kl_div(log_s, log_t, reduction="batchmean", log_target=True) * temperature**2)
    if not terms:
        raise ValueError(f"no output to distil: expected one of {OUTPUT_NAMES}")
    return torch.stack(terms).mean()
