"""Run a recipe end to end: resumable steps (runner.py), what each step does (steps.py), the deliverables
and report (report.py).

    from onnx_approx.pipeline import run_recipe
    from onnx_approx.recipe import load_recipe
    report = run_recipe(load_recipe("models/minilm-sst2-faster.toml"))
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from onnx_approx.pipeline.report import publish
from onnx_approx.pipeline.runner import Runner, package_version
from onnx_approx.pipeline.steps import RunContext, recipe_steps
from onnx_approx.recipe import Recipe

log = logging.getLogger(__name__)

CACHE_DIR = ".cache"  # beside the output folder: fine-tuning, analysis and baselines shared by recipes of one task


def run_recipe(recipe: Recipe, *, out: str | Path | None = None, threads: int | None = None,
               from_step: str | None = None) -> Path:
    """Run (or resume) `recipe` into `out` (default: the recipe's); returns the path of report.md.

    Steps whose inputs are unchanged since they last finished are reused; `from_step` reruns that step
    and every step after it regardless.
    """
    out = Path(out or recipe.out)
    package = package_version()
    ctx = RunContext(recipe, threads=threads)
    steps = recipe_steps(recipe)
    runner = Runner(steps, ctx, out, cache=out.parent / CACHE_DIR, package=package)
    started = time.perf_counter()
    log.info("recipe %s (%s): %s -> %s", recipe.name, recipe.source, " -> ".join(s.name for s in steps), out)
    records = runner.run(from_step)
    report = publish(ctx, records, out, package)
    log.info("recipe %s finished in %.0f s", recipe.name, time.perf_counter() - started)
    return report
