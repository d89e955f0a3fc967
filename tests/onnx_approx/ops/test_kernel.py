"""The compiled SignMatchAttention kernel in ONNX Runtime: against the NumPy reference, against the
FunctionProto fallback, inside an attention layer against PyTorch, and on bad input."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from graph_passes import sign_match_function as smf
from onnx_approx.ops import register_library
from onnx_approx.ops.reference import sign_match_attention_reference
from onnx_approx.ops.sign_match import sign_match_attention

pytestmark = pytest.mark.usefixtures("built_library")

CASES = [  # batch, heads, q_len, k_len, dim, top_k
    (1, 1, 1, 1, 1, 1),
    (3, 3, 17, 300, 33, 8),  # D not a multiple of 4 or 8; few selected keys per 64 (sparse appending)
    (3, 2, 40, 70, 20, 16),  # many selected keys per 64 (dense appending)
    (2, 2, 45, 513, 64, 13),  # D = 64 path, K not a multiple of 8
    (3, 2, 33, 257, 32, 5),  # D = 32 path
    (2, 2, 30, 200, 32, 24),  # D = 32 path, dense appending
    (2, 2, 20, 90, 16, 50),  # over 16 selected keys in one 64 (compressed appending's second chunk)
    (1, 1, 10, 64, 8, 60),  # 60 of 64 keys: every chunk of the compressed appending
    (1, 1, 300, 400, 32, 20),  # more queries than one block (256)
    (3, 1, 5, 3, 32, 8),  # top_k above the key count
    (1, 1, 12, 3000, 8, 4000),  # every key: the queries' scores don't fit one block
    (2, 2, 9, 64, 8, 1),
    (1, 2, 7, 100, 100, 10),  # counts need 7 bits
    (1, 2, 9, 150, 130, 12),  # D above 124: counts in words, threshold from a histogram
]


def _session(model: onnx.ModelProto, kernel: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    if kernel:
        assert register_library(options)
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


def _isas() -> list[str]:
    import ctypes

    from onnx_approx.ops import library_path

    if library_path() is None:
        return ["generic"]
    best = ctypes.CDLL(str(library_path()))
    best.onnx_approx_kernel_isa.restype = ctypes.c_char_p
    order = ["generic", "avx2", "avx512", "avx512icl"]
    name = best.onnx_approx_kernel_isa().decode()
    return order[: order.index(name) + 1] if name in order else ["generic"]


class TestKernel:
    @pytest.mark.parametrize("isa", _isas())
    @pytest.mark.parametrize("case", CASES)
    @pytest.mark.parametrize("mask_type", [None, TensorProto.INT64, TensorProto.BOOL])
    def test_matches_reference(self, make_inputs, make_mask, monkeypatch, isa, case, mask_type):
        monkeypatch.setenv("ONNX_APPROX_OPS_ISA", isa)
        batch, heads, q_len, k_len, dim, top_k = case
        q, k, v = make_inputs(batch, heads, q_len, k_len, dim, seed=k_len, ties=k_len % 2 == 0)
        feeds = {"Q": q, "K": k, "V": v}
        mask = None
        if mask_type is not None:
            mask = make_mask(batch, k_len)
            feeds["key_padding_mask"] = mask if mask_type == TensorProto.INT64 else mask.astype(bool)
        out = _session(smf.make_model(top_k, mask_type), kernel=True).run(None, feeds)[0]
        np.testing.assert_allclose(out, sign_match_attention_reference(q, k, v, top_k, mask), atol=1e-5, rtol=0)

    def test_ties_and_negative_zero(self, make_inputs):
        """Every key ties with many others; -0.0 and +0.0 differ in sign."""
        q, k, v = make_inputs(2, 2, 30, 600, 4, seed=9, ties=True)
        q[0, 0, 0] = [-0.0, -0.0, 0.0, 0.0]
        k[0, 0, :5] = [-0.0, -0.0, 0.0, 0.0]
        out = _session(smf.make_model(24), kernel=True).run(None, {"Q": q, "K": k, "V": v})[0]
        np.testing.assert_allclose(out, sign_match_attention_reference(q, k, v, 24), atol=1e-5, rtol=0)

    @pytest.mark.parametrize("kernel", [True, False])
    def test_no_keys_outputs_zeros(self, make_inputs, kernel):
        q, k, v = make_inputs(2, 2, 3, 0, 8)
        out = _session(smf.make_model(4), kernel=kernel).run(None, {"Q": q, "K": k, "V": v})[0]
        assert out.shape == q.shape and not out.any()

    def test_scale_attribute(self, make_inputs):
        q, k, v = make_inputs(1, 2, 5, 50, 16, seed=2)
        out = _session(smf.make_model(7, scale=0.05), kernel=True).run(None, {"Q": q, "K": k, "V": v})[0]
        np.testing.assert_allclose(out, sign_match_attention_reference(q, k, v, 7, scale=0.05), atol=1e-5, rtol=0)

    @pytest.mark.parametrize("mask_type", [None, TensorProto.INT64])
    def test_same_as_function_fallback(self, make_inputs, make_mask, mask_type):
        q, k, v = make_inputs(3, 4, 64, 384, 32, seed=4)
        feeds = {"Q": q, "K": k, "V": v}
        if mask_type is not None:
            feeds["key_padding_mask"] = make_mask(3, 384)
        model = smf.make_model(32, mask_type)
        kernel = _session(model, kernel=True).run(None, feeds)[0]
        fallback = _session(model, kernel=False).run(None, feeds)[0]
        np.testing.assert_allclose(kernel, fallback, atol=1e-5, rtol=0)


def _attention_layer_model(layer: torch.nn.Module, heads: int, top_k: int) -> onnx.ModelProto:
    """hidden [B, S, E], attention_mask [B, S] -> one BERT self-attention with SignMatchAttention at its core
    -> output projection; weights taken from `layer` (a BertLayer)."""
    attention = layer.attention
    hidden = attention.self.query.in_features
    inits, nodes = [], []

    def linear(name: str, module: torch.nn.Linear, x: str) -> str:
        inits.append(onnx.numpy_helper.from_array(module.weight.detach().numpy().T.copy(), f"{name}_w"))
        inits.append(onnx.numpy_helper.from_array(module.bias.detach().numpy(), f"{name}_b"))
        nodes.append(helper.make_node("MatMul", [x, f"{name}_w"], [f"{name}_mm"]))
        nodes.append(helper.make_node("Add", [f"{name}_mm", f"{name}_b"], [name]))
        return name

    inits.append(onnx.numpy_helper.from_array(np.array([0, 0, heads, hidden // heads], np.int64), "split_shape"))
    inits.append(onnx.numpy_helper.from_array(np.array([0, 0, hidden], np.int64), "merge_shape"))
    for role in ("query", "key", "value"):
        projected = linear(role, getattr(attention.self, role), "hidden")
        nodes.append(helper.make_node("Reshape", [projected, "split_shape"], [f"{role}_split"]))
        nodes.append(helper.make_node("Transpose", [f"{role}_split"], [f"{role}_heads"], perm=[0, 2, 1, 3]))
    nodes.append(smf.make_node("query_heads", "key_heads", "value_heads", "context", top_k, "attention_mask"))
    nodes.append(helper.make_node("Transpose", ["context"], ["context_t"], perm=[0, 2, 1, 3]))
    nodes.append(helper.make_node("Reshape", ["context_t", "merge_shape"], ["merged"]))
    linear("output", attention.output.dense, "merged")
    graph = helper.make_graph(
        nodes, "attention_layer",
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["batch", "seq", hidden]),
         helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["batch", "seq", hidden])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    smf.add_to_model(model)
    return model


class TestAttentionLayer:
    @pytest.mark.parametrize("kernel", [True, False])
    def test_onnx_layer_matches_pytorch(self, kernel):
        from transformers import BertConfig
        from transformers.models.bert.modeling_bert import BertLayer

        torch.manual_seed(0)
        config = BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=48, initializer_range=0.3)
        layer = BertLayer(config).eval()
        for module in layer.modules():  # BertLayer alone is not initialized by from_pretrained machinery
            if isinstance(module, torch.nn.Linear):
                torch.nn.init.normal_(module.weight, std=0.3)
                torch.nn.init.normal_(module.bias, std=0.1)
        heads, top_k = 4, 5
        hidden = torch.randn(2, 23, 32)
        mask = torch.ones(2, 23, dtype=torch.int64)
        mask[1, 15:] = 0
        model = _attention_layer_model(layer, heads, top_k)
        got = _session(model, kernel).run(None, {"hidden": hidden.numpy(), "attention_mask": mask.numpy()})[0]

        self_attention = layer.attention.self
        with torch.no_grad():
            split = [getattr(self_attention, r)(hidden).view(2, 23, heads, 8).transpose(1, 2) for r in ("query", "key", "value")]
            context = sign_match_attention(*split, top_k, key_padding_mask=mask)
            expected = layer.attention.output.dense(context.transpose(1, 2).reshape(2, 23, 32))
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5, rtol=0)


def _unshaped(model: onnx.ModelProto) -> onnx.ModelProto:
    """The model with its input shapes erased, so bad shapes reach the kernel instead of ORT's input check."""
    for value in model.graph.input:
        value.type.tensor_type.ClearField("shape")
    return model


