"""One training loop for fine-tuning and recovery: AdamW, linear warm-up/decay, length-grouped dynamic batches."""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase, get_linear_schedule_with_warmup

from onnx_approx.data import TaskSpec
from onnx_approx.dataset import EncodedDataset, encode_dataset
from onnx_approx.distill import Distillation
from onnx_approx.features import length_grouped_batches
from onnx_approx.train_config import TrainConfig

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """No weight decay on biases and LayerNorm weights (the usual BERT recipe)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (no_decay if param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    examples: list,
    config: TrainConfig,
    *,
    uses_token_type_ids: bool = True,
    on_step: Callable[[int, float], None] | None = None,
    distillation: Distillation | None = None,
) -> dict[str, Any]:
    """Fine-tune `model` in place on `examples`; returns a summary (steps, final loss, seconds).
    With `distillation`, the loss blends the task loss with matching the teacher's outputs.

    Works for any module with the Hugging Face forward signature (labels in, `.loss` out), so gated,
    pruned and fake-quantized models train with the same loop.
    """
    seed_everything(config.seed)
    data: EncodedDataset = encode_dataset(tokenizer, task, examples, config.max_seq_len)
    steps_per_epoch = math.ceil(len(data) / config.batch_size)
    total_steps = max(1, math.ceil(steps_per_epoch * config.epochs))
    optimizer = torch.optim.AdamW(_param_groups(model, config.weight_decay), lr=config.lr, fused=True)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)

    model.train()
    step, losses, start = 0, [], time.perf_counter()
    bar = tqdm(total=total_steps, desc=f"train {task.name}", unit="step", dynamic_ncols=True)
    epoch = 0
    while step < total_steps:
        batches = length_grouped_batches(data.lengths, config.batch_size, seed=config.seed + epoch)
        for indices in batches:
            if step >= total_steps:
                break
            batch = data.collate(indices, with_token_type_ids=uses_token_type_ids, with_labels=True)
            outputs = model(**batch)
            loss = outputs.loss if distillation is None else distillation.loss(outputs, batch)
            loss.backward()
            if config.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            losses.append(loss.item())
            if on_step is not None:
                on_step(step, losses[-1])
            bar.update(1)
            if step % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", epoch=epoch)
        epoch += 1
    bar.close()
    model.eval()
    seconds = time.perf_counter() - start
    summary = {"steps": step, "epochs": config.epochs, "train_loss": float(np.mean(losses[-100:])), "seconds": seconds}
    log.info("trained %d steps in %.0f s, final loss %.4f", step, seconds, summary["train_loss"])
    return summary
