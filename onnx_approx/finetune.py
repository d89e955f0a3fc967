"""The fine-tuning job: load, train on the task's train split, score on dev, save atomically.

With `hold_out` it trains on the train split minus the validation split that analyze/approximate carve with
the same settings, so the significance analysis measures on samples the model has not seen.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnx_approx.data import subsample
from onnx_approx.evaluate import TorchEngine, evaluate_engine
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, check_output_dir
from onnx_approx.modeling import load_model
from onnx_approx.significance.validation import validation_examples
from onnx_approx.task_data import TaskData
from onnx_approx.train import seed_everything, train
from onnx_approx.train_config import TrainConfig

if TYPE_CHECKING:
    from onnx_approx.significance.analysis import AnalysisConfig

log = logging.getLogger(__name__)

METRICS_FILE = "metrics.json"


def finetune(
    model: str,
    data: TaskData,
    out_dir: str | Path,
    config: TrainConfig,
    *,
    hold_out: AnalysisConfig | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Fine-tune `model` on `data`'s train split (without the validation split `hold_out` describes, if
    given); OUT holds HF weights, tokenizer, config and metrics.json (dev, or `config.max_dev_samples` of it)."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)  # refuse before any training work
    task = data.task
    held_out = None
    if hold_out is None:
        pool = data.load("train")
    else:
        _, pool, held_out = validation_examples(data, hold_out.val_fraction, hold_out.val_samples, hold_out.seed)
        log.info("holding out the validation split: %s", held_out)
    train_examples = subsample(pool, config.max_train_samples, config.seed)
    dev_examples = data.load("dev", max_samples=config.max_dev_samples, seed=config.seed)
    seed_everything(config.seed)  # a model without this task's head gets a new one, drawn from the global RNG
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
        "dev_samples": len(dev_examples),
        "main_metric": task.main_metric,
        "dev": result.metrics,
        "model": str(model),
        "train": {**summary, "config": config.to_dict(), "samples": len(train_examples), "held_out": held_out},
    }
    log.info("dev %s = %.4f on %d examples", task.main_metric, result.main_value, len(dev_examples))
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        loaded.model.save_pretrained(tmp)
        loaded.tokenizer.save_pretrained(tmp)
        atomic_write_text(tmp / METRICS_FILE, json.dumps(metrics, indent=2) + "\n")
    return metrics