class TestBadInput:
    def _run(self, model, feeds):
        return _session(model, kernel=True).run(None, feeds)

    def test_wrong_rank(self, make_inputs):
        q, k, v = make_inputs(1, 1, 3, 4, 5)
        with pytest.raises(Exception, match="SignMatchAttention: input Q must have rank 4"):
            self._run(_unshaped(smf.make_model(2)), {"Q": q[0], "K": k, "V": v})

    def test_mismatched_shapes(self, make_inputs):
        q, k, v = make_inputs(1, 2, 3, 4, 5)
        model = _unshaped(smf.make_model(2))
        with pytest.raises(Exception, match="SignMatchAttention: K .* must match Q"):
            self._run(model, {"Q": q, "K": k[:, :1], "V": v[:, :1]})
        with pytest.raises(Exception, match="SignMatchAttention: V .* must have the shape of K"):
            self._run(model, {"Q": q, "K": k, "V": v[:, :, :3]})

    def test_mask_of_wrong_shape_or_type(self, make_inputs):
        q, k, v = make_inputs(2, 1, 3, 4, 5)
        with pytest.raises(Exception, match=r"key_padding_mask must have shape \[B, Sk\] = \[2, 4\]"):
            self._run(_unshaped(smf.make_model(2, TensorProto.INT64)),
                      {"Q": q, "K": k, "V": v, "key_padding_mask": np.ones((2, 5), np.int64)})
        with pytest.raises(Exception, match="key_padding_mask must be bool or int64"):
            self._run(_unshaped(smf.make_model(2, TensorProto.FLOAT)),
                      {"Q": q, "K": k, "V": v, "key_padding_mask": np.ones((2, 4), np.float32)})

    @pytest.mark.parametrize("top_k", [0, -3, None])
    def test_bad_top_k_fails_at_session_creation(self, top_k):
        model = smf.make_model(2)
        node = model.graph.node[0]
        node.attribute.remove(next(a for a in node.attribute if a.name == "top_k"))
        if top_k is not None:
            node.attribute.append(helper.make_attribute("top_k", top_k))
        with pytest.raises(Exception, match="SignMatchAttention: attribute top_k"):
            _session(model, kernel=True)
