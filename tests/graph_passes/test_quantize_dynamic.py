import math
from collections import Counter

import numpy as np
import onnx_ir as ir
import pytest

from graph_passes import CleanupPass, DynamicQuantizePass, FusePass, QuantizeWeightsPass, locate
from graph_passes.quantize import weight_targets
from graph_passes.quantize_dynamic import int8_nodes
from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.costs import INT8_MATMUL_SPEEDUP, effective_macs_per_token, macs_per_token


class TestDynamicQuantizePass:
    def test_int8_matrices_run_as_integer_ops(self, tiny_export, ort_logits):
        export = tiny_export("bert", perturbed=False)  # weights of a trained scale: small quantization noise
        plan = export.plan()
        plan.layers[0].precision = dict.fromkeys(MATRIX_ROLES, "int8")
        plan.layers[1].precision = {"attention.query": "int8", "attention.key": "int4", "ffn.output": "int8"}
        model = export.load()
        structure = locate(model, "bert")
        CleanupPass()(model)
        FusePass(structure)(model)
        targets = weight_targets(structure, plan)
        dynamic = int8_nodes(targets)
        # layer 0: attention (all of Q/K/V int8), output, intermediate, FFN output; layer 1: FFN output
        assert Counter(n.op_type for n in dynamic) == {"Attention": 1, "MatMul": 4}
        # The "faster" goal credits exactly the MACs per token the graph runs in int8 (no lone Q of layer 1).
        int8_macs = sum(math.prod(t.node.inputs[t.index].shape) for t in targets if t.node in dynamic)
        assert int8_macs == 32 * 96 + 32 * 32 + 3 * 32 * 48  # fused [32, 3 x 32] Q/K/V, output; 3 FFN matrices
        credit = macs_per_token(plan) - effective_macs_per_token(plan)
        assert credit == pytest.approx(int8_macs * (1 - 1 / INT8_MATMUL_SPEEDUP))
        QuantizeWeightsPass(structure, plan, skip=frozenset(dynamic))(model)  # layer 1's mixed Q/K/V: QDQ
        result = DynamicQuantizePass(dynamic)(model)
        assert result.model is not model
        quantized = result.model
        CleanupPass(fold=False)(quantized)
        ops = Counter(n.op_type for n in quantized.graph)
        assert ops["QAttention"] == 1 and ops["Attention"] == 1 and ops["MatMulInteger"] == 4
        expected = export.reference_logits(plan)
        got = ort_logits(quantized, export.inputs())
        # activations are quantized too: close to the weight-only reference, not equal
        assert np.abs(got - expected).max() < 0.02 * np.abs(expected).max()

    def test_quantized_attention_still_masks_padding(self, tiny_export, ort_logits):
        """QAttention has no attention_bias input, and ORT's quantizer drops it: the padding mask must reach
        every QAttention as mask_index, read from the attention_mask input."""
        export = tiny_export("bert")
        plan = export.plan()
        for layer in plan.layers:
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int8")
        model = export.load()
        structure = locate(model, "bert")
        CleanupPass()(model)
        FusePass(structure)(model)
        quantized = DynamicQuantizePass(int8_nodes(weight_targets(structure, plan)))(model).model
        attentions = [n for n in quantized.graph if n.op_type == "QAttention"]
        assert len(attentions) == 2
        for node in attentions:
            mask = node.inputs[5]
            assert mask is not None, f"{node.name} lost its padding mask"
            assert mask.producer().op_type == "Cast" and mask.producer().inputs[0].name == "attention_mask"


class TestMaskAsIndex:
    def test_the_mask_index_masks_as_the_bias_did(self, tiny_export, ort_logits):
        """On the fp32 fused graph, the raw mask as mask_index gives the logits the attention bias gave."""
        from graph_passes.quantize_dynamic import mask_as_index

        export = tiny_export("bert")
        model = export.load()
        structure = locate(model, "bert")
        CleanupPass()(model)
        FusePass(structure)(model)
        before = ort_logits(model, export.inputs())
        attentions = [n for n in model.graph if n.op_type == "Attention"]
        assert attentions and all(len(n.inputs) > 5 and n.inputs[5] is not None for n in attentions)
        cache = {}
        assert all(mask_as_index(model.graph, n, cache) for n in attentions)
        assert all(len(n.inputs) == 4 and n.inputs[3] is cache["mask"] for n in attentions)
        CleanupPass(fold=False)(model)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), before, atol=1e-5)

    def test_a_bias_not_from_the_mask_alone_is_refused(self):
        from graph_passes.quantize_dynamic import mask_as_index

        mask = ir.Value(name="attention_mask", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([1, 4]))
        ids = ir.Value(name="input_ids", type=ir.TensorType(ir.DataType.INT64), shape=ir.Shape([1, 4]))
        bias = ir.node("Add", [ir.node("Cast", [mask], attributes={"to": ir.DataType.FLOAT}).outputs[0],
                               ir.node("Cast", [ids], attributes={"to": ir.DataType.FLOAT}).outputs[0]])
        attention = ir.node("Attention", [ids, ids, ids, None, None, bias.outputs[0]], domain="com.microsoft")
        graph = ir.Graph([mask, ids], attention.outputs, nodes=[*[v.producer() for v in bias.inputs], bias, attention])
        assert not mask_as_index(graph, attention, {})
        assert attention.inputs[5] is bias.outputs[0]  # left as it was
