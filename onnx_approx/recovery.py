"""Recovery fine-tuning with a plan active: the pruned model trains, int8/int4 matrices through fake
quantization with a straight-through estimator (their fp32 latent weights learn).

By default training continues from the fine-tuned model; `start_from` restarts from other weights (e.g. the
pre-trained model, as the AxFormer authors do) with the same plan. The recovered weights are also written
back into a full-size copy (`scatter_into`), which is what ONNX export + graph passes take with the plan.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

from torch import nn
from transformers import PreTrainedTokenizerBase

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.data import TaskSpec, subsample
from onnx_approx.distill import Distillation
from onnx_approx.modeling import load_model
from onnx_approx.plan import Plan
from onnx_approx.pruning import scatter_into
from onnx_approx.train import TrainConfig, seed_everything, train

log = logging.getLogger(__name__)

CONTINUE_LR = 2e-5  # continuing from a fine-tuned model wants a gentler rate than fine-tuning from scratch


@dataclass
class RecoveryConfig:
    epochs: float = 1.0
    lr: float | None = None  # default: 2e-5 when continuing, the fine-tuning default when restarting
    start_from: str | None = None  # model alias/folder to restart from instead of the fine-tuned weights
    batch_size: int = 32
    seed: int = 42
    max_train_samples: int | None = None
    distill: float = 0.0  # weight of matching the fine-tuned model's outputs (0: labels only)

    def __post_init__(self) -> None:
        if not 0.0 <= self.distill <= 1.0:  # refused before a search, not when recovery starts
            raise ValueError(f"recovery distill weight must be in [0, 1], got {self.distill}")

    def train_config(self, max_seq_len: int) -> TrainConfig:
        lr = self.lr if self.lr is not None else (CONTINUE_LR if self.start_from is None else TrainConfig().lr)
        return TrainConfig(epochs=self.epochs, lr=lr, batch_size=self.batch_size, max_seq_len=max_seq_len,
                           seed=self.seed, max_train_samples=self.max_train_samples)


def recover(model: nn.Module, plan: Plan, tokenizer: PreTrainedTokenizerBase, task: TaskSpec, examples: list,
            config: RecoveryConfig, *, uses_token_type_ids: bool, max_seq_len: int,
            teacher: nn.Module | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Train `plan` applied to `model` (or to `config.start_from`) on `examples` (a seeded subset of
    `config.max_train_samples` of them when set). With `config.distill` > 0 the pruned model also
    learns the outputs of `teacher` (default: `model` as given).

    Returns (full-size model holding the trained weights, training summary); `model` is not changed.
    Apply the plan to the returned model (`apply_plan_torch`) for the trained approximated model.
    """
    seed_everything(config.seed)  # restarting from weights without this task's head draws a new one
    start = copy.deepcopy(model) if config.start_from is None else load_model(config.start_from, task).model
    full = copy.deepcopy(start)
    pruned = apply_plan_torch(start, plan, mode="prune")
    train_config = config.train_config(max_seq_len)
    examples = subsample(examples, config.max_train_samples, config.seed)
    log.info("recovery: %.2g epochs on %d examples at lr %.1e from %s", train_config.epochs, len(examples),
             train_config.lr, config.start_from or "the fine-tuned model")
    distillation = None
    if config.distill > 0:
        distillation = Distillation((teacher if teacher is not None else model).eval(), config.distill)
    summary = train(pruned, tokenizer, task, examples, train_config, uses_token_type_ids=uses_token_type_ids,
                    distillation=distillation)
    summary["distill"] = config.distill
    summary["start_from"] = config.start_from or "fine-tuned"
    return scatter_into(full, pruned, plan).eval(), summary
