import math
from collections import Counter

import numpy as np
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
