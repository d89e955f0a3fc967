"""Significance analysis of one fine-tuned model on one task's validation split.

Per component (attention block, head, FFN block, neuron group): (a) the first-order score mean |dL/dgate|,
(b) the exact validation-loss change when it alone is removed and the fraction of samples whose loss is not
worse; per weight matrix: (c) the exact loss change when it alone is fake-quantized to int8 and to int4.
Cost is kept down by (1) one forward+backward for every first-order score at once, (2) exact checks that
rerun only the layers at and above the change from cached layer inputs, (3) exact checks of heads and
groups limited, if asked, to the least significant share by first-order score (the others are clearly
needed, and the search never tries removing them first).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from torch import nn
from tqdm.auto import tqdm

from onnx_approx.approximate import PlannedModel
from onnx_approx.architectures import MATRIX_ROLES, spec_for
from onnx_approx.costs import macs_per_token
from onnx_approx.dataset import default_max_seq_len
from onnx_approx.io_utils import atomic_output_dir, check_output_dir
from onnx_approx.modeling import LoadedModel, load_model
from onnx_approx.plan import Plan
from onnx_approx.significance.ablation import LayerInputCache, Measurement
from onnx_approx.significance.candidates import Candidate
from onnx_approx.significance.gates import GateLayout
from onnx_approx.significance.taylor import FirstOrderScores, first_order_scores
from onnx_approx.significance.report import write_significance
from onnx_approx.significance.validation import ValidationSet, validation_examples
from onnx_approx.task_data import TaskData

log = logging.getLogger(__name__)

SIGNIFICANCE_FORMAT = 1
ANALYSIS_PRECISIONS = ("int8", "int4")


@dataclass
class AnalysisConfig:
    val_fraction: float = 0.1
    val_samples: int | None = 2000
    seed: int = 0
    group_size: int | None = None  # default: intermediate_size / 12
    batch_size: int = 128
    max_seq_len: int | None = None  # default: 128, or 384 for QA
    exact_fraction: float = 0.5  # share of each layer's heads and groups checked exactly (least significant first)

    def __post_init__(self) -> None:
        if not 0.0 <= self.exact_fraction <= 1.0:
            raise ValueError(f"exact fraction must be between 0 and 1, got {self.exact_fraction}")


def summarize(measurement: Measurement, baseline: Measurement, valset: ValidationSet) -> dict[str, Any]:
    """Loss change, share of samples not worse than the baseline, and the task metrics of a measurement."""
    return {
        "loss": measurement.loss,
        "loss_change": measurement.loss - baseline.loss,
        "no_worse_fraction": float(np.mean(measurement.losses <= baseline.losses)),
        "metrics": valset.metrics(measurement.outputs),
    }


def exact_targets(layout: GateLayout, scores: FirstOrderScores, fraction: float) -> list[Candidate]:
    """Blocks always; of each layer's heads and groups the `fraction` with the lowest first-order score."""
    targets = []
    for layer in range(layout.num_layers):
        for kind in ("attention", "head", "ffn", "group"):
            members = [c for c in layout.components() if c.layer == layer and c.kind == kind]
            if kind in ("head", "group"):
                members = sorted(members, key=lambda c: scores.score[c])[: math.ceil(fraction * len(members))]
            targets += [Candidate.removal(c) for c in sorted(members)]
        targets += [Candidate("precision", layer, role=role, value=p) for role in MATRIX_ROLES
                    for p in ANALYSIS_PRECISIONS]
    return targets


