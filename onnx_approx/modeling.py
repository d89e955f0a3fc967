"""Load models by alias, local folder or hub id, with the head a task needs."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    AutoConfig,
    AutoModelForQuestionAnswering,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from onnx_approx.architectures import ArchitectureSpec, spec_for
from onnx_approx.data import TaskSpec
from onnx_approx.model_sources import DEFAULT_MODEL, PRUNED_SHAPES_FILE, resolve_model_source

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    spec: ArchitectureSpec
    source: str

    @property
    def uses_token_type_ids(self) -> bool:
        return self.spec.uses_token_type_ids

    def dims(self) -> dict[str, int]:
        return self.spec.dims(self.model.config)


def _head_class(task: TaskSpec | None, config: Any):
    """QA head for QA tasks; without a task, the head the checkpoint was saved with."""
    if task is not None:
        is_qa = task.kind == "qa"
    else:
        is_qa = any("QuestionAnswering" in arch for arch in (config.architectures or []))
    return AutoModelForQuestionAnswering if is_qa else AutoModelForSequenceClassification


def _task_config_overrides(task: TaskSpec | None, config: Any) -> dict[str, Any]:
    """Label count, names and problem type a task needs; nothing when the folder already has them."""
    if task is None or task.kind == "qa":
        return {}
    if task.kind == "regression":
        return {"num_labels": 1, "problem_type": "regression"}
    names = list(task.label_names)
    id2label = {i: name for i, name in enumerate(names)}
    if getattr(config, "id2label", None) == id2label:
        return {}
    return {
        "num_labels": len(names),
        "id2label": id2label,
        "label2id": {name: i for i, name in id2label.items()},
        "problem_type": "single_label_classification",
    }


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL, task: TaskSpec | None = None) -> LoadedModel:
    """Load a model with the head `task` needs (a fresh head when the checkpoint has none or another one).

    Folders written by physical pruning (`onnx_approx.pruning`) are recognised and rebuilt with their shapes.
    """
    source = resolve_model_source(name_or_path)
    if _is_pruned_folder(source):
        from onnx_approx import pruning  # local import: pruning imports this module

        model = pruning.load_pruned(source)
    else:
        config = AutoConfig.from_pretrained(source)
        spec_for(config.model_type)  # fail early, with the supported list, on other architectures
        overrides = _task_config_overrides(task, config)
        # A checkpoint with another head size gets a fresh head of the size the task needs.
        model = _head_class(task, config).from_pretrained(source, ignore_mismatched_sizes=bool(overrides), **overrides)
    spec = spec_for(model.config.model_type)
    tokenizer = AutoTokenizer.from_pretrained(source)
    model.eval()
    log.info("loaded %s (%s, %d parameters)", name_or_path, model.config.model_type, count_parameters(model))
    return LoadedModel(model=model, tokenizer=tokenizer, spec=spec, source=source)


def _is_pruned_folder(source: str) -> bool:
    return Path(source, PRUNED_SHAPES_FILE).is_file()


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def base_model(model: PreTrainedModel) -> torch.nn.Module:
    """The bare encoder (e.g. `BertModel`) below the task head."""
    return model.base_model


def encoder_layers(model: PreTrainedModel) -> torch.nn.ModuleList:
    """The encoder's layer list, found through the architecture table."""
    spec = spec_for(model.config.model_type)
    return base_model(model).get_submodule(spec.layers)
