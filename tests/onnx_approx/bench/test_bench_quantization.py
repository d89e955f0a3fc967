"""The int8 recipes of the baselines, checked on tiny graphs against what optimum's avx512_vnni settings mean."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from onnx_approx.bench.quantization import quantize_dynamic_avx512_vnni, quantize_static_qdq

RNG = np.random.default_rng(0)
EMBEDDING = RNG.standard_normal((30, 8)).astype(np.float32)
WEIGHT = (RNG.standard_normal((8, 6)) * np.array([0.1, 1, 3, 0.5, 2, 0.01])).astype(np.float32)  # columns differ


def _model(path) -> None:
    """ids -> Gather(embedding) -> MatMul(weight) -> MatMul(activation, activation^T) -> Y."""
    nodes = [helper.make_node("Gather", ["E", "ids"], ["x"], name="gather"),
             helper.make_node("MatMul", ["x", "W"], ["h"], name="dense"),
             helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1], name="transpose"),
             helper.make_node("MatMul", ["h", "ht"], ["Y"], name="scores")]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, ["b", "s"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["b", "s", "s"])],
        [numpy_helper.from_array(EMBEDDING, "E"), numpy_helper.from_array(WEIGHT, "W")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def _run(path, ids):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})[0]


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


IDS = RNG.integers(0, 30, size=(2, 5)).astype(np.int64)


class TestDynamic:
    def test_weights_s8_symmetric_per_channel_activations_quantized_too(self, tmp_path):
        _model(tmp_path / "fp32.onnx")
        quantize_dynamic_avx512_vnni(tmp_path / "fp32.onnx", tmp_path / "int8.onnx")
        model = onnx.load(tmp_path / "int8.onnx")
        ops = [n.op_type for n in model.graph.node]
        assert "MatMul" not in ops  # MatMulConstBOnly=False: the activation x activation MatMul is int8 too
        assert ops.count("MatMulInteger") == 2 and "DynamicQuantizeLinear" in ops  # u8 activations at run time
        inits = _initializers(model)
        weight = next(v for v in inits.values() if v.dtype == np.int8 and v.shape == WEIGHT.shape)
        scale = next(v for k, v in inits.items() if k.startswith("W") and k.endswith("scale"))
        zero = next(v for k, v in inits.items() if k.startswith("W") and k.endswith("zero_point"))
        # Independent realization: symmetric int8 per output column, range [-127, 127], zero point 0.
        np.testing.assert_allclose(scale, np.abs(WEIGHT).max(axis=0) / 127, rtol=1e-6)
        assert zero.dtype == np.int8 and not zero.any()
        np.testing.assert_array_equal(weight, np.clip(np.round(WEIGHT / scale), -127, 127))
        assert any(v.dtype == np.uint8 and v.shape == EMBEDDING.shape for v in inits.values())  # Gather is u8 too
        fp32, int8 = _run(tmp_path / "fp32.onnx", IDS), _run(tmp_path / "int8.onnx", IDS)
        assert np.abs(int8 - fp32).max() < 0.1 * np.abs(fp32).max()  # three chained 8-bit roundings


class TestStatic:
    def test_qdq_with_calibrated_u8_activations_and_per_channel_s8_weights(self, tmp_path):
        _model(tmp_path / "fp32.onnx")
        feeds = [{"ids": RNG.integers(0, 30, size=(1, 4)).astype(np.int64)} for _ in range(8)]
        quantize_static_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", feeds)
        model = onnx.load(tmp_path / "qdq.onnx")
        ops = [n.op_type for n in model.graph.node]
        assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
        inits = _initializers(model)
        weight_scale = next(v for k, v in inits.items() if k.startswith("W") and k.endswith("scale"))
        assert weight_scale.shape == (WEIGHT.shape[1],)
        np.testing.assert_allclose(weight_scale, np.abs(WEIGHT).max(axis=0) / 127, rtol=1e-6)
        activation_zero_points = [v for k, v in inits.items() if k.endswith("zero_point") and v.ndim == 0]
        assert activation_zero_points and all(v.dtype == np.uint8 for v in activation_zero_points)
        fp32, qdq = _run(tmp_path / "fp32.onnx", IDS), _run(tmp_path / "qdq.onnx", IDS)
        assert np.abs(qdq - fp32).max() < 0.1 * np.abs(fp32).max()

    def test_needs_calibration_inputs(self, tmp_path):
        _model(tmp_path / "fp32.onnx")
        with pytest.raises(ValueError, match="calibration"):
            quantize_static_qdq(tmp_path / "fp32.onnx", tmp_path / "qdq.onnx", [])
