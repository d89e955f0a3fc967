"""Run a recipe end to end: fine-tune, analyze, approximate (search + recovery), export, graph passes,
evaluate on dev in ONNX Runtime, benchmark against the conventional baselines, profile where the time goes,
report.

Steps, in order: finetune, analyze, approximate, export, passes, baselines, evaluate, bench, profile
(goal none: finetune, baselines, evaluate, bench).

Examples:
  onnx-approx run models/minilm-sst2-faster.toml            # what `make demo` runs
  onnx-approx run models/minilm-sst2-smaller.toml --threads 2
  onnx-approx run models/minilm-cola-accurate.toml --from-step approximate   # redo the search and after
  onnx-approx run my-recipe.toml --out runs/try --data-dir ../shared/data

A recipe (TOML, see models/README.md and onnx_approx/recipe.py) names the model, the task, the goal
(faster, smaller, accurate; none = the conventional baseline only: fine-tune, export, fuse, evaluate,
bench), the bound on the relative drop of the main metric, the budgets and the seed.

The run is resumable: every step's folder records a fingerprint of its inputs (the recipe fields it reads,
the steps before it, the package version). Rerun the same command after an interruption or an edit and
only the steps whose inputs changed run again (the search also resumes from its last checkpoint).
Fine-tuning, analysis and the baselines (PyTorch, ORT fp32, ORT int8 dynamic / fused / static) depend only
on model, task, seed and their budgets: they are kept in OUT/../.cache/ and shared, so the baseline,
faster, smaller and accurate recipes of one task fine-tune once. Fine-tuning holds out the validation
split the analysis and the search measure on.

OUT (default runs/<recipe name>) receives model.onnx (the approximated model, after the graph passes),
plan.json, config.json and tokenizer files (loadable like an `export` folder), heatmap.png (significance),
pareto.png (accuracy against latency), report.md and report.json (dev metric of the fp32 baseline and of
the approximated model, relative change, sizes, latency table and ratios, the goal's targets: met, or by
how much they are missed, where the time goes at 1x128 (ONNX Runtime's profiler: ms per op type of the
model and the fastest int8 baseline, in report.md when a latency target is missed), step timings, what
changed where), and steps/ (each step's own outputs).
"""

from __future__ import annotations

import argparse

NAME = "run"
HELP = "run a recipe (models/*.toml) end to end, resumably, into one output folder with a report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="recipe file (TOML), e.g. models/minilm-sst2-faster.toml")
    parser.add_argument("--out", default=None, help="output folder (default: the recipe's out, runs/<recipe name>)")
    parser.add_argument("--from-step", default=None,
                        help="rerun this step and all after it even if unchanged (finetune, analyze, approximate, "
                             "export, passes, baselines, evaluate, bench, profile)")
    parser.add_argument("--data-dir", default=None, help="data folder (overrides the recipe's data.data_dir)")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of every step, the benchmark included (default: all cores; the benchmark "
                             "uses the recipe's bench.threads if set)")


def run(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from onnx_approx.pipeline import run_recipe
    from onnx_approx.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    if args.data_dir:
        recipe.data = dataclasses.replace(recipe.data, data_dir=args.data_dir)
    if args.threads:
        torch.set_num_threads(args.threads)
    report = run_recipe(recipe, out=args.out, threads=args.threads, from_step=args.from_step)
    print(f"report: {report}")
    return 0
