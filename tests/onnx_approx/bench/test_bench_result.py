"""BenchResult: ratios against the right baselines, the table, the JSON round trip, the Pareto front and plot."""

from __future__ import annotations

import json
import random

import pytest

from onnx_approx.bench import BenchResult, EngineResult
from onnx_approx.timing import Timing

SHAPES = ["1x128", "1x512"]


def _engine(name, size, p50s, baseline=True, metric=None):
    timings = {s: Timing(p50, p50 * 1.2, p50 * 0.9, 10) for s, p50 in zip(SHAPES, p50s)}
    return EngineResult(name, f"/models/{name}", size, baseline, timings, None if metric is None else {"accuracy": metric})


def _result(with_metrics=True) -> BenchResult:
    m = (lambda v: v) if with_metrics else (lambda v: None)
    engines = [_engine("torch", 90_000_000, [25.0, 86.0], metric=m(0.90)),
               _engine("ort-fp32", 100_000_000, [20.0, 80.0], metric=m(0.90)),
               _engine("ort-int8", 25_000_000, [12.0, 70.0], metric=m(0.89)),
               _engine("ort-int8-fused", 24_000_000, [10.0, 72.0], metric=m(0.88)),
               _engine("fast", 10_000_000, [4.0, 20.0], baseline=False, metric=m(0.895))]
    return BenchResult(SHAPES, 2, 10, 3, 3.0, engines, {"onnxruntime": "x", "load_average_1min": 1.5, "cpu_count": 2})


class TestRatios:
    def test_speedups_against_fp32_and_the_fastest_int8_baseline_per_shape(self):
        result = _result()
        fast = result.engine("fast")
        assert result.fastest_int8("1x128").name == "ort-int8-fused" and result.fastest_int8("1x512").name == "ort-int8"
        assert result.speedups(fast, "1x128") == pytest.approx({"vs_fp32": 5.0, "vs_int8": 2.5})
        assert result.speedups(fast, "1x512") == pytest.approx({"vs_fp32": 4.0, "vs_int8": 3.5})
        assert result.size_ratio(fast) == pytest.approx(0.1)

    def test_user_models_named_like_int8_are_not_baselines(self):
        result = _result()
        result.engines.append(_engine("ort-int8-mine", 1, [1.0, 1.0], baseline=False))
        assert result.fastest_int8("1x128").name == "ort-int8-fused"

    def test_without_the_baselines_there_are_no_ratios(self):
        result = BenchResult(SHAPES, None, 5, 1, 0.0, [_engine("a", 10, [1.0, 2.0], baseline=False)])
        a = result.engines[0]
        assert result.speedups(a, "1x128") == {"vs_fp32": None, "vs_int8": None} and result.size_ratio(a) is None
        assert "| **a** | 0.0 | – | 1.00 / 1.20 | – | – |" in result.to_markdown()


class TestViews:
    def test_markdown_table(self):
        result = _result()
        result.task, result.split, result.main_metric = "sst2", "dev", "accuracy"
        lines = result.to_markdown().splitlines()
        assert lines[0].startswith("| engine | size MB | size / fp32 | 1x128 p50 / p90 ms | 1x128 × fp32 | 1x128 × int8 |")
        assert lines[0].endswith("| accuracy (sst2 dev) |")
        assert all(line.count("|") == 3 + 3 * 2 + 2 for line in lines[:7])
        assert "| **fast** | 10.0 | 0.100 | 4.00 / 4.80 | 5.00× | 2.50× | 20.00 / 24.00 | 4.00× | 3.50× | 0.8950 |" in lines
        assert "Fastest int8 baseline: 1x128 ort-int8-fused, 1x512 ort-int8." in result.to_markdown()
        assert "Machine load (1-min average) at the end: 1.50 on 2 CPUs." in result.to_markdown()

    def test_json_round_trip(self):
        result = _result()
        result.attach_metrics("sst2", "dev", "accuracy", {e.name: e.metrics for e in result.engines})
        data = json.loads(json.dumps(result.to_dict()))
        fast = next(e for e in data["engines"] if e["name"] == "fast")
        assert fast["timings"]["1x128"]["speedup_vs_int8"] == pytest.approx(2.5) and fast["size_vs_fp32"] == 0.1
        assert data["fastest_int8"] == {"1x128": "ort-int8-fused", "1x512": "ort-int8"}
        again = BenchResult.from_dict(data)
        assert again.to_dict() == result.to_dict() and again.to_markdown() == result.to_markdown()
        with pytest.raises(ValueError, match="'format' must be 1"):
            BenchResult.from_dict({**data, "format": 0})

    def test_attach_metrics_names_unknown_engines(self):
        with pytest.raises(ValueError, match="not measured: ghost"):
            _result().attach_metrics("sst2", "dev", "accuracy", {"ghost": {"accuracy": 1.0}})


class TestPareto:
    def test_front_is_the_non_dominated_engines(self):
        result = _result()
        result.main_metric = "accuracy"
        assert result.pareto_front() == ["fast", "ort-fp32"]  # torch: as accurate as ort-fp32, but slower
        rng = random.Random(0)
        for trial in range(20):  # against a brute-force domination check
            engines = [_engine(f"e{i}", 1, [rng.uniform(1, 10), 1.0], metric=rng.uniform(0, 1)) for i in range(8)]
            result = BenchResult(SHAPES, 1, 1, 1, 0.0, engines, main_metric="accuracy")
            points = {e.name: (e.timings["1x128"].p50_ms, e.metrics["accuracy"]) for e in engines}
            dominated = {a for a, (x, y) in points.items()
                         if any(u <= x and v >= y and (u, v) != (x, y) for b, (u, v) in points.items() if b != a)}
            assert set(result.pareto_front()) == set(points) - dominated, trial

    def test_png_only_with_metrics(self):
        assert _result(with_metrics=False).pareto_png() is None
        result = _result()
        result.task, result.split, result.main_metric = "sst2", "dev", "accuracy"
        png = result.pareto_png()
        assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
