"""Time engines side by side, and score them on a task, filling a BenchResult.

All engines run in this process on the same random token ids per shape (full attention mask), interleaved in
a new random order every round after a warm-up, with a short pause before each call (see
`onnx_approx.timing`). ORT sessions come without spinning threads; PyTorch gets the same thread count.
"""

from __future__ import annotations

import logging
import os
import platform
import random
from collections.abc import Mapping, Sequence
from functools import partial

import onnxruntime as ort

from onnx_approx.bench.engines import BenchEngine
from onnx_approx.bench.result import BenchResult, EngineResult
from onnx_approx.data import TaskSpec
from onnx_approx.evaluate import TorchEngine
from onnx_approx.timing import time_interleaved, token_feeds

log = logging.getLogger(__name__)

FALLBACK_VOCAB = 100  # token ids drawn below this when no engine states its vocabulary size


def parse_shape(text: str | tuple[int, int]) -> tuple[int, int]:
    """"8x128" (batch x sequence) -> (8, 128); a (batch, sequence) pair passes through, checked."""
    if isinstance(text, str):
        parts = text.strip().lower().split("x")
        if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
            raise ValueError(f"bad shape {text!r}: expected BATCHxSEQUENCE with positive integers, e.g. 1x128")
        text = (int(parts[0]), int(parts[1]))
    batch, seq = text
    if batch < 1 or seq < 1:
        raise ValueError(f"bad shape {batch}x{seq}: batch and sequence must be >= 1")
    return batch, seq


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """"1x128,8x128,1x512" -> [(1, 128), (8, 128), (1, 512)]."""
    shapes = [parse_shape(part) for part in text.split(",") if part.strip()]
    if not shapes:
        raise ValueError("no shapes given; expected e.g. 1x128,8x128,1x512")
    return shapes


def _check_fits(engines: Mapping[str, BenchEngine], shapes: list[tuple[int, int]]) -> None:
    longest = max(seq for _, seq in shapes)
    for name, e in engines.items():
        if e.max_positions is not None and longest > e.max_positions:
            raise ValueError(f"shape with sequence {longest} is longer than engine {name}'s "
                             f"max_position_embeddings ({e.max_positions}, {e.path})")


def environment() -> dict[str, object]:
    """Facts about where the figures were taken (the machine may be shared: the load average says so)."""
    return {"onnxruntime": ort.__version__, "machine": platform.machine(), "cpu_count": os.cpu_count(),
            "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None}


def run_bench(
    engines: Mapping[str, BenchEngine],
    shapes: Sequence[str | tuple[int, int]],
    threads: int | None = None,
    rounds: int = 60,
    *,
    warmup: int = 3,
    pause: float = 0.003,
    seed: int = 0,
) -> BenchResult:
    """p50/p90 latency of every engine at every shape ("1x128" or (1, 128)), all interleaved; `threads` is the
    PyTorch thread count (ORT sessions got theirs when opened)."""
    if not engines:
        raise ValueError("no engines to benchmark")
    parsed = [parse_shape(s) for s in shapes]
    _check_fits(engines, parsed)
    if threads and any(isinstance(e.engine, TorchEngine) for e in engines.values()):
        import torch

        torch.set_num_threads(threads)
    vocab = min((e.vocab_size for e in engines.values() if e.vocab_size), default=FALLBACK_VOCAB)
    rng = random.Random(seed)
    timings: dict[str, dict] = {name: {} for name in engines}
    for batch, seq in parsed:
        label = f"{batch}x{seq}"
        calls = {}
        for name, e in engines.items():
            names = ["input_ids", "attention_mask"] + (["token_type_ids"] if e.engine.uses_token_type_ids else [])
            calls[name] = partial(e.engine, token_feeds(names, batch, seq, vocab, seed))
        log.info("timing %d engines at %s: %d rounds", len(calls), label, rounds)
        for name, timing in time_interleaved(calls, rounds, warmup=warmup, pause=pause, rng=rng).items():
            timings[name][label] = timing
    results = [EngineResult(name, str(e.path), e.size_bytes, e.baseline, timings[name]) for name, e in engines.items()]
    return BenchResult([f"{b}x{s}" for b, s in parsed], threads, rounds, warmup, pause * 1e3, results, environment())


def evaluate_engines(
    engines: Mapping[str, BenchEngine], task: TaskSpec, examples: list, *, max_seq_len: int | None = None,
    batch_size: int = 64,
) -> dict[str, dict[str, float]]:
    """Each engine's metrics on `examples`, through `onnx_approx.evaluate` with its own tokenizer."""
    from transformers import AutoTokenizer

    from onnx_approx.dataset import default_max_seq_len, encode_dataset
    from onnx_approx.evaluate import evaluate_engine

    max_seq_len = max_seq_len or default_max_seq_len(task)
    encoded: dict = {}  # tokenizer folder -> (tokenizer, encoded examples)
    metrics = {}
    for name, e in engines.items():
        if e.tokenizer_dir is None:
            raise ValueError(f"engine {name} has no tokenizer files beside {e.path}; accuracy needs them")
        if e.tokenizer_dir not in encoded:
            tokenizer = AutoTokenizer.from_pretrained(e.tokenizer_dir)
            encoded[e.tokenizer_dir] = tokenizer, encode_dataset(tokenizer, task, examples, max_seq_len)
        tokenizer, data = encoded[e.tokenizer_dir]
        result = evaluate_engine(e.engine, tokenizer, task, examples, max_seq_len=max_seq_len, batch_size=batch_size,
                                 data=data)
        log.info("%s: %s %.4f", name, task.main_metric, result.main_value)
        metrics[name] = result.metrics
    return metrics
