"""Time models side by side with the conventional baselines: PyTorch, ORT fp32, ORT int8 (dynamic, fused, static).

Examples:
  onnx-approx bench --reference runs/sst2 --models runs/sst2-fast runs/sst2-small --threads 2
  onnx-approx bench --models runs/a-onnx runs/b-onnx/model.onnx --shapes 1x128,1x512 --json bench.json
  onnx-approx bench --reference runs/sst2 --task sst2 --eval-samples 500 --out runs/bench   # + accuracy, plot

--reference builds the baselines (--baselines, default all) from a fine-tuned HF folder and caches them in
--work-dir (default: REFERENCE-baselines beside it; reused while the reference and the recipe are unchanged):
  torch            PyTorch eager fp32
  ort-fp32         dynamo export + onnxscript ORT fusions, full graph optimization
  ort-int8         that + quantize_dynamic as optimum's avx512_vnni (s8 symmetric per-channel weights, u8 activations)
  ort-int8-fused   TorchScript export + onnxruntime.transformers BERT optimizer + the same quantization
  ort-int8-static  ort-fp32 + static QDQ int8, activations calibrated on --calibration-samples training examples
                   (needs --task; left out without one unless asked for)
--models are ONNX model folders (written by `export` or `passes`) or .onnx files.
All engines run in one process: warm-up, then --rounds interleaved rounds in a random order per round, a short
pause before each call, no spinning threads; p50 and p90 per shape (BATCHxSEQUENCE, random token ids, full
attention mask). With --task every engine is also scored on the dev split (main metric; --eval-samples N
scores a seeded subset) and --out gets pareto.png (main metric against 1x128 latency). Shared machines are
noisy: use >= 60 rounds and rerun when p50 is far above the minimum.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from onnx_approx.commands._common import add_task_arguments, add_threads_argument

NAME = "bench"
HELP = "latency (p50/p90), size and accuracy of models beside PyTorch / ORT fp32 / ORT int8 baselines"



def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--models", nargs="+", default=[], help="ONNX model folders or .onnx files to time")
    parser.add_argument("--reference", default=None, help="fine-tuned HF model folder to build the baselines from")
    parser.add_argument("--baselines", type=_names, default=None,
                        help="comma-separated baselines to build (default: all; see above)")
    parser.add_argument("--work-dir", default=None, help="where the baselines are built and cached "
                        "(default: REFERENCE-baselines beside the reference)")
    parser.add_argument("--shapes", default="1x128,8x128,1x512", help="BATCHxSEQUENCE list (default 1x128,8x128,1x512)")
    parser.add_argument("--rounds", type=int, default=60, help="timed interleaved rounds per shape (default 60)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls per engine and shape first (default 3)")
    add_threads_argument(parser)
    parser.add_argument("--json", default=None, help="write the results as JSON to this file")
    parser.add_argument("--out", default=None,
                        help="folder for bench.md, bench.json and (with --task) pareto.png")
    add_task_arguments(parser, required=False)
    parser.add_argument("--eval-samples", type=int, default=None, help="score a seeded random subset of N dev examples")
    parser.add_argument("--calibration-samples", type=int, default=100,
                        help="training examples calibrating ort-int8-static (default 100)")


def run(args: argparse.Namespace) -> int:
    from onnx_approx.bench import build_baselines, evaluate_engines, open_models, parse_shapes, run_bench
    from onnx_approx.commands._common import task_data_from_args
    from onnx_approx.io_utils import atomic_write_text

    shapes = parse_shapes(args.shapes)
    if args.rounds < 1 or args.warmup < 0:
        raise ValueError(f"--rounds must be >= 1 and --warmup >= 0, got {args.rounds} and {args.warmup}")
    if not args.models and not args.reference:
        raise ValueError("nothing to benchmark: pass --models and/or --reference")
    if args.baselines is not None and not args.reference:
        raise ValueError("--baselines needs --reference (the fine-tuned model they are built from)")
    data = task_data_from_args(args) if args.task else None
    engines = {}
    if args.reference:
        reference = Path(args.reference)
        work_dir = Path(args.work_dir) if args.work_dir else reference.with_name(f"{reference.name}-baselines")
        calibration = data.load("train", max_samples=args.calibration_samples) if data else None
        engines = build_baselines(reference, work_dir, args.baselines, calibration, args.threads,
                                  task=data.task if data else None)
    engines |= open_models(args.models, args.threads, taken=set(engines))
    result = run_bench(engines, shapes, args.threads, args.rounds, warmup=args.warmup)
    if data:
        examples = data.load("dev", max_samples=args.eval_samples)
        metrics = evaluate_engines(engines, data.task, examples)
        result.attach_metrics(data.task.name, "dev", data.task.main_metric, metrics)
    markdown = result.to_markdown()
    print(markdown, end="")
    document = json.dumps(result.to_dict(), indent=2) + "\n"
    if args.json:
        atomic_write_text(Path(args.json), document)
    if args.out:
        result.write(args.out)
        print(f"written to {args.out}/")
    return 0
