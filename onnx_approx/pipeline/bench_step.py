"""The run's engines (the conventional baselines and the approximated model), the bench step and the profile
step, through onnx_approx.bench: one place that knows how the pipeline's folders become bench engines."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from onnx_approx.bench import (BASELINES, BENCH_JSON, FP32_BASELINE, BenchEngine, build_baselines, onnx_engine,
                               run_bench)
from onnx_approx.bench.profile import PROFILE_RUNS, PROFILE_WARMUP, profile_op_types
from onnx_approx.io_utils import atomic_write_text, read_json
from onnx_approx.pipeline.targets import TARGET_SHAPE
from onnx_approx.recipe import BenchConfig

if TYPE_CHECKING:
    from onnx_approx.pipeline.steps import RunContext

MODEL_ENGINE = "approximated"  # the bench's name of the run's model (goal none: the ort-fp32 baseline is it)
PROFILE_FILE = "profile.json"


def bench_config(ctx: RunContext) -> BenchConfig:
    """The recipe's benchmark settings, with the command line's --threads if given."""
    return dataclasses.replace(ctx.recipe.bench, threads=ctx.threads or ctx.recipe.bench.threads)


def baseline_names(ctx: RunContext) -> list[str]:
    """The recipe's baselines (default all), always with ort-fp32: the reference of every ratio."""
    names = ctx.recipe.bench.baselines or BASELINES
    return list(dict.fromkeys([FP32_BASELINE, *names]))


def baselines(ctx: RunContext, work_dir: Path, threads: int | None = None) -> dict[str, BenchEngine]:
    """Engines of the fine-tuned model's baselines, their folders built in (or reused from) `work_dir`."""
    task = ctx.data.task
    calibration = ctx.data.load("train", max_samples=ctx.recipe.bench.calibration_samples, seed=ctx.recipe.seed)
    return build_baselines(ctx.folders["finetune"], work_dir, baseline_names(ctx), calibration, threads,
                           task=task if task.kind == "qa" else None)


def open_engines(ctx: RunContext, threads: int | None) -> dict[str, BenchEngine]:
    """The baselines (built by the baselines step, reopened) and, unless goal none, the approximated model."""
    engines = baselines(ctx, ctx.folders["baselines"], threads)
    if ctx.recipe.approximates:
        engines[MODEL_ENGINE] = onnx_engine(MODEL_ENGINE, ctx.folders["passes"], threads)
    return engines


def model_engine(ctx: RunContext) -> str:
    """The bench's name of the run's model."""
    return MODEL_ENGINE if ctx.recipe.approximates else FP32_BASELINE


def bench_models(ctx: RunContext, out: Path, metrics: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Time every engine interleaved in this process, attach their dev `metrics`, write bench.json, bench.md
    and pareto.png into `out`; returns the model's speed-ups per shape."""
    config = bench_config(ctx)
    engines = open_engines(ctx, config.threads)
    result = run_bench(engines, list(config.shapes), config.threads, config.rounds)
    task = ctx.data.task
    result.attach_metrics(task.name, "dev", task.main_metric, metrics)
    result.write(out)
    model = result.engine(model_engine(ctx))
    return {shape: result.speedups(model, shape) for shape in result.shapes}


def profile_shape(ctx: RunContext) -> str:
    """The shape the profile explains: the latency targets' when benched, else the bench's first."""
    shapes = ctx.recipe.bench.shapes
    return TARGET_SHAPE if TARGET_SHAPE in shapes else shapes[0]


def profile_settings(ctx: RunContext) -> dict[str, Any]:
    """What the profile step measures with (its fingerprint's inputs): shape, the bench's threads, runs."""
    return {"shape": profile_shape(ctx), "threads": bench_config(ctx).threads, "runs": PROFILE_RUNS,
            "warmup": PROFILE_WARMUP}


def profile_models(ctx: RunContext, out: Path) -> dict[str, float]:
    """Where the time goes in the approximated model and in the fastest int8 baseline at the profile shape
    (ONNX Runtime's profiler, the bench's threads); writes profile.json into `out`, returns each one's ms."""
    settings = profile_settings(ctx)
    bench = read_json(ctx.folders["bench"] / BENCH_JSON)
    paths = {MODEL_ENGINE: ctx.folders["passes"]}
    int8 = bench["fastest_int8"].get(settings["shape"])
    if int8:
        paths[int8] = Path(next(e["path"] for e in bench["engines"] if e["name"] == int8))
    profiles = {name: profile_op_types(path, settings["shape"], threads=settings["threads"], runs=settings["runs"],
                                       warmup=settings["warmup"]).to_dict() for name, path in paths.items()}
    atomic_write_text(out / PROFILE_FILE, json.dumps({**settings, "engines": profiles}, indent=2) + "\n")
    return {name: p["run_ms"] for name, p in profiles.items()}
