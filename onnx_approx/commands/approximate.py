"""Search which parts of a fine-tuned model to remove or quantize for a goal, then recover by fine-tuning.

Examples:
  onnx-approx approximate --model runs/sst2 --task sst2 --goal faster --max-rel-drop 0.005 --out runs/sst2-fast
  onnx-approx approximate --model runs/cola --task cola-axformer --goal accurate --out runs/cola-acc
  onnx-approx approximate --model runs/sst2 --task sst2 --goal smaller --analysis runs/sst2-analysis \\
      --recover-epochs 0 --out runs/sst2-small
  onnx-approx approximate --model runs/squad --task squad --plan my-plan.json --max-dev-samples 500 \\
      --out runs/squad-mine                              # no search: recover and report a written plan

Goals (all measured on the validation split, as in `analyze`; dev is only reported):
  faster    remove / int8-quantize the least significant parts per MAC saved while the validation main
            metric stays within --max-rel-drop (relative) of the original: blocks, then heads and neuron
            groups, then int8 per matrix, a layer's Q, K and V together (ORT runs them faster only so)
  smaller   first int4 (else int8) for the word and position embedding tables and the task head's
            projection, most bytes first; then the same as faster per byte saved, with int4 (else int8)
            per matrix in the precision phase; --prune-vocab also keeps only the training examples'
            tokens (others read as [UNK]: a dev cost the validation split cannot show, 0.8 % relative
            accuracy on SST-2; report.md gives the dev [UNK] share)
  accurate  keep a change only if validation loss falls below the best so far and more than half of the
            samples are no worse (the AxFormer rule); layers last to first: FFN block / neuron groups,
            attention block / heads, then int8 per matrix
--top-k 32,64 also tries top-K attention per layer first (it pays at long sequences only).
The search shows the candidate being measured, and checkpoints after every trial: rerun the same command
after an interruption to resume. Then recovery fine-tunes the pruned, fake-quantized model on the
training data outside the validation split (--recover-epochs, 0 to skip; --recover-from minilm-l6
restarts from pre-trained weights, as the authors do). --rounds 3 alternates search and recovery: each
round prunes further from the recovered model, the budget still measured against the original model.

OUT receives plan.json (the contract for `evaluate --plan` and the graph passes; metrics inside),
report.md (metrics before/after, parameters, weight bytes, MACs per token at sequence 128, what changed where),
model/ (full-size HF folder with the recovered weights + plan.json, for `export`; after recovery) and,
with --save-pruned, pruned/ (physically pruned PyTorch model in the project's own format).
"""

from __future__ import annotations

import argparse

from onnx_approx.commands._common import add_model_argument, add_task_arguments, add_threads_argument
from onnx_approx.commands.analyze import add_analysis_arguments, analysis_config

NAME = "approximate"
HELP = "search a plan (faster / smaller / accurate), recover by fine-tuning, report"


def _k_values(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(",") if k.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from onnx_approx.recovery import RecoveryConfig
    from onnx_approx.search import GOALS, SearchConfig

    s, r = SearchConfig(goal="faster"), RecoveryConfig()
    add_model_argument(parser, " (the fine-tuned model)")
    add_task_arguments(parser)
    parser.add_argument("--goal", choices=GOALS, help="what to search for (required unless --plan)")
    parser.add_argument("--plan", default=None,
                        help="skip the search: recover and report this plan.json (hand-written or from another run)")
    parser.add_argument("--out", required=True, help="output folder; an interrupted search in it resumes")
    parser.add_argument("--max-rel-drop", type=float, default=s.max_rel_drop,
                        help=f"faster/smaller: allowed relative drop of the validation main metric (default {s.max_rel_drop})")
    parser.add_argument("--max-loss-increase", type=float, default=None,
                        help="faster/smaller: also bound the relative rise of the validation loss")
    parser.add_argument("--patience", type=int, default=s.patience,
                        help=f"faster/smaller: end a phase after this many rejections in a row (default {s.patience})")
    parser.add_argument("--top-k", type=_k_values, default=(), help="K values of top-K attention to try, e.g. 32,64")
    parser.add_argument("--seq-len", type=int, default=s.seq_len, help=f"sequence length MACs are counted at (default {s.seq_len})")
    parser.add_argument("--prune-vocab", action="store_true",
                        help="smaller: keep only the training examples' tokens in the embedding table (default: all)")
    parser.add_argument("--analysis", default=None, help="folder written by `analyze`: rank candidates by its exact loss changes")
    add_analysis_arguments(parser)
    parser.add_argument("--max-dev-samples", type=int, default=None,
                        help="report on a seeded random subset of dev, the one `finetune --max-dev-samples` scores")
    group = parser.add_argument_group("recovery fine-tuning")
    group.add_argument("--recover-epochs", type=float, default=r.epochs, help=f"0 skips recovery (default {r.epochs})")
    group.add_argument("--recover-lr", type=float, default=None, help="default 2e-5, or 5e-5 with --recover-from")
    group.add_argument("--recover-from", default=None, help="restart from these weights (alias or folder) instead")
    group.add_argument("--recover-batch-size", type=int, default=r.batch_size, help=f"default {r.batch_size}")
    group.add_argument("--recover-max-samples", type=int, default=None, help="train on a seeded random subset")
    group.add_argument("--recover-distill", type=float, default=r.distill,
                       help="weight in (0, 1] of matching the fine-tuned model's outputs (knowledge distillation, "
                            "temperature 2) against the labels' loss; 0 = labels only (default)")
    group.add_argument("--rounds", type=int, default=1,
                       help="alternate search and recovery this many times; later rounds start from the recovered "
                            "model, the budget still against the original (default 1)")
    parser.add_argument("--save-pruned", action="store_true", help="also write the pruned PyTorch model to OUT/pruned")
    parser.add_argument("--overwrite", action="store_true", help="start afresh, deleting OUT")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import torch

    from onnx_approx.approximation import PLAN_FILE, REPORT_FILE, approximate
    from onnx_approx.commands._common import print_metrics_table, task_data_from_args
    from onnx_approx.plan import Plan
    from onnx_approx.recovery import RecoveryConfig
    from onnx_approx.search import SearchConfig

    if (args.goal is None) == (args.plan is None):
        raise ValueError("give --goal (search a plan) or --plan (recover a given one), not both")
    if args.threads:
        torch.set_num_threads(args.threads)
    data = task_data_from_args(args)
    given = Plan.load(args.plan) if args.plan else None
    search = None if given else SearchConfig(
        goal=args.goal, max_rel_drop=args.max_rel_drop, max_loss_increase=args.max_loss_increase,
        patience=args.patience, top_k=args.top_k, seq_len=args.seq_len, prune_vocab=args.prune_vocab)
    recovery = RecoveryConfig(epochs=args.recover_epochs, lr=args.recover_lr, start_from=args.recover_from,
                              batch_size=args.recover_batch_size, max_train_samples=args.recover_max_samples,
                              distill=args.recover_distill)
    info = approximate(args.model, data, args.out, analysis_config(args), search, recovery, rounds=args.rounds,
                       analysis_dir=args.analysis, save_pruned_model=args.save_pruned, overwrite=args.overwrite,
                       given_plan=given, max_dev_samples=args.max_dev_samples)
    rows = [(f"{stage} ({split})", metrics) for stage, splits in info["stages"].items()
            for split, metrics in splits.items() if metrics is not None]
    print_metrics_table(rows, data.task.main_metric)
    print(f"{args.out}/{PLAN_FILE} and {args.out}/{REPORT_FILE} written")
    return 0
