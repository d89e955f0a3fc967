"""The packaged MiniLM-L6 (12 heads, 6 layers, FFN 1536): pruning, cached ablation and a short search on SST-2."""

import copy

import numpy as np
import pytest
import torch

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.modeling import load_model
from onnx_approx.plan import Plan
from onnx_approx.pruning import load_pruned, save_pruned
from onnx_approx.search import Search, SearchConfig
from onnx_approx.significance.ablation import LayerInputCache
from onnx_approx.significance.gates import GateLayout
from onnx_approx.significance.validation import ValidationSet, validation_examples
from onnx_approx.task_data import TaskData

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    return load_model("minilm-l6", TaskData.registered("sst2").task)


def some_plan(dims) -> Plan:
    rng = np.random.default_rng(0)
    plan = Plan.identity("bert", dims)
    plan.layers[5].attention.remove = True
    plan.layers[4].ffn.remove = True
    plan.layers[3].attention.heads_kept = sorted(rng.choice(12, 5, replace=False).tolist())
    plan.layers[2].ffn.neurons_kept = sorted(rng.choice(1536, 700, replace=False).tolist())
    plan.layers[1].precision.update({"ffn.output": "int4", "attention.query": "int8"})
    plan.layers[0].attention.sign_match_top_k = 8
    return plan


def test_pruned_gated_and_reloaded_agree(minilm, tmp_path):
    plan = some_plan(minilm.dims())
    inputs = minilm.tokenizer(["a fine, quiet film", "the plot never takes off, and the actors know it"],
                              padding=True, return_tensors="pt")
    gated = apply_plan_torch(copy.deepcopy(minilm.model), plan, mode="gate")
    pruned = apply_plan_torch(copy.deepcopy(minilm.model), plan)
    save_pruned(pruned, plan, tmp_path / "pruned")
    reloaded = load_pruned(tmp_path / "pruned")
    with torch.no_grad():
        outs = [m(**inputs, output_hidden_states=True).hidden_states[-1] for m in (gated, pruned, reloaded)]
    assert torch.allclose(outs[0], outs[1], atol=1e-4, rtol=0)
    assert torch.equal(outs[1], outs[2])


def test_search_on_sst2_sample(minilm, shared_data, tmp_path):
    data = TaskData.registered("sst2", shared_data)
    val, _, _ = validation_examples(data, 0.1, 64, seed=0)
    valset = ValidationSet.build(minilm.tokenizer, data.task, val, uses_token_type_ids=True, batch_size=32)
    model = copy.deepcopy(minilm.model)
    search = Search(model, valset, GateLayout.for_model(model), SearchConfig(goal="faster", max_rel_drop=0.05,
                    patience=2), tmp_path / "state.json", {"model": "minilm-l6"}, progress=False)
    plan = search.run()
    summary = search.summary()
    search.close()
    cache = LayerInputCache(apply_plan_torch(copy.deepcopy(minilm.model), plan), valset, progress=False)
    assert cache.baseline.loss == pytest.approx(summary["approximated"]["loss"], abs=1e-4)
