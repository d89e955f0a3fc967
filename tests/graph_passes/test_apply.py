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


def _torch_logits(model, inputs, names=("logits",)):
    """Outputs of a PyTorch model with a plan applied (`apply_plan_torch`, the `evaluate --plan` path)."""
    import torch

    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()})
    return [getattr(out, name).numpy() for name in names]


class TestSizePlans:
    @pytest.mark.parametrize(("model_type", "exporter"), [("bert", "dynamo"), ("distilbert", "torchscript"),
                                                          ("roberta", "dynamo")])
    def test_int4_everything_and_a_pruned_vocabulary_match_pytorch(self, tiny_export, ort_logits, model_type,
                                                                   exporter):
        import copy

        from onnx_approx.approximate import apply_plan_torch
        from onnx_approx.architectures import MATRIX_ROLES

        export = tiny_export(model_type, exporter)
        plan = export.plan()
        for layer in plan.layers:
            layer.attention.heads_kept = [1, 3]
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int4")
        plan.embeddings = {"precision": "int4", "position_precision": "int4", "vocab_kept": [0, 1, 2, 3, 4, 8, 9, 40],
                           "special_tokens": {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}}
        plan.head = {"precision": "int4"}
        model, report = apply_plan(export.onnx_path, plan)
        saved = {record.name: record.bytes_saved for record in report.passes}
        assert saved["PruneVocabPass"] > 0 and saved["QuantizeWeightsPass"] > 0
        got = ort_logits(model, export.inputs())
        (expected,) = _torch_logits(apply_plan_torch(copy.deepcopy(export.torch_model), plan), export.inputs())
        (unpruned,) = _torch_logits(export.torch_model, export.inputs())
        assert np.abs(expected - unpruned).max() > 1e-2
        np.testing.assert_allclose(got, expected, atol=1e-4)
        assert (got.argmax(-1) == expected.argmax(-1)).all()


class TestQuestionAnswering:
    def test_pruning_and_int8_on_a_qa_export(self, tiny_model_dir, tmp_path):
        import copy

        import onnx_ir as ir
        import onnxruntime as ort
        import torch
        from transformers import AutoModelForQuestionAnswering

        from graph_passes import locate
        from onnx_approx.approximate import apply_plan_torch
        from onnx_approx.architectures import MATRIX_ROLES, spec_for
        from onnx_approx.export import export_onnx
        from onnx_approx.plan import Plan

        model = AutoModelForQuestionAnswering.from_pretrained(tiny_model_dir("bert", head="qa")).eval()
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():  # weights larger than at initialization, so every approximation shows
            for name, param in model.named_parameters():
                if param.dim() == 2 and "embeddings" not in name:
                    param.normal_(0.0, 0.3, generator=generator)
        export_onnx(model, tmp_path / "model.onnx")
        plan = Plan.identity("bert", spec_for("bert").dims(model.config))
        plan.layers[0].attention.heads_kept = [0, 3]
        plan.layers[0].ffn.neurons_kept = list(range(0, 48, 3))
        plan.layers[1].ffn.remove = True
        for layer in plan.layers:
            layer.precision = dict.fromkeys(MATRIX_ROLES, "int8")
        plan.embeddings = {"precision": "int8"}
        plan.head = {"precision": "int8"}  # a QA head has no hidden x hidden projection: nothing to do

        pruned, _ = apply_plan(tmp_path / "model.onnx", plan)
        assert locate(ir.load(tmp_path / "model.onnx"), "bert").head_dense is None
        options = ort.SessionOptions()
        options.add_session_config_entry("session.qdq_matmulnbits_accuracy_level", "1")
        session = ort.InferenceSession(ir.to_proto(pruned).SerializeToString(), options,
                                       providers=["CPUExecutionProvider"])
        rng = np.random.default_rng(0)
        inputs = {"input_ids": rng.integers(5, 100, size=(2, 12)), "attention_mask": np.ones((2, 12), np.int64),
                  "token_type_ids": np.repeat([[0] * 5 + [1] * 7], 2, axis=0)}
        got = session.run(["start_logits", "end_logits"], inputs)
        names = ("start_logits", "end_logits")
        expected = _torch_logits(apply_plan_torch(copy.deepcopy(model), plan), inputs, names)
        unpruned = _torch_logits(model, inputs, names)
        for g, e, u in zip(got, expected, unpruned, strict=True):
            assert np.abs(e - u).max() > 1e-2
            np.testing.assert_allclose(g, e, atol=1e-4)
