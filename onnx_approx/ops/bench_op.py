"""Benchmark of one attention layer: SignMatchAttention (compiled kernel) against ONNX Runtime's own
fused attention on the same Q/K/V: the contrib `MultiHeadAttention` (com.microsoft, [B, S, H*D]) and the
ONNX opset-23 `Attention` ([B, H, S, D]). fp32, `threads` intra-op threads, no spinning.

Timing: every engine runs `warmup` times, then rounds run each engine once in a random order (so
drifting machine load hits all alike) until `rounds` or `max_seconds` per shape is reached; the table
reports p50, p90 and min per engine and the speed-up over the fastest ORT engine.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper
from tqdm import tqdm

from graph_passes import sign_match_function
from onnx_approx.ops.library import kernel_isa, library_path, register_library
from onnx_approx.timing import Timing, time_interleaved

log = logging.getLogger(__name__)

BASELINES = ("MultiHeadAttention", "Attention-23")


@dataclass
class BenchConfig:
    batch: int = 1
    heads: int = 12
    head_dims: tuple[int, ...] = (32, 64)
    seq_lens: tuple[int, ...] = (128, 512, 2048, 4096)
    top_ks: tuple[int, ...] = (32, 64)
    threads: int = 2
    rounds: int = 60
    warmup: int = 3
    max_seconds: float = 30.0  # per (head_dim, seq_len) shape, all engines together
    seed: int = 0

    def validate(self) -> None:
        for name in ("batch", "heads", "threads", "rounds"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("head_dims", "seq_lens", "top_ks"):
            values = getattr(self, name)
            if not values or min(values) < 1:
                raise ValueError(f"{name} must be a non-empty list of positive integers, got {list(values)}")


@dataclass
class BenchRow:
    head_dim: int
    seq_len: int
    top_k: int
    sign_match: Timing
    baselines: dict[str, Timing] = field(default_factory=dict)

    @property
    def speedup_p50(self) -> float:
        return min(t.p50_ms for t in self.baselines.values()) / self.sign_match.p50_ms

    @property
    def speedup_min(self) -> float:
        return min(t.min_ms for t in self.baselines.values()) / self.sign_match.min_ms


def _model(nodes: list[onnx.NodeProto], inputs: list[onnx.ValueInfoProto], output_shape: list, opsets: dict[str, int],
           ir_version: int) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "attention", inputs, [helper.make_tensor_value_info("Y", TensorProto.FLOAT, output_shape)])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()], ir_version=ir_version)


def multi_head_attention_model(heads: int) -> onnx.ModelProto:
    """ORT's contrib MultiHeadAttention on [B, S, H*D] inputs."""
    shape = ["batch", "seq", "hidden"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "QKV"]
    node = helper.make_node("MultiHeadAttention", ["Q", "K", "V"], ["Y"], domain="com.microsoft", num_heads=heads)
    return _model([node], inputs, shape, {"": 18, "com.microsoft": 1}, 10)


def onnx_attention_model() -> onnx.ModelProto:
    """ONNX opset-23 Attention on [B, H, S, D] inputs."""
    shape = ["batch", "heads", "seq", "dim"]
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, shape) for n in "QKV"]
    return _model([helper.make_node("Attention", ["Q", "K", "V"], ["Y"])], inputs, shape, {"": 23}, 11)


def _session(model: onnx.ModelProto, threads: int, custom_ops: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if custom_ops and not register_library(options):
        raise ValueError(
            "the SignMatchAttention library could not be registered (see the warning above); rebuild it with `make ops`"
        )
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run_benchmark(config: BenchConfig) -> list[BenchRow]:
    """Time every (head_dim, seq_len, top_k) of `config`; raises when the kernel library is not built."""
    config.validate()
    if library_path() is None:
        raise FileNotFoundError("the SignMatchAttention kernel library is not built: run `make ops`")
    log.info("kernel %s (%s), %d threads", library_path(), kernel_isa(library_path()), config.threads)
    rng = random.Random(config.seed)
    sign_match_sessions = {k: _session(sign_match_function.make_model(k), config.threads, True) for k in config.top_ks}
    baseline_sessions = {
        "MultiHeadAttention": _session(multi_head_attention_model(config.heads), config.threads, False),
        "Attention-23": _session(onnx_attention_model(), config.threads, False),
    }
    rows = []
    shapes = [(d, s) for d in config.head_dims for s in config.seq_lens]
    for dim, seq in tqdm(shapes, desc="bench-op shapes", unit="shape"):
        data = np.random.default_rng(config.seed).standard_normal((3, config.batch, config.heads, seq, dim))
        heads_first = {name: data[i].astype(np.float32) for i, name in enumerate("QKV")}
        packed = {n: np.ascontiguousarray(x.transpose(0, 2, 1, 3).reshape(config.batch, seq, -1)) for n, x in heads_first.items()}
        engines = {f"K={k}": (s, heads_first) for k, s in sign_match_sessions.items()}
        engines["MultiHeadAttention"] = (baseline_sessions["MultiHeadAttention"], packed)
        engines["Attention-23"] = (baseline_sessions["Attention-23"], heads_first)
        calls = {name: partial(session.run, None, feeds) for name, (session, feeds) in engines.items()}
        times = time_interleaved(calls, config.rounds, warmup=config.warmup, max_seconds=config.max_seconds, rng=rng)
        baselines = {name: times[name] for name in BASELINES}
        rows.extend(BenchRow(dim, seq, k, times[f"K={k}"], baselines) for k in config.top_ks)
    return rows


def markdown_table(rows: list[BenchRow]) -> str:
    """One line per (D, S, K): p50 / p90 / min in ms per engine and the speed-up over the fastest ORT engine."""
    head = ("| D | S | K | SignMatch p50 / p90 / min | MultiHeadAttention p50 / p90 / min | "
            "Attention-23 p50 / p90 / min | speed-up p50 | speed-up min |")
    lines = [head, "|" + "---|" * 8]

    def cell(t: Timing) -> str:
        return f"{t.p50_ms:.3f} / {t.p90_ms:.3f} / {t.min_ms:.3f}"

    for r in rows:
        lines.append(
            f"| {r.head_dim} | {r.seq_len} | {r.top_k} | {cell(r.sign_match)} | {cell(r.baselines['MultiHeadAttention'])} "
            f"| {cell(r.baselines['Attention-23'])} | {r.speedup_p50:.1f}x | {r.speedup_min:.1f}x |"
        )
    return "\n".join(lines)


def rows_to_json(rows: list[BenchRow], config: BenchConfig) -> dict:
    """The results with the configuration and machine facts that produced them."""
    path = library_path()
    return {
        "config": asdict(config),
        "onnxruntime": ort.__version__,
        "kernel_isa": kernel_isa(path) if path else None,
        "rows": [{**asdict(r), "speedup_p50": r.speedup_p50, "speedup_min": r.speedup_min} for r in rows],
    }
