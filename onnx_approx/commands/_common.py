"""Arguments shared by several subcommands, declared once."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from onnx_approx.model_sources import DEFAULT_MODEL, MODEL_ALIASES


def add_model_argument(parser: argparse.ArgumentParser, help_extra: str = "") -> None:
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help=f"alias ({', '.join(MODEL_ALIASES)}), model folder, or hub id (online only){help_extra}. "
        f"Default: {DEFAULT_MODEL}",
    )


def add_task_arguments(parser: argparse.ArgumentParser, required: bool = True) -> None:
    from onnx_approx.data import TASKS

    group = parser.add_argument_group("data")
    group.add_argument(
        "--task",
        required=required,
        help=f"task name: {', '.join(sorted(TASKS))}; or 'table' with --train-file/--dev-file and the column flags",
    )
    group.add_argument(
        "--data-dir",
        default=None,
        help="folder with glue/, squad/, axformer-splits/ (default: $ONNX_APPROX_DATA, then ../shared/data)",
    )
    for split in ("train", "dev", "val"):
        group.add_argument(f"--{split}-file", default=None, help=f"{split} split of a table task (.csv, .tsv, .jsonl)")
    group.add_argument("--text-column", default="sentence", help="table task: text column (default sentence)")
    group.add_argument("--text-pair-column", default=None, help="table task: second text column, for pairs")
    group.add_argument("--label-column", default="label", help="table task: label column (default label)")
    group.add_argument("--regression", action="store_true", help="table task: labels are real numbers")


def task_data_from_args(args: argparse.Namespace):
    """A registered task in the data folder, or (--task table) the user's files."""
    from onnx_approx.task_data import TaskData

    if args.task == "table":
        files = {s: getattr(args, f"{s}_file") for s in ("train", "dev", "val") if getattr(args, f"{s}_file")}
        return TaskData.table(files, args.text_column, args.text_pair_column, args.label_column, args.regression)
    return TaskData.registered(args.task, args.data_dir)


def add_threads_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")


def print_metrics_table(rows: list[tuple[str, dict[str, float]]], main_metric: str) -> None:
    """A small aligned table: one row per engine, one column per metric, main metric first."""
    if not rows:
        return
    names = [main_metric] + sorted(k for k in rows[0][1] if k != main_metric)
    width = max(len(r[0]) for r in rows) + 2
    print("engine".ljust(width) + "".join(n.rjust(14) for n in names))
    for engine, metrics in rows:
        print(engine.ljust(width) + "".join(f"{metrics[n]:14.4f}" for n in names))
    sys.stdout.flush()


def dumps(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=False) + "\n"
