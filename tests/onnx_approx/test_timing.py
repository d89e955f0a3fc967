"""The shared timing helper: percentiles, interleaving, warm-up, pause and early stop; timing inputs."""

from __future__ import annotations

import random

import numpy as np
import pytest

from onnx_approx.timing import Timing, time_interleaved, token_feeds


class TestTiming:
    def test_percentiles_in_milliseconds(self):
        seconds = [0.004, 0.001, 0.003, 0.002, 0.010]
        t = Timing.of(seconds)
        ms = sorted(s * 1e3 for s in seconds)  # linear interpolation between order statistics, by hand
        assert t.p50_ms == pytest.approx(ms[2])
        assert t.p90_ms == pytest.approx(ms[3] + 0.6 * (ms[4] - ms[3]))
        assert (t.min_ms, t.runs) == (pytest.approx(1.0), 5)

    def test_no_calls_is_an_error(self):
        with pytest.raises(ValueError, match="no timed calls"):
            Timing.of([])


class TestTimeInterleaved:
    def test_every_round_runs_each_engine_once_in_a_shuffled_order(self):
        log: list[str] = []
        calls = {name: (lambda n=name: log.append(n)) for name in "abcd"}
        timings = time_interleaved(calls, rounds=20, warmup=2, rng=random.Random(3))
        assert log[:8] == ["a", "a", "b", "b", "c", "c", "d", "d"]  # warm-up, engine by engine
        rounds = [log[8 + 4 * i: 12 + 4 * i] for i in range(20)]
        assert all(sorted(r) == list("abcd") for r in rounds)
        assert len({tuple(r) for r in rounds}) > 1  # the order changes between rounds
        assert {n: t.runs for n, t in timings.items()} == dict.fromkeys("abcd", 20)

    def test_a_slower_engine_measures_slower_and_the_pause_is_not_timed(self):
        import time

        calls = {"fast": lambda: None, "slow": lambda: time.sleep(0.004)}
        timings = time_interleaved(calls, rounds=5, warmup=0, pause=0.01)
        assert timings["slow"].min_ms >= 4.0
        assert timings["fast"].p90_ms < 4.0  # the 10 ms pause before each call is outside the timing

    def test_max_seconds_stops_after_the_first_round(self):
        timings = time_interleaved({"a": lambda: None}, rounds=1000, warmup=0, max_seconds=0.0)
        assert timings["a"].runs == 1

    def test_rounds_must_be_positive(self):
        with pytest.raises(ValueError, match="rounds must be >= 1"):
            time_interleaved({"a": lambda: None}, rounds=0)


class TestTokenFeeds:
    def test_only_the_named_inputs_int64_ids_in_range(self):
        feeds = token_feeds(["input_ids", "attention_mask"], batch=3, seq=7, vocab_size=20, seed=1)
        assert set(feeds) == {"input_ids", "attention_mask"}
        assert all(v.dtype == np.int64 and v.shape == (3, 7) for v in feeds.values())
        assert feeds["input_ids"].min() >= 5 and feeds["input_ids"].max() < 20
        assert (feeds["attention_mask"] == 1).all()
        again = token_feeds(["input_ids", "token_type_ids"], 3, 7, 20, seed=1)
        np.testing.assert_array_equal(again["input_ids"], feeds["input_ids"])
        assert (again["token_type_ids"] == 0).all()

    def test_unknown_input_is_an_error(self):
        with pytest.raises(ValueError, match="pixel_values"):
            token_feeds(["input_ids", "pixel_values"], 1, 4, 10)
