"""Measure how much each part of a fine-tuned model matters for one task.

Example:
  onnx-approx analyze --model runs/sst2 --task sst2 --out runs/sst2-analysis

On a validation split (the task's own "val" split where it has one, e.g. cola-axformer; otherwise a seeded,
stratified --val-fraction of train, at most --val-samples; never dev) it measures, per layer:
  * for the attention block, each head, the FFN block and each group of FFN neurons:
      first-order score   mean |dL/dgate| over the samples (one backward pass for all of them)
      loss change         exact validation-loss change when that part alone is removed
      no-worse            share of samples whose loss did not rise
  * for each weight matrix: the exact loss change when it alone is quantized to int8 (per output channel)
    and to int4 (blocks of 32).
Exact checks rerun only the layers at and above the change, from cached layer inputs. Of each layer's
heads and groups only the least significant --exact-fraction (default half, by first-order score) are
checked exactly: the others clearly matter. --exact-fraction 1 checks all (MiniLM-L6, SST-2, 2000
samples, one thread: 24 min for all, about two thirds of that for half).

OUT receives significance.json (every number), heatmap.png (layers x components, colour = loss change)
and summary.md. Pass OUT to `onnx-approx approximate --analysis OUT` to rank candidates by it.
"""

from __future__ import annotations

import argparse

from onnx_approx.commands._common import add_model_argument, add_task_arguments, add_threads_argument

NAME = "analyze"
HELP = "significance of blocks, heads, neuron groups and matrix precision on a validation split"


def add_analysis_arguments(parser: argparse.ArgumentParser) -> None:
    """Validation-split and batching options shared with `approximate`."""
    from onnx_approx.significance.analysis import AnalysisConfig

    d = AnalysisConfig()
    group = parser.add_argument_group("validation split")
    group.add_argument("--val-fraction", type=float, default=d.val_fraction,
                       help=f"share of train carved off for validation when the task has no val split (default {d.val_fraction})")
    group.add_argument("--val-samples", type=int, default=d.val_samples,
                       help=f"at most this many validation samples (default {d.val_samples})")
    group.add_argument("--seed", type=int, default=d.seed, help=f"seed of the validation split (default {d.seed})")
    group.add_argument("--group-size", type=int, default=None,
                       help="FFN neurons per group (default: intermediate size / 12)")
    group.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    group.add_argument("--max-seq-len", type=int, default=None, help="truncate longer inputs (default 128; 384 for QA)")


def analysis_config(args: argparse.Namespace, **extra):
    from onnx_approx.significance.analysis import AnalysisConfig

    return AnalysisConfig(val_fraction=args.val_fraction, val_samples=args.val_samples, seed=args.seed,
                          group_size=args.group_size, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
                          **extra)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from onnx_approx.significance.analysis import AnalysisConfig

    add_model_argument(parser, " (the fine-tuned model)")
    add_task_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    add_analysis_arguments(parser)
    parser.add_argument("--exact-fraction", type=float, default=AnalysisConfig().exact_fraction,
                        help="share of each layer's heads and groups (least significant first) checked exactly "
                             f"(default {AnalysisConfig().exact_fraction})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from onnx_approx.commands._common import task_data_from_args
    from onnx_approx.significance.analysis import analyze
    from onnx_approx.significance.report import SUMMARY_FILE

    if args.threads:
        torch.set_num_threads(args.threads)
    doc = analyze(args.model, task_data_from_args(args), args.out,
                  analysis_config(args, exact_fraction=args.exact_fraction), overwrite=args.overwrite)
    metrics = ", ".join(f"{k} {v:.4f}" for k, v in doc["baseline"]["metrics"].items())
    print(f"baseline validation loss {doc['baseline']['loss']:.4f} ({metrics}); "
          f"{len(doc['components'])} components, {len(doc['matrices'])} matrices in {doc['seconds']:.0f} s")
    print(f"written to {args.out} (see {SUMMARY_FILE})")
    return 0
