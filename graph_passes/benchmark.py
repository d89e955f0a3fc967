"""What the graph passes save on a real export: exact file bytes and ONNX Runtime latency of plan variants.

    python -m graph_passes.benchmark --model runs/minilm-onnx/model.onnx [--rounds 60] [--threads 2]

Variants, all built by `apply_plan` from the export (an unfused model of the family in config.json):
- `fused`: nothing removed, ORT fusions only (the latency baseline);
- `int4-half-heads`: every matrix, the word and position embeddings and the head's projection (BERT's pooler)
  int4, every other head removed (size);
- `half-ffn`: the FFN blocks of every other layer removed, fused (speed);
- `int8-speed`: every matrix int8 in the speed layout (dynamic quantization), fused.
Latency: one process, sessions with `threads` intra-op threads and no spinning, rounds interleaved in a
random order per round with a short pause between calls; p50/p90 in ms. Speed targets live here, never in
timed unit tests.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from functools import partial
from pathlib import Path

import onnx_ir as ir
import onnxruntime as ort

from graph_passes.apply import apply_plan
from graph_passes.structure import locate
from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.plan import Plan
from onnx_approx.runtime import session_options
from onnx_approx.timing import time_interleaved, token_feeds


def variant_plans(model_type: str, dims: dict[str, int]) -> dict[str, Plan]:
    """The plans of the size and speed variants for a model of these dimensions."""
    plans = {"fused": Plan.identity(model_type, dims)}
    size = Plan.identity(model_type, dims)
    for layer in size.layers:
        layer.attention.heads_kept = list(range(0, dims["num_heads"], 2))
        layer.precision = dict.fromkeys(MATRIX_ROLES, "int4")
    size.embeddings = {"precision": "int4", "position_precision": "int4"}
    size.head = {"precision": "int4"}
    plans["int4-half-heads"] = size
    ffn = Plan.identity(model_type, dims)
    for layer in ffn.layers[1::2]:
        layer.ffn.remove = True
    plans["half-ffn"] = ffn
    speed = Plan.identity(model_type, dims, goal="faster")
    for layer in speed.layers:
        layer.precision = dict.fromkeys(MATRIX_ROLES, "int8")
    plans["int8-speed"] = speed
    return plans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m graph_passes.benchmark", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="unfused model.onnx with config.json beside it")
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--seq", type=int, default=128)
    args = parser.parse_args(argv)
    config = json.loads((args.model.parent / "config.json").read_text())
    model_type = config["model_type"]
    export = ir.load(args.model)
    dims = locate(export, model_type).dims()
    results, sessions = {}, {}
    with tempfile.TemporaryDirectory(prefix="graph-passes-bench-") as tmp:
        for name, plan in variant_plans(model_type, dims).items():
            model, _ = apply_plan(export, plan, model_type=model_type)
            path = Path(tmp, f"{name}.onnx")
            ir.save(model, path)
            results[name] = {"bytes": path.stat().st_size}
            sessions[name] = ort.InferenceSession(str(path), session_options(args.threads),
                                                  providers=["CPUExecutionProvider"])
        feeds = token_feeds([v.name for v in export.graph.inputs], args.batch, args.seq, config["vocab_size"])
        calls = {name: partial(session.run, None, feeds) for name, session in sessions.items()}
        timings = time_interleaved(calls, args.rounds, pause=0.005)
    export_bytes = args.model.stat().st_size
    base = timings["fused"].p50_ms
    print(f"export: {export_bytes:,} bytes; {args.batch}x{args.seq}, {args.threads} threads, {args.rounds} rounds")
    print(f"{'variant':<18} {'bytes':>12} {'of export':>9} {'p50 ms':>8} {'p90 ms':>8} {'speed-up':>8}")
    for name, result in results.items():
        p50, p90 = timings[name].p50_ms, timings[name].p90_ms
        print(f"{name:<18} {result['bytes']:>12,} {result['bytes'] / export_bytes:>9.4f} {p50:>8.2f} {p90:>8.2f} "
              f"{base / p50:>8.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
