import numpy as np
import onnx_ir as ir
import pytest
import torch

from graph_passes import CleanupPass, FusePass, QuantizeWeightsPass, locate
from graph_passes.quantize import quantize_int4, quantize_int8
from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.significance.precision import fake_quantize


def _matrix(rows: int, cols: int, seed: int) -> np.ndarray:
    w = np.random.default_rng(seed).normal(size=(rows, cols)).astype(np.float32)
    w[:, 3] = 0.0  # an all-zero output channel
    w[:5, 4] = [0.5, -1.0, 0.25, 1.75, 3.5]  # values exactly half a quantization step apart
    return w


class TestQuantizers:
    """The NumPy quantizers against the project's PyTorch fake quantization (torch weights are [out, in])."""

    @pytest.mark.parametrize("rows", [32, 48, 40])
    def test_int8_per_output_channel(self, rows):
        w = _matrix(rows, 24, rows)
        q, scale = quantize_int8(w, axis=1)
        assert q.dtype == np.int8 and scale.shape == (24,) and np.abs(q).max() <= 127
        expected = fake_quantize(torch.from_numpy(w.T.copy()), "int8").numpy().T
        np.testing.assert_array_equal(q.astype(np.float32) * scale, expected)

    @pytest.mark.parametrize("rows", [32, 48, 40, 7])
    def test_int4_blocks_along_the_input(self, rows):
        w = _matrix(rows, 24, rows)
        q, scale = quantize_int4(w, axis=0)
        assert scale.shape == (-(-rows // 32), 24) and q.min() >= -8 and q.max() <= 7
        expected = fake_quantize(torch.from_numpy(w.T.copy()), "int4").numpy().T
        np.testing.assert_array_equal(q.astype(np.float32) * np.repeat(scale, 32, axis=0)[:rows], expected)

    def test_embedding_rows_are_tokens(self):
        table = _matrix(50, 64, 3)
        q8, s8 = quantize_int8(table, axis=0)
        np.testing.assert_array_equal(q8 * s8[:, None], fake_quantize(torch.from_numpy(table), "int8").numpy())
        q4, s4 = quantize_int4(table, axis=1)
        np.testing.assert_array_equal(q4 * np.repeat(s4, 32, axis=1),
                                      fake_quantize(torch.from_numpy(table), "int4").numpy())


MIXED = {
    0: {"attention.query": "int8", "attention.key": "int4", "ffn.intermediate": "int4", "ffn.output": "int8"},
    1: {"attention.query": "int8", "attention.key": "int8", "attention.value": "int8",
        "attention.output": "int4", "ffn.output": "int4"},
}


class TestQuantizeWeightsPass:
    @pytest.mark.parametrize(("model_type", "exporter", "fuse", "embeddings"), [
        ("bert", "dynamo", False, "int8"),
        ("bert", "dynamo", True, "int4"),
        ("distilbert", "torchscript", True, "int8"),
        ("roberta", "torchscript", False, "int4"),
    ])
    def test_matches_pytorch_fake_quantization(self, tiny_export, ort_logits, model_type, exporter, fuse,
                                               embeddings):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        for index, precision in MIXED.items():
            plan.layers[index].precision = dict(precision)
        plan.embeddings = {"precision": embeddings}
        model = export.load()
        structure = locate(model, model_type)
        CleanupPass()(model)
        if fuse:
            FusePass(structure)(model)
        pass_ = QuantizeWeightsPass(structure, plan)
        pass_(model)
        CleanupPass(fold=False)(model)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        assert model.opset_imports[""] >= 21  # int4 DequantizeLinear with block_size
        fused_attention = any(n.op_type == "Attention" for n in model.graph)
        assert fused_attention == (fuse and exporter == "dynamo")  # onnxscript fuses dynamo exports' attention
        # 9 matrices and the embedding; a fused layer's Q/K/V count once
        assert len(pass_.changes) == (7 if fused_attention else 10)

    def test_every_matrix_int4_shrinks_the_encoder_weights(self, tiny_export, ort_logits):
        export = tiny_export("bert")
        plan = export.plan()
        for layer in plan.layers:
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int4")
        model = export.load()
        structure = locate(model, "bert")
        shapes = [structure.layers[i].linear(r).weight_array().shape for i in range(2) for r in MATRIX_ROLES]
        fp32 = sum(4 * k * n for k, n in shapes)
        int4 = sum(k * n // 2 + 2 * -(-k // 32) * n for k, n in shapes)  # 4 bits + an fp16 scale per block
        before = sum(v.const_value.nbytes for v in model.graph.initializers.values())
        QuantizeWeightsPass(structure, plan)(model)
        after = sum(v.const_value.nbytes for v in model.graph.initializers.values())
        assert before - after == fp32 - int4
        types = {v.const_value.dtype for v in model.graph.initializers.values()}
        assert ir.DataType.INT4 in types
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)


class TestEmbeddingTablesAndHead:
    @pytest.mark.parametrize(("model_type", "exporter", "precision"), [
        ("bert", "dynamo", "int4"), ("bert", "torchscript", "int8"),
        ("distilbert", "torchscript", "int4"), ("roberta", "dynamo", "int8"),
    ])
    def test_position_embeddings_and_head_match_pytorch(self, tiny_export, ort_logits, model_type, exporter,
                                                        precision):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        plan.embeddings = {"precision": "fp32", "position_precision": precision}
        plan.head = {"precision": precision}
        model = export.load()
        structure = locate(model, model_type)
        pass_ = QuantizeWeightsPass(structure, plan)
        pass_(model)
        CleanupPass(fold=False)(model)
        assert pass_.changes == [f"position embeddings: {precision}", f"head dense: {precision}"]
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-3
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-5)

    def test_int4_scales_are_stored_as_float16(self, tiny_export, ort_logits):
        export = tiny_export("bert")
        plan = export.plan()
        for layer in plan.layers:
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int4")
        plan.embeddings = {"precision": "int4", "position_precision": "int4"}
        plan.head = {"precision": "int4"}
        model = export.load()
        QuantizeWeightsPass(locate(model, "bert"), plan)(model)
        quantized = [n for n in model.graph if n.op_type in ("DequantizeLinear", "GatherBlockQuantized")]
        assert len(quantized) == 2 * len(MATRIX_ROLES) + 3
        for node in quantized:
            scale = node.inputs[1 if node.op_type == "DequantizeLinear" else 2]
            assert scale.producer().op_type == "Cast"
            assert scale.producer().inputs[0].const_value.dtype == ir.DataType.FLOAT16
        assert not any(v.const_value.dtype == ir.DataType.FLOAT and v.name.endswith("_scale")
                       for v in model.graph.initializers.values())
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)
