"""The fine-tuning job: load, train on the task's train split, score on dev, save atomically."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from onnx_approx.evaluate import TorchEngine, evaluate_engine
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, check_output_dir
from onnx_approx.modeling import load_model
from onnx_approx.task_data import TaskData
from onnx_approx.train import train
from onnx_approx.train_config import TrainConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def finetune(
    model: str,
    data: TaskData,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune `model` on `data`'s train split; OUT holds HF weights, tokenizer, config and metrics.json (dev)."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)  # refuse before any training work
    task = data.task
    train_examples = data.load("train", max_samples=config.max_train_samples, seed=config.seed)
    dev_examples = data.load("dev")
    loaded = load_model(model, task)
    summary = train(
        loaded.model, loaded.tokenizer, task, train_examples, config, uses_token_type_ids=loaded.uses_token_type_ids
    )
    result = evaluate_engine(
        TorchEngine(loaded.model, loaded.uses_token_type_ids), loaded.tokenizer, task, dev_examples,
        max_seq_len=config.max_seq_len,
    )
    metrics = {
        "task": task.name,
        "split": "dev",
        "main_metric": task.main_metric,
        "dev": result.metrics,
        "model": str(model),
        "train": {**summary, "config": config.to_dict(), "samples": len(train_examples)},
    }
    log.info("dev %s = %.4f", task.main_metric, result.main_value)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        loaded.model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
