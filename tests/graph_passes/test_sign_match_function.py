"""The SignMatchAttention FunctionProto (standard ONNX ops), run by ORT without the compiled kernel,
against the NumPy reference."""

from __future__ import annotations

import numpy as np
import onnx
import onnx.inliner
import onnx_ir as ir
import onnxruntime as ort
import pytest
from onnx import TensorProto

from graph_passes import sign_match_function as smf
from onnx_approx.ops.reference import sign_match_attention_reference


def _run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """ORT on CPU with no custom-op library: the function is inlined."""
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def _inputs(seed: int, batch=2, heads=3, q_len=7, k_len=11, dim=9):
    """Q/K/V from a few values, so many keys tie on match count and some entries are -0.0 or +0.0."""
    rng = np.random.default_rng(seed)
    values = np.array([-1.5, -0.5, -0.0, 0.0, 0.5, 2.0], np.float32)
    q = rng.choice(values, (batch, heads, q_len, dim))
    k = rng.choice(values, (batch, heads, k_len, dim))
    v = rng.standard_normal((batch, heads, k_len, dim)).astype(np.float32)
    return q, k, v


class TestSignMatchFunction:
    @pytest.mark.parametrize("opset", [13, 18, 23])
    @pytest.mark.parametrize("mask_type", [None, TensorProto.INT64, TensorProto.BOOL])
    @pytest.mark.parametrize("scale", [None, 0.3])
    def test_matches_reference(self, opset, mask_type, scale):
        q, k, v = _inputs(seed=opset)
        feeds = {"Q": q, "K": k, "V": v}
        mask = None
        if mask_type is not None:
            mask = np.ones((2, 11), np.int64)
            mask[0, 8:] = 0
            mask[1, :2] = 0
            feeds["key_padding_mask"] = mask if mask_type == TensorProto.INT64 else mask.astype(bool)
        model = smf.make_model(top_k=4, key_padding_mask=mask_type, scale=scale, opset=opset)
        expected = sign_match_attention_reference(q, k, v, 4, mask, scale)
        np.testing.assert_allclose(_run(model, feeds), expected, atol=1e-5, rtol=0)

    def test_few_valid_keys_and_fully_padded_batch(self):
        q, k, v = _inputs(seed=1)
        mask = np.zeros((2, 11), np.int64)
        mask[0, [3, 9]] = 1  # fewer valid keys than top_k: both are used; batch 1 has none: zeros
        model = smf.make_model(top_k=5, key_padding_mask=TensorProto.INT64)
        out = _run(model, {"Q": q, "K": k, "V": v, "key_padding_mask": mask})
        np.testing.assert_allclose(out, sign_match_attention_reference(q, k, v, 5, mask), atol=1e-5, rtol=0)
        assert not out[1].any()

    def test_top_k_above_key_count_is_exact_attention(self):
        q, k, v = _inputs(seed=2)
        scores = np.einsum("bhid,bhjd->bhij", q.astype(np.float64), k) / 3.0  # 1/sqrt(9)
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        exact = np.einsum("bhij,bhjd->bhid", probs / probs.sum(-1, keepdims=True), v)
        np.testing.assert_allclose(_run(smf.make_model(top_k=50), {"Q": q, "K": k, "V": v}), exact, atol=1e-5)

    def test_node_without_scale_attribute_uses_the_function_default(self):
        q, k, v = _inputs(seed=5)
        model = smf.make_model(top_k=3)
        model.graph.node[0].attribute.remove(next(a for a in model.graph.node[0].attribute if a.name == "scale"))
        np.testing.assert_allclose(_run(model, {"Q": q, "K": k, "V": v}), sign_match_attention_reference(q, k, v, 3),
                                   atol=1e-5, rtol=0)

    def test_checker_accepts_model_with_custom_domain(self):
        for mask_type in (None, TensorProto.INT64):
            model = smf.make_model(top_k=3, key_padding_mask=mask_type)
            onnx.checker.check_model(model, full_check=True)
            assert any(o.domain == smf.DOMAIN and o.version == smf.OP_VERSION for o in model.opset_import)

    def test_body_uses_standard_ops_only(self):
        for with_mask in (True, False):
            function = smf.sign_match_function(18, with_mask)
            assert {node.domain for node in function.node} == {""}

    def test_inlined_model_runs_without_the_custom_domain(self):
        """What a provider without the kernel (e.g. CUDA) executes: the function inlined into standard ops."""
        q, k, v = _inputs(seed=3)
        model = onnx.inliner.inline_local_functions(smf.make_model(top_k=3))
        assert {node.domain for node in model.graph.node} == {""}
        np.testing.assert_allclose(_run(model, {"Q": q, "K": k, "V": v}), sign_match_attention_reference(q, k, v, 3),
                                   atol=1e-5, rtol=0)

    def test_add_to_onnx_ir_model_with_ir_node(self):
        q, k, v = _inputs(seed=4)
        x = [ir.Value(name=n, type=ir.TensorType(ir.DataType.FLOAT), shape=ir.Shape(a.shape))
             for n, a in zip("QKV", (q, k, v))]
        node = smf.ir_node(*x, top_k=2, scale=0.25)
        node.outputs[0].name = "Y"
        graph = ir.Graph(x, node.outputs, nodes=[node], opset_imports={"": 18})
        model = ir.Model(graph, ir_version=8)
        smf.add_to_model(model)
        smf.add_to_model(model)  # idempotent
        proto = ir.serde.serialize_model(model)
        assert len(proto.functions) == 2 and proto.ir_version >= smf.MIN_IR_VERSION
        np.testing.assert_allclose(_run(proto, {"Q": q, "K": k, "V": v}),
                                   sign_match_attention_reference(q, k, v, 2, scale=0.25), atol=1e-5, rtol=0)

    def test_add_to_model_proto_is_idempotent(self):
        model = smf.make_model(top_k=2)
        smf.add_to_model(model)
        assert len(model.functions) == 2
        assert sum(o.domain == smf.DOMAIN for o in model.opset_import) == 1

    @pytest.mark.parametrize("top_k", [0, -1, True, 2.0])
    def test_rejects_bad_top_k(self, top_k):
        with pytest.raises(ValueError, match="top_k"):
            smf.make_node("Q", "K", "V", "Y", top_k)

    def test_rejects_non_finite_scale(self):
        with pytest.raises(ValueError, match="scale"):
            smf.make_node("Q", "K", "V", "Y", 2, scale=float("inf"))

    def test_rejects_old_opset(self):
        with pytest.raises(ValueError, match="opset"):
            smf.sign_match_function(12)
