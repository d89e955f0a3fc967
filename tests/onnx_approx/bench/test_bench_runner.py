"""Timing engines side by side (shapes, feeds, threads) and scoring them through one metric code path."""

from __future__ import annotations

import time

import numpy as np
import pytest

from onnx_approx.bench import BenchEngine, build_baselines, evaluate_engines, parse_shape, parse_shapes, run_bench
from onnx_approx.evaluate import TorchEngine


class FakeEngine:
    """Records the batches it gets and sleeps `delay` seconds per call."""

    def __init__(self, uses_token_type_ids: bool, delay: float = 0.0):
        self.uses_token_type_ids, self.delay, self.name = uses_token_type_ids, delay, "fake"
        self.batches: list[dict[str, np.ndarray]] = []

    def __call__(self, batch):
        self.batches.append(batch)
        time.sleep(self.delay)
        return {}


class FakeTorchEngine(FakeEngine, TorchEngine):
    pass


def _bench_engine(name, engine, vocab=None, max_positions=None, baseline=False):
    return BenchEngine(name, engine, f"/{name}", 1000, baseline, None, vocab, max_positions)


class TestShapes:
    def test_parse(self):
        assert parse_shapes("1x128, 8X128,1x512") == [(1, 128), (8, 128), (1, 512)]
        assert parse_shape((2, 16)) == (2, 16)

    @pytest.mark.parametrize("text", ["1x", "x128", "1x128x2", "ax1", "1 by 128", "-1x5"])
    def test_malformed(self, text):
        with pytest.raises(ValueError, match="expected BATCHxSEQUENCE"):
            parse_shapes(text)

    def test_zero_and_empty(self):
        with pytest.raises(ValueError, match="must be >= 1"):
            parse_shape("0x128")
        with pytest.raises(ValueError, match="no shapes given"):
            parse_shapes(" , ")


class TestRunBench:
    def test_every_engine_gets_the_same_ids_at_every_shape(self):
        a, b = FakeEngine(True), FakeEngine(False, delay=0.003)
        engines = {"a": _bench_engine("a", a, vocab=50), "b": _bench_engine("b", b, vocab=30, max_positions=64)}
        result = run_bench(engines, ["2x8", (1, 16)], threads=None, rounds=4, warmup=1, pause=0.0)
        assert result.shapes == ["2x8", "1x16"] and [e.name for e in result.engines] == ["a", "b"]
        assert all(e.timings[s].runs == 4 for e in result.engines for s in result.shapes)
        assert len(a.batches) == len(b.batches) == 2 * (1 + 4)
        assert set(a.batches[0]) == {"input_ids", "attention_mask", "token_type_ids"}
        assert set(b.batches[0]) == {"input_ids", "attention_mask"}
        for shape, i in (((2, 8), 0), ((1, 16), 5)):
            np.testing.assert_array_equal(a.batches[i]["input_ids"], b.batches[i]["input_ids"])
            assert a.batches[i]["input_ids"].shape == shape and a.batches[i]["input_ids"].max() < 30  # smallest vocab
        assert result.engines[1].timings["2x8"].p50_ms > result.engines[0].timings["2x8"].p50_ms + 2

    def test_sets_torch_threads(self, single_thread):
        import torch

        run_bench({"t": _bench_engine("t", FakeTorchEngine(False))}, ["1x4"], threads=2, rounds=1, warmup=0)
        assert torch.get_num_threads() == 2

    def test_sequence_longer_than_an_engine_takes(self):
        engines = {"b": _bench_engine("b", FakeEngine(False), max_positions=64)}
        with pytest.raises(ValueError, match="sequence 128 is longer than engine b's max_position_embeddings \\(64"):
            run_bench(engines, ["1x128"], rounds=1)
        with pytest.raises(ValueError, match="no engines"):
            run_bench({}, ["1x8"])


class TestEvaluateEngines:
    def test_metrics_match_the_pytorch_model_scored_by_hand(self, built_baselines, calibration_examples, synthetic_sentences,
                                                            single_thread):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from onnx_approx.data import Example, get_task

        reference, work = built_baselines
        engines = build_baselines(reference, work, ["torch", "ort-fp32", "ort-int8-static"], calibration_examples, 1)
        rows = synthetic_sentences(40, seed=2)
        examples = [Example(text, None, label, f"dev:{i}") for i, (text, label) in enumerate(rows)]
        metrics = evaluate_engines(engines, get_task("sst2"), examples)
        tokenizer = AutoTokenizer.from_pretrained(reference)
        model = AutoModelForSequenceClassification.from_pretrained(reference).eval()
        with torch.no_grad():
            predicted = [int(model(**tokenizer(text, return_tensors="pt")).logits.argmax()) for text, _ in rows]
        expected = np.mean([p == label for p, (_, label) in zip(predicted, rows)])
        assert metrics["torch"]["accuracy"] == pytest.approx(expected)
        assert metrics["ort-fp32"]["accuracy"] == pytest.approx(expected)
        assert set(metrics) == {"torch", "ort-fp32", "ort-int8-static"}

    def test_engine_without_tokenizer(self):
        from onnx_approx.data import get_task

        with pytest.raises(ValueError, match="engine a has no tokenizer files"):
            evaluate_engines({"a": _bench_engine("a", FakeEngine(False))}, get_task("sst2"), [])
