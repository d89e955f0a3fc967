"""The steps of a recipe run, each a thin call of the job function that the matching command also uses.

    finetune     shared   fine-tune on train minus the validation split (held out for the analysis)
    analyze      shared   significance on the validation split                      (goal != none)
    approximate           search under the goal, then recovery fine-tuning          (goal != none)
    export                the recovered full-size model to ONNX (unpruned graph)    (goal != none)
    passes                realize plan.json on that export: prune, quantize, fuse   (goal != none)
    baselines    shared   the fine-tuned model as users deploy it today (onnx_approx.bench): PyTorch,
                          ORT fp32 (exported and fused: goal none's model), ORT int8 dynamic/fused/static
    evaluate              dev metrics of every engine: the approximated model and each baseline
    bench                 latency of all of them, interleaved in one process; table, JSON, Pareto plot
    profile               ms per op type by ONNX Runtime's profiler                 (goal != none)
                          of the model and the fastest int8 baseline at 1x128 (else the first bench shape)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from onnx_approx.io_utils import atomic_write_text, read_json
from onnx_approx.model_sources import MODEL_ALIASES
from onnx_approx.pipeline.runner import Step
from onnx_approx.recipe import Recipe
from onnx_approx.task_data import TaskData

EVALUATION_FILE = "evaluation.json"


@dataclass
class RunContext:
    """A recipe being run: its settings, the CPU threads to use, and the folders of finished steps."""

    recipe: Recipe
    threads: int | None = None
    folders: dict[str, Path] = field(default_factory=dict)

    @cached_property
    def data(self) -> TaskData:
        d = self.recipe.data
        if self.recipe.task == "table":
            files = {s: getattr(d, f"{s}_file") for s in ("train", "dev", "val") if getattr(d, f"{s}_file")}
            return TaskData.table(files, d.text_column, d.text_pair_column, d.label_column, d.regression)
        return TaskData.registered(self.recipe.task, d.data_dir)

    def model_identity(self) -> str:
        """The model the recipe names: an alias as is, a folder by its absolute path, else the hub id."""
        model = self.recipe.model
        return model if model in MODEL_ALIASES or not Path(model).is_dir() else str(Path(model).resolve())

    def data_identity(self) -> dict[str, Any]:
        """What the examples are: the data folder of a registered task, or the table files' contents."""
        data = self.data
        if not data.files:
            return {"task": data.task.name, "data_dir": str(Path(data.data_dir).resolve())}
        digests = {split: hashlib.sha256(Path(path).read_bytes()).hexdigest() for split, path in data.files.items()}
        return {"task": "table", "files": digests, "columns": list(data.columns), "regression": data.regression}

    def max_seq_len(self) -> int:
        """Inputs are truncated as in the analysis and the search, so dev figures agree with theirs."""
        from onnx_approx.dataset import default_max_seq_len

        return self.recipe.analysis.max_seq_len or default_max_seq_len(self.data.task)


def _hold_out(ctx: RunContext) -> dict[str, Any]:
    a = ctx.recipe.analysis
    return {"val_fraction": a.val_fraction, "val_samples": a.val_samples, "seed": a.seed}


# -- fine-tune --------------------------------------------------------------------------------------------
def _finetune_inputs(ctx: RunContext) -> dict[str, Any]:
    return {"model": ctx.model_identity(), "data": ctx.data_identity(),
            "config": ctx.recipe.finetune.to_dict(), "hold_out": _hold_out(ctx)}


def _finetune(ctx: RunContext, out: Path) -> dict[str, Any]:
    from onnx_approx.finetune import finetune

    metrics = finetune(ctx.recipe.model, ctx.data, out, ctx.recipe.finetune, hold_out=ctx.recipe.analysis,
                       overwrite=True)
    train = metrics["train"]
    return {"dev": metrics["dev"], "train_samples": train["samples"], "held_out": train["held_out"]}


# -- analyze ----------------------------------------------------------------------------------------------
def _analyze_inputs(ctx: RunContext) -> dict[str, Any]:
    return {"data": ctx.data_identity(), "config": dataclasses.asdict(ctx.recipe.analysis)}


def _analyze(ctx: RunContext, out: Path) -> dict[str, Any]:
    from onnx_approx.significance.analysis import analyze

    doc = analyze(ctx.folders["finetune"], ctx.data, out, ctx.recipe.analysis, overwrite=True)
    return {"validation": doc["validation"], "baseline": doc["baseline"]}


# -- approximate ------------------------------------------------------------------------------------------
def _approximate_inputs(ctx: RunContext) -> dict[str, Any]:
    r = ctx.recipe
    return {"data": ctx.data_identity(), "analysis": dataclasses.asdict(r.analysis),
            "search": dataclasses.asdict(r.search), "rounds": r.rounds, "recovery": dataclasses.asdict(r.recovery)}


