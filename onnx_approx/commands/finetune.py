"""Fine-tune a pre-trained model on a task and save it with its dev metrics.

Examples:
  onnx-approx finetune --model minilm-l6 --task sst2 --out runs/sst2 --epochs 1
  onnx-approx finetune --task sst2 --out runs/sst2 --hold-out-validation   # before analyze/approximate

--hold-out-validation trains without the validation split that `analyze` and `approximate` measure on
(same --val-fraction, --val-samples, --val-seed as their --val-fraction, --val-samples, --seed), so the
significance analysis sees samples the model was not trained on.

OUT receives the Hugging Face weights, tokenizer, config.json and metrics.json (dev split metrics and
the training settings). The run is seeded and deterministic; nothing is written until it succeeds.
"""

from __future__ import annotations

import argparse

from onnx_approx.commands._common import add_model_argument, add_task_arguments, add_threads_argument

NAME = "finetune"
HELP = "fine-tune a model on a task (AdamW, warm-up/decay, dynamic padding)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from onnx_approx.significance.analysis import AnalysisConfig
    from onnx_approx.train_config import TrainConfig

    d = TrainConfig()
    add_model_argument(parser)
    add_task_arguments(parser)
    parser.add_argument("--out", required=True, help="output folder (refused if it exists, unless --overwrite)")
    parser.add_argument("--epochs", type=float, default=d.epochs, help=f"epochs, may be fractional (default {d.epochs})")
    parser.add_argument("--lr", type=float, default=d.lr, help=f"peak learning rate (default {d.lr})")
    parser.add_argument("--batch-size", type=int, default=d.batch_size, help=f"default {d.batch_size}")
    parser.add_argument("--max-seq-len", type=int, default=d.max_seq_len, help=f"truncate longer inputs (default {d.max_seq_len})")
    parser.add_argument("--max-train-samples", type=int, default=None, help="train on a seeded random subset")
    parser.add_argument("--max-dev-samples", type=int, default=None,
                        help="score a seeded random subset of dev (default all; SQuAD's 10,570 take about an hour "
                             "on one core)")
    parser.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio, help=f"default {d.warmup_ratio}")
    parser.add_argument("--seed", type=int, default=d.seed, help=f"default {d.seed}")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output folder")
    add_threads_argument(parser)
    a = AnalysisConfig()
    group = parser.add_argument_group("validation split held out of training")
    group.add_argument("--hold-out-validation", action="store_true",
                       help="leave out the validation split analyze/approximate carve (default: train on all)")
    group.add_argument("--val-fraction", type=float, default=a.val_fraction, help=f"default {a.val_fraction}")
    group.add_argument("--val-samples", type=int, default=a.val_samples, help=f"default {a.val_samples}")
    group.add_argument("--val-seed", type=int, default=a.seed, help=f"default {a.seed}")


def run(args: argparse.Namespace) -> int:
    import torch

    from onnx_approx.commands._common import print_metrics_table, task_data_from_args
    from onnx_approx.finetune import finetune
    from onnx_approx.train_config import TrainConfig

    if args.threads:
        torch.set_num_threads(args.threads)
    config = TrainConfig(
        epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_seq_len=args.max_seq_len,
        warmup_ratio=args.warmup_ratio, seed=args.seed, max_train_samples=args.max_train_samples,
        max_dev_samples=args.max_dev_samples,
    )
    hold_out = None
    if args.hold_out_validation:
        from onnx_approx.significance.analysis import AnalysisConfig

        hold_out = AnalysisConfig(val_fraction=args.val_fraction, val_samples=args.val_samples, seed=args.val_seed)
    metrics = finetune(args.model, task_data_from_args(args), args.out, config, hold_out=hold_out,
                       overwrite=args.overwrite)
    print_metrics_table([("pytorch", metrics["dev"])], metrics["main_metric"])
    print(f"saved to {args.out} ({metrics['train']['seconds']:.0f} s of training)")
    return 0
