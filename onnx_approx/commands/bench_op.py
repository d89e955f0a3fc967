"""Time one attention layer: the SignMatchAttention kernel vs ONNX Runtime's fused attention.

Same random Q/K/V for every engine (fp32, batch 1 by default): SignMatchAttention with each K, ORT's
contrib MultiHeadAttention and the ONNX opset-23 Attention. Engines run interleaved in random order
after a warm-up; the table gives p50 / p90 / min in ms and the speed-up over the fastest ORT engine.
Needs the compiled kernel (`make ops`).

Examples:
  onnx-approx bench-op                                   # full grid: D 32,64 x S 128..4096 x K 32,64
  onnx-approx bench-op --head-dims 32 --seq-lens 512 2048 --top-ks 32 --rounds 30 --json bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

NAME = "bench-op"
HELP = "benchmark the sign-matching attention kernel against ORT attention"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from onnx_approx.ops.bench_op import BenchConfig

    d = BenchConfig()
    parser.add_argument("--head-dims", type=int, nargs="+", default=list(d.head_dims), help="head dimensions D")
    parser.add_argument("--seq-lens", type=int, nargs="+", default=list(d.seq_lens), help="sequence lengths S")
    parser.add_argument("--top-ks", type=int, nargs="+", default=list(d.top_ks), help="keys per query K")
    parser.add_argument("--heads", type=int, default=d.heads, help=f"attention heads (default {d.heads})")
    parser.add_argument("--batch", type=int, default=d.batch, help=f"batch size (default {d.batch})")
    parser.add_argument("--threads", type=int, default=d.threads, help=f"ORT intra-op threads (default {d.threads})")
    parser.add_argument("--rounds", type=int, default=d.rounds, help=f"timed rounds per shape (default {d.rounds})")
    parser.add_argument("--max-seconds", type=float, default=d.max_seconds,
                        help=f"stop a shape's rounds after this many seconds (default {d.max_seconds:g})")
    parser.add_argument("--json", type=Path, help="also write the results as JSON to this file")


def run(args: argparse.Namespace) -> int:
    from onnx_approx.io_utils import atomic_write_text
    from onnx_approx.ops.bench_op import BenchConfig, markdown_table, rows_to_json, run_benchmark

    config = BenchConfig(
        batch=args.batch, heads=args.heads, head_dims=tuple(args.head_dims), seq_lens=tuple(args.seq_lens),
        top_ks=tuple(args.top_ks), threads=args.threads, rounds=args.rounds, max_seconds=args.max_seconds,
    )
    rows = run_benchmark(config)
    print(markdown_table(rows))
    if args.json:
        atomic_write_text(args.json, json.dumps(rows_to_json(rows, config), indent=2) + "\n")
    return 0
