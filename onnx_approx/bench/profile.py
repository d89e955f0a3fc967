"""Where an ONNX model's time goes: ONNX Runtime's own profiler, its per-node kernel times summed by op type.

The session is made as the bench makes it (`onnx_approx.runtime.make_session`: same threads, no spinning,
the custom-op library registered when the model needs it) and fed the bench's random token ids
(`onnx_approx.timing.token_feeds`). The profiler records every run of the session; the first `warmup`
runs are left out by their `model_run` events, and the kernel times (`cat == "Node"` events) falling
inside the remaining runs are summed per `args.op_name`. ORT's raw trace lives in a temporary folder, deleted
once read.
"""

from __future__ import annotations

import json
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from onnx_approx.bench.engines import folder_facts, onnx_file_of
from onnx_approx.bench.runner import FALLBACK_VOCAB, parse_shape
from onnx_approx.timing import token_feeds

PROFILE_RUNS = 20
PROFILE_WARMUP = 3


@dataclass
class OpProfile:
    """Mean time per run of one model at one shape: the whole run (`run_ms`, ORT's `model_run`) and the
    kernels of each op type (`op_ms`, largest first); their sum is below `run_ms` by ORT's own overhead."""

    shape: str
    runs: int
    run_ms: float
    op_ms: dict[str, float]

    @property
    def shares(self) -> dict[str, float]:
        """Each op type's fraction of the kernel time (they sum to 1)."""
        total = sum(self.op_ms.values())
        return {op: ms / total if total else 0.0 for op, ms in self.op_ms.items()}

    def to_dict(self) -> dict[str, Any]:
        shares = self.shares
        return {"shape": self.shape, "runs": self.runs, "run_ms": self.run_ms,
                "op_types": [{"op": op, "ms": ms, "share": shares[op]} for op, ms in self.op_ms.items()]}


def op_times(events: list[dict[str, Any]], warmup: int) -> tuple[list[float], dict[str, float]]:
    """From a Chrome-trace event list: the duration of each run after the first `warmup` (ms), and the
    kernel time per op type summed over those runs (ms)."""
    runs = sorted((e for e in events if e.get("cat") == "Session" and e.get("name") == "model_run"),
                  key=lambda e: e["ts"])[warmup:]
    if not runs:
        raise ValueError(f"profile: no model_run events after {warmup} warm-up runs")
    windows = [(r["ts"], r["ts"] + r["dur"]) for r in runs]
    op_us: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") == "Node" and any(start <= e["ts"] <= end for start, end in windows):
            op_us[e["args"]["op_name"]] += e["dur"]
    return [r["dur"] / 1e3 for r in runs], {op: us / 1e3 for op, us in op_us.items()}


def profile_op_types(path: str | Path, shape: str | tuple[int, int] = "1x128", *, threads: int | None = None,
                     runs: int = PROFILE_RUNS, warmup: int = PROFILE_WARMUP,
                     trace_dir: str | Path | None = None) -> OpProfile:
    """Profile the model folder or .onnx file `path` at `shape` ("BATCHxSEQ"): `warmup` runs, then `runs`
    profiled ones; ORT writes its trace into `trace_dir` (default: a temporary folder) and it is deleted."""
    from onnx_approx.runtime import make_session

    if runs < 1 or warmup < 0:
        raise ValueError(f"profile: runs must be >= 1 and warmup >= 0, got {runs} and {warmup}")
    batch, seq = parse_shape(shape)
    onnx_file = onnx_file_of(path)
    vocab = folder_facts(onnx_file.parent)["vocab_size"] or FALLBACK_VOCAB
    with tempfile.TemporaryDirectory(dir=trace_dir) as tmp:
        session = make_session(onnx_file, threads=threads, profile_prefix=Path(tmp) / "ort")
        feeds = token_feeds([i.name for i in session.get_inputs()], batch, seq, vocab)
        for _ in range(warmup + runs):
            session.run(None, feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    run_ms, op_ms = op_times(events, warmup)
    n = len(run_ms)
    ordered = dict(sorted(((op, ms / n) for op, ms in op_ms.items()), key=lambda item: -item[1]))
    return OpProfile(f"{batch}x{seq}", n, sum(run_ms) / n, ordered)