def run_analysis(model: nn.Module, valset: ValidationSet, config: AnalysisConfig,
                 progress: bool = True) -> dict[str, Any]:
    """The significance document (JSON-ready) of `model` on `valset`; the model is left unchanged."""
    start = time.perf_counter()
    spec = spec_for(model.config.model_type)
    dims = spec.dims(model.config)
    layout = GateLayout.from_dims(dims, config.group_size)
    scores = first_order_scores(model, valset, layout, ANALYSIS_PRECISIONS, progress=progress)
    planned = PlannedModel(model, layout)
    identity = Plan.identity(spec.model_type, dims)
    cache = LayerInputCache(model, valset, progress=progress)
    exact: dict[Candidate, dict[str, Any]] = {}
    targets = exact_targets(layout, scores, config.exact_fraction)
    try:
        for candidate in tqdm(targets, desc="exact ablation", disable=not progress, dynamic_ncols=True):
            planned.apply(candidate.apply(identity, layout))
            exact[candidate] = summarize(cache.measure(candidate.layer), cache.baseline, valset)
    finally:
        planned.close()
    return {
        "format": SIGNIFICANCE_FORMAT,
        "model_type": spec.model_type,
        "dims": dims,
        "group_size": layout.group_size,
        "config": asdict(config),
        "validation_samples": len(valset),
        "baseline": {"loss": cache.baseline.loss, "metrics": valset.metrics(cache.baseline.outputs)},
        "components": _component_rows(layout, scores, exact, dims),
        "matrices": _matrix_rows(layout, scores, exact),
        "seconds": time.perf_counter() - start,
    }


def _component_rows(layout: GateLayout, scores: FirstOrderScores, exact: dict, dims: dict) -> list[dict[str, Any]]:
    identity = Plan.identity("-", dims)
    rows = []
    for component in layout.components():
        candidate = Candidate.removal(component)
        found = exact.get(candidate, {})
        rows.append({
            "name": component.name, "kind": component.kind, "layer": component.layer, "index": component.index,
            "first_order": scores.score[component], "first_order_estimate": scores.estimate[component],
            "loss_change": found.get("loss_change"), "no_worse_fraction": found.get("no_worse_fraction"),
            "metrics": found.get("metrics"),
            "macs_per_token": macs_per_token(identity) - macs_per_token(candidate.apply(identity, layout)),
        })
    return rows


def _matrix_rows(layout: GateLayout, scores: FirstOrderScores, exact: dict) -> list[dict[str, Any]]:
    rows = []
    for layer in range(layout.num_layers):
        for role in MATRIX_ROLES:
            row: dict[str, Any] = {"layer": layer, "role": role}
            for p in ANALYSIS_PRECISIONS:
                found = exact[Candidate("precision", layer, role=role, value=p)]
                row[p] = {"loss_change": found["loss_change"], "no_worse_fraction": found["no_worse_fraction"],
                          "first_order_estimate": scores.matrix_estimate[(layer, role, p)],
                          "metrics": found["metrics"]}
            rows.append(row)
    return rows


def load_validation(loaded: LoadedModel, data: TaskData, config: AnalysisConfig) -> tuple[ValidationSet, list, str]:
    """(encoded validation set, the training examples outside it, a line saying where validation came from)."""
    examples, rest, source = validation_examples(data, config.val_fraction, config.val_samples, config.seed)
    valset = ValidationSet.build(loaded.tokenizer, data.task, examples, uses_token_type_ids=loaded.uses_token_type_ids,
                                 max_seq_len=config.max_seq_len or default_max_seq_len(data.task),
                                 batch_size=config.batch_size)
    return valset, rest, source


def analyze(model: str | Path, data: TaskData, out_dir: str | Path, config: AnalysisConfig,
            overwrite: bool = False) -> dict[str, Any]:
    """Analyze `model` on `data` and write significance.json, heatmap.png and summary.md to `out_dir`."""
    out_dir = Path(out_dir)
    check_output_dir(out_dir, overwrite)
    loaded = load_model(model, data.task)
    valset, _, source = load_validation(loaded, data, config)
    doc = run_analysis(loaded.model, valset, config)
    doc.update(model=str(model), task=data.task.name, validation=source)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        write_significance(doc, tmp)
    log.info("analysis written to %s (%.0f s)", out_dir, doc["seconds"])
    return doc
