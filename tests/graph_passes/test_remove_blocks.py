import copy
import dataclasses

import numpy as np
import onnx_ir as ir
import pytest

from graph_passes import CleanupPass, RemoveBlocksPass, locate


class TestRemoveBlocksPass:
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_layer_keeps_layernorm_of_input_plus_output_bias(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        plan.layers[0].attention.remove = True
        plan.layers[1].ffn.remove = True
        model, (pass_,) = export.run_passes(plan, RemoveBlocksPass)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2  # the plan matters
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        assert pass_.changes == ["layer 0: attention block removed", "layer 1: FFN block removed"]

    def test_removed_blocks_take_their_weights_along(self, tiny_export):
        export = tiny_export("bert")
        plan = export.plan()
        for layer in plan.layers:
            layer.attention.remove = layer.ffn.remove = True
        model, _ = export.run_passes(plan, RemoveBlocksPass)
        ops = {n.op_type for n in model.graph}
        assert "Softmax" not in ops and "Erf" not in ops
        matrices = [v for v in model.graph.initializers.values() if v.shape is not None and len(v.shape) == 2
                    and v.shape[0] == v.shape[1] == 32 and v.name and "pooler" not in v.name]
        assert matrices == []
        assert sum(n.op_type == "LayerNormalization" for n in model.graph) == 1 + 2 * 2

    def test_without_output_bias_the_layer_normalizes_its_input(self, tiny_export, ort_logits):
        import torch

        from onnx_approx.architectures import spec_for

        export = tiny_export("bert")
        model = export.load()
        structure = locate(model, "bert")
        out = structure.layers[1].ffn.output
        ir.convenience.replace_all_uses_with(out.bias_add.outputs[0], out.matmul.outputs[0])  # drop the bias
        out.bias_add = None
        plan = export.plan()
        plan.layers[1].ffn.remove = True
        RemoveBlocksPass(structure, plan)(model)
        CleanupPass()(model)
        no_bias = copy.deepcopy(export.torch_model)
        spec = spec_for("bert")
        with torch.no_grad():
            no_bias.bert.get_submodule(spec.layers)[1].get_submodule(spec.matrices["ffn.output"]).bias.zero_()
        expected = dataclasses.replace(export, torch_model=no_bias).reference_logits(plan)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
