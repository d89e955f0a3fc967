import numpy as np
import onnx
import onnx_ir as ir
import pytest

from graph_passes import PruneHeadsPass, SignMatchPass
from graph_passes.sign_match_function import DOMAIN, OP_TYPE


class TestSignMatchPass:
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
    @pytest.mark.parametrize("model_type", ["bert", "distilbert"])
    def test_named_layers_run_sign_matching(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = export.plan()
        plan.layers[1].attention.sign_match_top_k = 2
        model, (pass_,) = export.run_passes(plan, SignMatchPass)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        nodes = [n for n in model.graph if n.op_type == OP_TYPE]
        assert [n.domain for n in nodes] == [DOMAIN] and nodes[0].attributes["top_k"].as_int() == 2
        assert nodes[0].inputs[3].name == "attention_mask"
        assert sum(n.op_type == "Softmax" for n in model.graph) == 1  # layer 0 keeps its exact core
        assert model.opset_imports[DOMAIN] == 1 and any(f.name == OP_TYPE for f in model.functions.values())
        assert pass_.changes == ["layer 1: SignMatchAttention top_k=2 on 4 heads"]
        onnx.checker.check_model(ir.to_proto(model))

    def test_after_head_pruning(self, tiny_export, ort_logits):
        export = tiny_export("roberta")
        plan = export.plan()
        plan.layers[0].attention.heads_kept = [0, 3]
        plan.layers[0].attention.sign_match_top_k = 3
        plan.layers[1].attention.sign_match_top_k = 1
        model, _ = export.run_passes(plan, PruneHeadsPass, SignMatchPass)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_removed_attention_is_left_alone(self, tiny_export):
        from graph_passes import RemoveBlocksPass

        export = tiny_export("bert")
        plan = export.plan()
        plan.layers[0].attention.remove = True
        plan.layers[0].attention.sign_match_top_k = 4
        model, (_, pass_) = export.run_passes(plan, RemoveBlocksPass, SignMatchPass)
        assert not any(n.op_type == OP_TYPE for n in model.graph)
        assert pass_.changes == ["layer 0: attention removed, sign matching not applied"]
