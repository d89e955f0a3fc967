"""Realize a plan on an exported model: the pass sequence, and a report of what each pass changed."""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import ShapeInferencePass

from graph_passes._ir_utils import tensor_bytes
from graph_passes.cleanup import CleanupPass
from graph_passes.fuse import FusePass
from graph_passes.prune_heads import PruneHeadsPass
from graph_passes.prune_neurons import PruneNeuronsPass
from graph_passes.prune_vocab import PruneVocabPass
from graph_passes.quantize import QuantizeWeightsPass, weight_targets
from graph_passes.quantize_dynamic import DynamicQuantizePass, int8_nodes
from graph_passes.remove_blocks import RemoveBlocksPass
from graph_passes.sign_match import SignMatchPass
from graph_passes.structure import locate
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text
from onnx_approx.plan import Plan

log = logging.getLogger(__name__)
QUANT_MODES = ("size", "speed")
ONNX_FILE = "model.onnx"
PLAN_FILE = "plan.json"
REPORT_FILE = "passes_report.json"
WEIGHT_SUFFIXES = (".onnx", ".data", ".safetensors", ".bin", ".pt", ".pth", ".ckpt")


@dataclass
class ModelStats:
    nodes: int
    initializers: int
    initializer_bytes: int

    @classmethod
    def of(cls, model: ir.Model) -> ModelStats:
        inits = model.graph.initializers.values()
        return cls(len(model.graph), len(inits), sum(tensor_bytes(v) for v in inits))


@dataclass
class PassRecord:
    """What one pass did: its own lines, and the model's size before and after it."""

    name: str
    changes: list[str]
    before: ModelStats
    after: ModelStats
    seconds: float

    @property
    def bytes_saved(self) -> int:
        return self.before.initializer_bytes - self.after.initializer_bytes


@dataclass
class ApplyReport:
    located_by: str
    dims: dict[str, int]
    quant_mode: str
    fusions: dict[str, int] = field(default_factory=dict)
    fused_attention_heads: list[int] = field(default_factory=list)
    passes: list[PassRecord] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for record, raw in zip(self.passes, data["passes"], strict=True):
            raw["bytes_saved"] = record.bytes_saved
        return data

    def table(self) -> str:
        """One line per pass: nodes, initializers and bytes before -> after."""
        rows = [f"{'pass':<22} {'nodes':>13} {'initializers':>13} {'MB':>17}  changes"]
        for r in self.passes:
            mb = f"{r.before.initializer_bytes / 1e6:.2f} -> {r.after.initializer_bytes / 1e6:.2f}"
            rows.append(
                f"{r.name:<22} {r.before.nodes:>5} -> {r.after.nodes:<5} {r.before.initializers:>4} -> "
                f"{r.after.initializers:<6} {mb:>17}  {len(r.changes)}"
            )
        return "\n".join(rows)


def default_quant_mode(plan: Plan) -> str:
    """`speed` for plans searched for the `faster` goal, `size` otherwise."""
    return "speed" if plan.goal == "faster" else "size"


def _as_model(model: ir.Model | onnx.ModelProto | str | Path) -> ir.Model:
    """A model the passes may edit, all weights in memory (the result must not point at the input's
    external-data file): loaded from a path, converted from a proto, or a clone of an ir.Model."""
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise FileNotFoundError(f"ONNX model not found: {path}")
        model = ir.load(path)
    elif isinstance(model, onnx.ModelProto):
        model = ir.from_proto(model)
    else:
        model = model.clone()
    return ir.external_data.load_to_model(model)


def apply_plan(
    model: ir.Model | onnx.ModelProto | str | Path,
    plan: Plan,
    *,
    fuse: bool = True,
    quant_mode: str | None = None,
    model_type: str | None = None,
) -> tuple[ir.Model, ApplyReport]:
    """Realize `plan` on an unfused export of the model it was made for; the input is not modified.

    Order: remove blocks, prune heads, prune neurons, prune the vocabulary, sign-matching attention, clean up,
    ORT fusions (unless `fuse=False`), quantize (`quant_mode` "size": weight-only QDQ; "speed": dynamic int8 for int8
    matrices; default from the plan's goal), final check. `model_type` (from the model's config.json) is
    checked against the plan's. Raises PlanError for a plan that does not fit the model and StructureError
    for a model whose encoder is not recognized.
    """
    quant_mode = quant_mode or default_quant_mode(plan)
    if quant_mode not in QUANT_MODES:
        raise ValueError(f"quant_mode must be one of {', '.join(QUANT_MODES)}, got {quant_mode!r}")
    model = _as_model(model)
    ShapeInferencePass()(model)  # piece lengths of Reshape targets, shapes the fusions check
    structure = locate(model, plan.model_type)
    plan.check_fits(model_type or plan.model_type, structure.dims())
    report = ApplyReport(structure.located_by, structure.dims(), quant_mode)

    def run(pass_: ir.passes.PassBase, current: ir.Model) -> ir.Model:
        before, start = ModelStats.of(current), time.perf_counter()
        result = pass_(current).model
        changes = list(getattr(pass_, "changes", []))
        report.passes.append(
            PassRecord(type(pass_).__name__, changes, before, ModelStats.of(result), time.perf_counter() - start)
        )
        log.info("%s: %s", type(pass_).__name__, "; ".join(changes) or "done")
        return result

    for pass_ in (RemoveBlocksPass(structure, plan), PruneHeadsPass(structure, plan),
                  PruneNeuronsPass(structure, plan), PruneVocabPass(structure, plan), SignMatchPass(structure, plan),
                  CleanupPass()):
        model = run(pass_, model)
    if fuse:
        fuse_pass = FusePass(structure)
        model = run(fuse_pass, model)
        report.fusions, report.fused_attention_heads = fuse_pass.fusions, fuse_pass.attention_heads
    dynamic = int8_nodes(weight_targets(structure, plan)) if quant_mode == "speed" else []
    model = run(QuantizeWeightsPass(structure, plan, skip=frozenset(dynamic)), model)
    if dynamic:
        model = run(DynamicQuantizePass(dynamic), model)
    model = run(CleanupPass(fold=False), model)
    return model, report


def _companion_files(model_file: Path) -> list[Path]:
    """config.json, tokenizer and other small files of an export folder: not weights, nor the outputs of
    `apply_plan_folder`."""
    folder = model_file.parent
    if not (folder / "config.json").is_file():
        return []
    return [p for p in sorted(folder.iterdir())
            if p.is_file() and not p.name.endswith(WEIGHT_SUFFIXES) and p.name not in (PLAN_FILE, REPORT_FILE)
            and not p.name.startswith(".")]


def apply_plan_folder(model_file: Path, plan: Plan, out_dir: Path, *, fuse: bool = True,
                      quant_mode: str | None = None, overwrite: bool = False) -> ApplyReport:
    """`apply_plan` on an export folder's model; OUT_DIR (written atomically) receives model.onnx, plan.json,
    passes_report.json and the config/tokenizer files found beside the input, so it loads like an export."""
    config = model_file.parent / "config.json"
    model_type = json.loads(config.read_text()).get("model_type") if config.is_file() else None
    model, report = apply_plan(model_file, plan, fuse=fuse, quant_mode=quant_mode, model_type=model_type)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        ir.save(model, tmp / ONNX_FILE)
        for path in _companion_files(model_file):
            shutil.copy2(path, tmp / path.name)
        plan.save(tmp / PLAN_FILE)
        atomic_write_text(tmp / REPORT_FILE, json.dumps(report.to_dict(), indent=2) + "\n")
    return report
