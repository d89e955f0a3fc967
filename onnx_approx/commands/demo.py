"""The main job on the default model and data: fine-tune, export, and score with both engines.

Example:
  onnx-approx demo                      # MiniLM-L6 on SST-2, outputs in runs/demo/
  onnx-approx demo --task rte --epochs 3

Steps whose output folder already exists are reused, so a second run only re-scores.
"""

from __future__ import annotations

import argparse

from onnx_approx.commands._common import add_model_argument, add_task_arguments, add_threads_argument

NAME = "demo"
HELP = "fine-tune the default model on SST-2, export it, score it in PyTorch and ONNX Runtime"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_model_argument(parser)
    add_task_arguments(parser, required=False)
    parser.set_defaults(task="sst2")
    parser.add_argument("--out", default="runs/demo", help="output root (default runs/demo)")
    parser.add_argument(
        "--epochs", type=float, default=1.0, help="fine-tuning epochs (default 1: SST-2 dev accuracy ~0.89 in ~25 min)"
    )
    parser.add_argument("--lr", type=float, default=5e-5, help="peak learning rate (default 5e-5)")
    parser.add_argument("--max-seq-len", type=int, default=64, help="default 64 (SST-2 sentences are short)")
    parser.add_argument("--max-train-samples", type=int, default=None, help="train on a seeded subset (default: all)")
    add_threads_argument(parser)


def run(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    import numpy as np

    from onnx_approx.commands._common import print_metrics_table, task_data_from_args
    from onnx_approx.evaluate import evaluate_engine, open_engine
    from onnx_approx.export import export_folder
    from onnx_approx.finetune import finetune
    from onnx_approx.train_config import TrainConfig

    log = logging.getLogger("onnx_approx.demo")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = Path(args.out)
    data = task_data_from_args(args)
    task = data.task
    model_dir, onnx_dir = out / f"{task.name}-finetuned", out / f"{task.name}-onnx"
    if (model_dir / "metrics.json").is_file():
        log.info("reusing fine-tuned model in %s", model_dir)
    else:
        config = TrainConfig(
            epochs=args.epochs, lr=args.lr, max_seq_len=args.max_seq_len, max_train_samples=args.max_train_samples
        )
        finetune(args.model, data, model_dir, config, overwrite=True)
    if not (onnx_dir / "model.onnx").is_file():
        export_folder(model_dir, onnx_dir, overwrite=True)
    examples = data.load("dev")
    results = []
    for path in (model_dir, onnx_dir):
        engine, tokenizer = open_engine(path, task, threads=args.threads)
        results.append(evaluate_engine(engine, tokenizer, task, examples, max_seq_len=args.max_seq_len))
    print(f"\n{task.name} dev ({len(examples)} examples):")
    print_metrics_table([(r.engine, r.metrics) for r in results], task.main_metric)
    torch_result, ort_result = results
    diff = max(float(np.abs(torch_result.outputs[k] - ort_result.outputs[k]).max()) for k in torch_result.outputs)
    if isinstance(torch_result.predictions, dict):  # QA: question id -> answer text
        same = sum(torch_result.predictions[k] == ort_result.predictions[k] for k in torch_result.predictions)
    else:
        same = int(np.sum(torch_result.predictions == ort_result.predictions))
    print(f"parity: max |output difference| {diff:.2e}, identical predictions {same}/{len(examples)}")
    print(f"\nfine-tuned model: {model_dir}\nONNX model:       {onnx_dir / 'model.onnx'}")
    return 0
