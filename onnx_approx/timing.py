"""Interleaved latency measurement, shared by every benchmark of the project (imports neither torch nor ORT).

Several engines in one process: each runs `warmup` times, then every round runs each engine once in a new
random order, so drifting machine load hits all engines alike. An optional pause before each timed call
lets the previous engine's worker threads go idle (torch's OpenMP threads keep spinning after a call and
slow whatever runs next).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np


@dataclass
class Timing:
    """Percentiles of one engine's timed calls, in milliseconds."""

    p50_ms: float
    p90_ms: float
    min_ms: float
    runs: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Timing:
        if not seconds:
            raise ValueError("no timed calls to summarize")
        ms = np.asarray(seconds, dtype=np.float64) * 1e3
        return cls(float(np.percentile(ms, 50)), float(np.percentile(ms, 90)), float(ms.min()), len(ms))


def time_interleaved(
    calls: Mapping[str, Callable[[], object]],
    rounds: int,
    *,
    warmup: int = 1,
    pause: float = 0.0,
    max_seconds: float | None = None,
    rng: random.Random | None = None,
) -> dict[str, Timing]:
    """Time every call of `calls` (name -> zero-argument callable) over `rounds` interleaved rounds.

    `pause` seconds of sleep precede each timed call; `max_seconds` ends the rounds early (after at least
    one); `rng` orders the engines of each round (a fresh seeded one by default, for repeatable orders).
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    rng = rng or random.Random(0)
    for call in calls.values():
        for _ in range(warmup):
            call()
    seconds: dict[str, list[float]] = {name: [] for name in calls}
    order = list(calls)
    start = time.perf_counter()
    for _ in range(rounds):
        rng.shuffle(order)
        for name in order:
            if pause:
                time.sleep(pause)
            t0 = time.perf_counter()
            calls[name]()
            seconds[name].append(time.perf_counter() - t0)
        if max_seconds is not None and time.perf_counter() - start > max_seconds:
            break
    return {name: Timing.of(values) for name, values in seconds.items()}


TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def token_feeds(names: Sequence[str], batch: int, seq: int, vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """int64 inputs of a text model to time it with: random token ids in [5, vocab_size), a full attention
    mask, segment 0; only the `names` the model takes (latency does not depend on the values)."""
    unknown = set(names) - set(TOKEN_INPUTS)
    if unknown:
        raise ValueError(f"unknown model inputs {sorted(unknown)}; expected some of {list(TOKEN_INPUTS)}")
    ids = np.random.default_rng(seed).integers(min(5, vocab_size - 1), vocab_size, size=(batch, seq))
    feeds = {"input_ids": ids, "attention_mask": np.ones((batch, seq)), "token_type_ids": np.zeros((batch, seq))}
    return {name: feeds[name].astype(np.int64) for name in names}
