import copy
import json

import pytest
import torch

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.architectures import spec_for
from onnx_approx.model_sources import PRUNED_SHAPES_FILE
from onnx_approx.modeling import count_parameters, load_model
from onnx_approx.plan import Plan, PlanError
from onnx_approx.pruning import layer_shapes, load_pruned, prune_model, save_pruned, scatter_into

pytestmark = pytest.mark.usefixtures("single_thread")

ARCHS = ("bert", "distilbert", "roberta")


def busy_plan(model) -> Plan:
    """Every kind of change at once: heads, neurons, both block removals, int8/int4, top-K attention."""
    spec = spec_for(model.config.model_type)
    plan = Plan.identity(spec.model_type, spec.dims(model.config))
    plan.layers[0].attention.heads_kept = [1, 3]
    plan.layers[0].attention.sign_match_top_k = 3
    plan.layers[0].ffn.neurons_kept = list(range(0, 48, 3))
    plan.layers[0].precision.update({"attention.value": "int8", "attention.output": "int4", "ffn.output": "int4"})
    plan.layers[1].attention.remove = True
    plan.layers[1].ffn.remove = True
    plan.layers[1].precision["ffn.intermediate"] = "int8"  # of a removed block: no effect
    return plan


def inputs(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, 100, (3, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    mask[2, 4:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def hidden_and_logits(model, batch):
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    return out.hidden_states[-1], out.logits


class TestPruneModel:
    @pytest.mark.parametrize("model_type", ARCHS)
    def test_pruned_equals_gated(self, lively_model, model_type):
        model = lively_model(model_type)[0]
        plan = busy_plan(model)
        batch = inputs()
        base_hidden, _ = hidden_and_logits(model, batch)
        gated = hidden_and_logits(apply_plan_torch(copy.deepcopy(model), plan, mode="gate"), batch)
        pruned = hidden_and_logits(apply_plan_torch(copy.deepcopy(model), plan, mode="prune"), batch)
        valid = batch["attention_mask"].bool()
        for g, p in zip(gated, pruned):
            assert torch.allclose(g, p, atol=1e-5, rtol=0)
        assert (gated[0] - base_hidden)[valid].abs().max() > 0.1  # the plan really changed the model

    @pytest.mark.parametrize("model_type", ARCHS)
    def test_shapes_and_parameters_shrink(self, lively_model, model_type):
        model = lively_model(model_type)[0]
        before = count_parameters(model)
        prune_model(model, busy_plan(model))
        assert layer_shapes(model) == [{"heads": 2, "neurons": 16}, {"heads": 0, "neurons": 0}]
        hidden = 32
        removed = (2 * 3 * (hidden * 8 + 8) + 2 * hidden * 8 + 32 * (2 * hidden + 1)  # layer 0: heads, neurons
                   + 3 * (hidden * hidden + hidden) + hidden * hidden + 48 * (2 * hidden + 1))  # layer 1
        assert before - count_parameters(model) == removed

    def test_removed_attention_is_layernorm_of_input_plus_bias(self, lively_model):
        model = lively_model("bert")[0]
        layer = model.bert.encoder.layer[0]
        bias = layer.attention.output.dense.bias.detach().clone()
        norm = copy.deepcopy(layer.attention.output.LayerNorm)
        plan = Plan.identity("bert", spec_for("bert").dims(model.config))
        plan.layers[0].attention.remove = True
        prune_model(model, plan)
        x = torch.randn(2, 5, 32)
        with torch.no_grad():
            got, _ = layer.attention(x)
            torch.testing.assert_close(got, norm(x + bias))

    def test_plan_for_another_model_is_refused(self, lively_model):
        model = lively_model("bert")[0]
        plan = Plan.identity("bert", {**spec_for("bert").dims(model.config), "num_heads": 8, "head_dim": 4})
        with pytest.raises(PlanError, match="num_heads=8, the model has num_heads=4"):
            prune_model(model, plan)
        with pytest.raises(PlanError, match="made for model_type 'distilbert'"):
            apply_plan_torch(model, Plan.identity("distilbert", spec_for("bert").dims(model.config)))
        apply_plan_torch(model, busy_plan(model))
        with pytest.raises(ValueError, match="already pruned"):
            apply_plan_torch(model, busy_plan(model))


class TestSaveLoad:
    @pytest.mark.parametrize("model_type", ARCHS)
    def test_round_trip_keeps_outputs(self, lively_model, tmp_path, model_type):
        model, tokenizer, _ = lively_model(model_type)
        plan = busy_plan(model)
        apply_plan_torch(model, plan)
        save_pruned(model, plan, tmp_path / "pruned", tokenizer=tokenizer)
        meta = json.loads((tmp_path / "pruned" / PRUNED_SHAPES_FILE).read_text())
        assert meta["layers"] == layer_shapes(model)
        assert Plan.from_dict(meta["plan"]) == plan
        loaded = load_pruned(tmp_path / "pruned")
        via_loader = load_model(tmp_path / "pruned").model
        batch = inputs(1)
        expected = hidden_and_logits(model, batch)
        for other in (loaded, via_loader):
            for a, b in zip(expected, hidden_and_logits(other, batch)):
                torch.testing.assert_close(a, b, rtol=0, atol=0)

    def test_tampered_shapes_are_refused(self, lively_model, tmp_path):
        model = lively_model("bert")[0]
        plan = busy_plan(model)
        save_pruned(prune_model(model, plan), plan, tmp_path / "pruned")
        meta_file = tmp_path / "pruned" / PRUNED_SHAPES_FILE
        meta = json.loads(meta_file.read_text())
        assert meta["architecture"] == "BertForSequenceClassification"
        meta_file.write_text(json.dumps({**meta, "architecture": "os"}))
        with pytest.raises(ValueError, match="unknown 'architecture' 'os'"):
            load_pruned(tmp_path / "pruned")
        meta["layers"][0]["heads"] = 3
        meta_file.write_text(json.dumps(meta))
        with pytest.raises(ValueError, match="recorded layer shapes"):
            load_pruned(tmp_path / "pruned")
        meta_file.write_text("{")
        with pytest.raises(ValueError, match="invalid JSON at line 1"):
            load_pruned(tmp_path / "pruned")


class TestScatterInto:
    @pytest.mark.parametrize("model_type", ARCHS)
    def test_trained_pruned_weights_go_back_into_the_full_model(self, lively_model, model_type):
        full = lively_model(model_type)[0]
        plan = busy_plan(full)
        pruned = apply_plan_torch(copy.deepcopy(full), plan)
        with torch.no_grad():  # stands for recovery training
            for p in pruned.parameters():
                p.add_(torch.randn_like(p) * 0.05)
        scatter_into(full, pruned, plan)
        gated = apply_plan_torch(full, plan, mode="gate")
        batch = inputs(2)
        for a, b in zip(hidden_and_logits(pruned, batch), hidden_and_logits(gated, batch)):
            assert torch.allclose(a, b, atol=1e-5, rtol=0)