def _approximate(ctx: RunContext, out: Path) -> None:
    from onnx_approx.approximation import PLAN_FILE, approximate

    r = ctx.recipe
    if (out / PLAN_FILE).is_file():  # the job finished before an interruption; plan.json is written last
        return
    approximate(str(ctx.folders["finetune"]), ctx.data, out, r.analysis, r.search, r.recovery, rounds=r.rounds,
                analysis_dir=ctx.folders["analyze"])


# -- export and passes ------------------------------------------------------------------------------------
def _no_inputs(ctx: RunContext) -> dict[str, Any]:
    return {}


def _export(ctx: RunContext, out: Path) -> None:
    """The recovered weights (full size) where recovery ran, else the fine-tuned model; the plan comes next."""
    from onnx_approx.approximation import MODEL_DIR
    from onnx_approx.export import export_folder

    recovered = ctx.folders["approximate"] / MODEL_DIR
    export_folder(recovered if recovered.is_dir() else ctx.folders["finetune"], out, overwrite=True)


def _passes(ctx: RunContext, out: Path) -> dict[str, Any]:
    from graph_passes.apply import ONNX_FILE, apply_plan_folder
    from onnx_approx.approximation import PLAN_FILE
    from onnx_approx.plan import Plan

    plan = Plan.load(ctx.folders["approximate"] / PLAN_FILE)
    report = apply_plan_folder(ctx.folders["export"] / ONNX_FILE, plan, out, overwrite=True)
    return {"quant_mode": report.quant_mode, "fusions": report.fusions}


# -- baselines, evaluate, bench ---------------------------------------------------------------------------
def _baselines_inputs(ctx: RunContext) -> dict[str, Any]:
    from onnx_approx.pipeline.bench_step import baseline_names

    return {"names": baseline_names(ctx), "data": ctx.data_identity(),
            "calibration": {"samples": ctx.recipe.bench.calibration_samples, "seed": ctx.recipe.seed}}


def _baselines(ctx: RunContext, out: Path) -> None:
    from onnx_approx.pipeline.bench_step import baselines

    baselines(ctx, out)


def _evaluate_inputs(ctx: RunContext) -> dict[str, Any]:
    return {"data": ctx.data_identity(), "max_seq_len": ctx.max_seq_len()}


def _evaluate(ctx: RunContext, out: Path) -> dict[str, Any]:
    """Dev metrics of every engine (the approximated model and each baseline), each with its own tokenizer."""
    from onnx_approx.bench import evaluate_engines
    from onnx_approx.pipeline.bench_step import open_engines

    task = ctx.data.task
    examples = ctx.data.load("dev")
    metrics = evaluate_engines(open_engines(ctx, ctx.threads), task, examples, max_seq_len=ctx.max_seq_len())
    doc = {"task": task.name, "split": "dev", "samples": len(examples), "main_metric": task.main_metric,
           "max_seq_len": ctx.max_seq_len(), "metrics": metrics}
    atomic_write_text(out / EVALUATION_FILE, json.dumps(doc, indent=2) + "\n")
    return {name: m[task.main_metric] for name, m in metrics.items()}


def _bench_inputs(ctx: RunContext) -> dict[str, Any]:
    from onnx_approx.pipeline.bench_step import bench_config

    return {"bench": dataclasses.asdict(bench_config(ctx))}


def _bench(ctx: RunContext, out: Path) -> dict[str, Any]:
    from onnx_approx.pipeline.bench_step import bench_models

    return bench_models(ctx, out, read_json(ctx.folders["evaluate"] / EVALUATION_FILE)["metrics"])


def _profile_inputs(ctx: RunContext) -> dict[str, Any]:
    from onnx_approx.pipeline.bench_step import profile_settings

    return profile_settings(ctx)


def _profile(ctx: RunContext, out: Path) -> dict[str, Any]:
    from onnx_approx.pipeline.bench_step import profile_models

    return profile_models(ctx, out)


def recipe_steps(recipe: Recipe) -> list[Step]:
    """The steps `recipe` runs, in order (goal none: the conventional baseline only)."""
    finetune = Step("finetune", _finetune, _finetune_inputs, shared=True)
    baselines = Step("baselines", _baselines, _baselines_inputs, deps=("finetune",), shared=True)
    model = ("passes",) if recipe.approximates else ()
    tail = [Step("evaluate", _evaluate, _evaluate_inputs, deps=("finetune", "baselines", *model)),
            Step("bench", _bench, _bench_inputs, deps=("finetune", "baselines", *model, "evaluate"))]
    if not recipe.approximates:
        return [finetune, baselines, *tail]
    return [
        finetune,
        Step("analyze", _analyze, _analyze_inputs, deps=("finetune",), shared=True),
        Step("approximate", _approximate, _approximate_inputs, deps=("finetune", "analyze"), checkpoints=True),
        Step("export", _export, _no_inputs, deps=("finetune", "approximate")),
        Step("passes", _passes, _no_inputs, deps=("export", "approximate")),
        baselines,
        *tail,
        Step("profile", _profile, _profile_inputs, deps=("passes", "baselines", "bench")),
    ]
