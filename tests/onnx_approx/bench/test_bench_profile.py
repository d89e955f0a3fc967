"""Where the time goes: ONNX Runtime's profiler summed per op type, warm-up runs left out, no trace file left."""

from __future__ import annotations

import onnx
import onnxruntime as ort
import pytest

from onnx_approx.bench.profile import op_times, profile_op_types
from onnx_approx.runtime import session_options


def executed_op_types(onnx_file, tmp_path) -> set[str]:
    """The op types of the graph ORT runs: its optimized model, saved by a session made the same way."""
    opts = session_options(1)
    opts.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    ort.InferenceSession(str(onnx_file), sess_options=opts, providers=["CPUExecutionProvider"])
    return {node.op_type for node in onnx.load(str(tmp_path / "optimized.onnx")).graph.node}


@pytest.mark.parametrize("baseline", ["ort-fp32", "ort-int8"])
def test_op_types_of_the_graph_share_the_kernel_time(built_baselines, tmp_path, baseline):
    _, work = built_baselines
    traces = tmp_path / "traces"
    traces.mkdir()
    profile = profile_op_types(work / baseline, "2x16", threads=1, runs=4, warmup=2, trace_dir=traces)
    assert list(traces.iterdir()) == []  # ORT's raw trace is gone
    assert profile.shape == "2x16" and profile.runs == 4
    assert set(profile.op_ms) == executed_op_types(work / baseline / "model.onnx", tmp_path)
    assert list(profile.op_ms.values()) == sorted(profile.op_ms.values(), reverse=True)
    assert sum(profile.shares.values()) == pytest.approx(1, abs=1e-6)
    assert 0 < sum(profile.op_ms.values()) <= profile.run_ms
    doc = profile.to_dict()
    assert [o["op"] for o in doc["op_types"]] == list(profile.op_ms) and doc["run_ms"] == profile.run_ms


def test_warm_up_runs_and_events_outside_runs_are_left_out():
    def node(op, ts, dur):
        return {"cat": "Node", "name": f"{op}_kernel_time", "ts": ts, "dur": dur, "args": {"op_name": op}}

    events = [
        {"cat": "Session", "name": "session_initialization", "ts": 0, "dur": 90, "args": {}},
        node("Cast", 10, 50),  # during initialization
        {"cat": "Session", "name": "model_run", "ts": 300, "dur": 100, "args": {}},  # listed out of order
        node("MatMul", 310, 60), node("Add", 380, 10),
        {"cat": "Session", "name": "model_run", "ts": 100, "dur": 100, "args": {}},  # the warm-up
        node("MatMul", 110, 900),
        {"cat": "Session", "name": "model_run", "ts": 500, "dur": 200, "args": {}},
        node("MatMul", 520, 140), node("Gelu", 600, 40),
    ]
    run_ms, op_ms = op_times(events, warmup=1)
    assert run_ms == [0.1, 0.2]
    assert op_ms == pytest.approx({"MatMul": 0.2, "Add": 0.01, "Gelu": 0.04})
    with pytest.raises(ValueError, match="no model_run events after 3 warm-up runs"):
        op_times(events, warmup=3)


def test_bad_settings_are_refused(built_baselines):
    _, work = built_baselines
    with pytest.raises(ValueError, match="runs must be >= 1"):
        profile_op_types(work / "ort-fp32", runs=0)
    with pytest.raises(ValueError, match="bad shape"):
        profile_op_types(work / "ort-fp32", "128")
