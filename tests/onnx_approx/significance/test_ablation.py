import copy

import numpy as np
import pytest
import torch

from onnx_approx.approximate import PlannedModel, apply_plan_torch
from onnx_approx.architectures import spec_for
from onnx_approx.plan import Plan
from onnx_approx.significance.ablation import LayerInputCache

pytestmark = pytest.mark.usefixtures("single_thread")


def one_by_one_losses(model, valset) -> np.ndarray:
    """Each example alone (no padding, no batching), loss as the HF head computes it: the independent side."""
    losses = []
    with torch.no_grad():
        for i in range(len(valset)):
            batch = valset.data.collate([i], with_token_type_ids="token_type_ids" in valset.inputs[0],
                                        with_labels=True)
            losses.append(model(**batch).loss.item())
    return np.asarray(losses)


def plan_for(model) -> Plan:
    spec = spec_for(model.config.model_type)
    return Plan.identity(spec.model_type, spec.dims(model.config))


class TestLayerInputCache:
    @pytest.mark.parametrize("model_type", ["bert", "distilbert", "roberta"])
    def test_baseline_equals_full_forward(self, lively_model, tiny_valset, model_type):
        model, tokenizer, _ = lively_model(model_type)
        valset = tiny_valset(tokenizer, model_type)
        cache = LayerInputCache(model, valset, progress=False)
        np.testing.assert_allclose(cache.baseline.losses, one_by_one_losses(model, valset), rtol=1e-4, atol=1e-5)
        assert cache.valset.metrics(cache.baseline.outputs)["accuracy"] == pytest.approx(
            np.mean(cache.baseline.outputs["logits"].argmax(-1) == [ex.label for ex in valset.examples]))

    @pytest.mark.parametrize("model_type", ["bert", "distilbert"])
    def test_change_in_upper_layer_from_cache_equals_full_forward(self, lively_model, tiny_valset, model_type):
        model, tokenizer, _ = lively_model(model_type)
        valset = tiny_valset(tokenizer, model_type)
        planned = PlannedModel(model)
        cache = LayerInputCache(model, valset, progress=False)
        plan = plan_for(model)
        plan.layers[1].attention.heads_kept = [0, 2]
        plan.layers[1].precision["ffn.output"] = "int8"
        planned.apply(plan)
        from_cache = cache.measure(start_layer=1)
        reference = one_by_one_losses(apply_plan_torch(copy.deepcopy(planned.close()), plan), valset)
        np.testing.assert_allclose(from_cache.losses, reference, rtol=1e-4, atol=1e-5)
        assert abs(from_cache.loss - cache.baseline.loss) > 1e-3  # the change mattered

    def test_committed_change_feeds_the_layers_above(self, lively_model, tiny_valset):
        model, tokenizer, _ = lively_model("bert")
        valset = tiny_valset(tokenizer)
        planned = PlannedModel(model)
        cache = LayerInputCache(model, valset, progress=False)
        plan = plan_for(model)
        plan.layers[0].ffn.remove = True
        planned.apply(plan)
        cache.commit(cache.measure(start_layer=0, record=True))
        plan.layers[1].attention.heads_kept = [3]
        planned.apply(plan)
        from_cache = cache.measure(start_layer=1)
        reference = one_by_one_losses(apply_plan_torch(copy.deepcopy(planned.close()), plan), valset)
        np.testing.assert_allclose(from_cache.losses, reference, rtol=1e-4, atol=1e-5)

    def test_qa_losses_and_scores(self, tiny_model_dir, synthetic_sentences):
        from onnx_approx.data import QAExample, get_task
        from onnx_approx.modeling import load_model
        from onnx_approx.significance.validation import ValidationSet

        loaded = load_model(tiny_model_dir("bert", head="qa"), get_task("squad"))
        examples = []
        for i, (text, _) in enumerate(synthetic_sentences(10)):
            answer = text.split()[-1]
            examples.append(QAExample(f"q{i}", "what is it", text, [answer], [len(text) - len(answer)]))
        valset = ValidationSet.build(loaded.tokenizer, get_task("squad"), examples, uses_token_type_ids=True,
                                     max_seq_len=64, batch_size=4)
        cache = LayerInputCache(loaded.model, valset, progress=False)
        with torch.no_grad():
            reference = [loaded.model(**valset.data.collate([i], with_token_type_ids=True, with_labels=True)).loss.item()
                         for i in range(len(valset))]
        np.testing.assert_allclose(cache.baseline.losses, reference, rtol=1e-4, atol=1e-5)
        assert set(valset.metrics(cache.baseline.outputs)) == {"exact_match", "f1"}

    def test_unrecorded_measurement_cannot_be_committed(self, lively_model, tiny_valset):
        model, tokenizer, _ = lively_model("bert")
        cache = LayerInputCache(model, tiny_valset(tokenizer), progress=False)
        with pytest.raises(ValueError, match="not recorded"):
            cache.commit(cache.measure(start_layer=1))
        with pytest.raises(ValueError, match="start layer 2 out of range 0..1"):
            cache.measure(start_layer=2)
