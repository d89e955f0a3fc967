"""Evaluate a PyTorch model folder, an ONNX folder or an .onnx file on a task split.

Examples:
  onnx-approx evaluate --model runs/sst2 --task sst2
  onnx-approx evaluate --model runs/sst2-onnx --task sst2 --json dev.json
  onnx-approx evaluate --model runs/sst2 --task sst2 --plan plan.json   # PyTorch with a plan applied

Both engines go through the same encoding, batching and metric code.
"""

from __future__ import annotations

import argparse

from onnx_approx.commands._common import add_task_arguments, add_threads_argument

NAME = "evaluate"
HELP = "score a PyTorch or ONNX model on a task split"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="PyTorch model folder or alias, ONNX folder, or .onnx file")
    add_task_arguments(parser)
    parser.add_argument("--split", default="dev", help="split to score (default dev)")
    parser.add_argument("--plan", default=None, help="plan.json to apply to a PyTorch model (pruning, fake quantization)")
    parser.add_argument("--max-seq-len", type=int, default=None, help="truncate longer inputs (default 128; 384 for QA)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--max-samples", type=int, default=None, help="score only the first N examples")
    parser.add_argument("--json", default=None, help="also write the metrics to this JSON file")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from onnx_approx.commands._common import dumps, print_metrics_table, task_data_from_args
    from onnx_approx.dataset import default_max_seq_len
    from onnx_approx.evaluate import evaluate_engine, open_engine
    from onnx_approx.io_utils import atomic_write_text

    data = task_data_from_args(args)
    task = data.task
    examples = data.load(args.split)
    if args.max_samples:
        examples = examples[: args.max_samples]
    max_seq_len = args.max_seq_len or default_max_seq_len(task)
    engine, tokenizer = open_engine(args.model, task, plan=args.plan, threads=args.threads)
    result = evaluate_engine(engine, tokenizer, task, examples, max_seq_len=max_seq_len, batch_size=args.batch_size)
    print_metrics_table([(engine.name, result.metrics)], task.main_metric)
    if args.json:
        payload = {"model": str(args.model), "task": task.name, "split": args.split, "engine": engine.name,
                   "main_metric": task.main_metric, "metrics": result.metrics, "samples": len(examples)}
        atomic_write_text(Path(args.json), dumps(payload))
    return 0
