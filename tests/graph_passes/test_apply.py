from collections import Counter

import numpy as np
import pytest

from graph_passes import apply_plan
from onnx_approx.plan import PlanError


def _full_plan(export):
    plan = export.plan()
    first, second = plan.layers
    first.attention.heads_kept = [0, 2]
    first.ffn.neurons_kept = list(range(0, 48, 2))
    first.precision = {"attention.query": "int8", "attention.key": "int8", "attention.value": "int8",
                       "attention.output": "int4", "ffn.intermediate": "int8"}
    second.attention.remove = True
    second.ffn.neurons_kept = [1, 2, 3, 30, 47]
    second.precision = {"ffn.output": "int4"}
    plan.embeddings = {"precision": "int8"}
    return plan


class TestApplyPlan:
    @pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_realizes_the_plan(self, tiny_export, ort_logits, model_type, exporter):
        export = tiny_export(model_type, exporter)
        plan = _full_plan(export)
        model, report = apply_plan(export.onnx_path, plan)
        expected = export.reference_logits(plan)
        assert np.abs(expected - export.reference_logits()).max() > 1e-2
        np.testing.assert_allclose(ort_logits(model, export.inputs()), expected, atol=1e-4)
        assert report.quant_mode == "size" and report.located_by == "module paths"
        saved = {record.name: record.bytes_saved for record in report.passes}
        assert saved["RemoveBlocksPass"] > 0 and saved["PruneHeadsPass"] > 0 and saved["PruneNeuronsPass"] > 0
        assert saved["QuantizeWeightsPass"] > 0
        assert report.fused_attention_heads == [2]  # layer 1 has no attention left
        assert "PruneHeadsPass" in report.table()

    def test_sign_matching_and_speed_layout(self, tiny_export, ort_logits):
        export = tiny_export("bert", perturbed=False)
        plan = export.plan()
        plan.goal = "faster"
        plan.layers[0].precision = {"ffn.intermediate": "int8", "ffn.output": "int8"}
        plan.layers[1].attention.sign_match_top_k = 3
        model, report = apply_plan(export.onnx_path, plan)
        assert report.quant_mode == "speed"
        ops = Counter(n.op_type for n in model.graph)
        assert ops["MatMulInteger"] == 2 and ops["SignMatchAttention"] == 1 and ops["Attention"] == 1
        expected = export.reference_logits(plan)
        assert np.abs(ort_logits(model, export.inputs()) - expected).max() < 0.02 * np.abs(expected).max()

    def test_sign_matching_op_survives_the_opset_upgrade_of_int4(self, tiny_export, ort_logits):
        export = tiny_export("roberta", "torchscript")
        plan = export.plan()
        plan.layers[0].attention.sign_match_top_k = 2
        plan.layers[0].precision = {"attention.query": "int4", "ffn.output": "int4"}
        model, _ = apply_plan(export.onnx_path, plan)
        assert model.opset_imports[""] >= 21
        assert [n.op_type for n in model.graph].count("SignMatchAttention") == 1
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_without_fusion(self, tiny_export, ort_logits):
        export = tiny_export("distilbert")
        plan = _full_plan(export)
        model, report = apply_plan(export.load(), plan, fuse=False)
        assert report.fusions == {} and not any(n.domain == "com.microsoft" for n in model.graph)
        np.testing.assert_allclose(ort_logits(model, export.inputs()), export.reference_logits(plan), atol=1e-4)

    def test_input_model_is_left_unchanged(self, tiny_export):
        export = tiny_export("bert")
        model = export.load()
        nodes = len(model.graph)
        apply_plan(model, _full_plan(export))
        assert len(model.graph) == nodes

    @pytest.mark.parametrize(("field", "value", "message"), [
        ("num_layers", 3, "num_layers=3, the model has num_layers=2"),
        ("num_heads", 8, "num_heads=8, the model has num_heads=4"),
        ("head_dim", 16, "head_dim=16, the model has head_dim=8"),
        ("intermediate_size", 64, "intermediate_size=64, the model has intermediate_size=48"),
    ])
    def test_plan_for_another_model(self, tiny_export, field, value, message):
        from onnx_approx.plan import Plan

        export = tiny_export("bert")
        plan = Plan.identity("bert", {**export.dims, field: value})
        with pytest.raises(PlanError, match=message):
            apply_plan(export.onnx_path, plan)

    def test_plan_for_another_architecture(self, tiny_export):
        export = tiny_export("bert")
        with pytest.raises(PlanError, match="made for model_type 'bert', the model is 'roberta'"):
            apply_plan(export.onnx_path, export.plan(), model_type="roberta")

    def test_unknown_quant_mode(self, tiny_export):
        export = tiny_export("bert")
        with pytest.raises(ValueError, match="quant_mode must be one of size, speed"):
            apply_plan(export.onnx_path, export.plan(), quant_mode="fast")
