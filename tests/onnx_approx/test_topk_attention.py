import pytest
import torch

from onnx_approx.architectures import spec_for
from onnx_approx.plan import Plan
from onnx_approx.topk_attention import apply_sign_match

pytestmark = pytest.mark.usefixtures("single_thread")


def batch():
    ids = torch.randint(5, 100, (2, 9), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0  # padding keys must never be chosen
    return {"input_ids": ids, "attention_mask": mask}


def hidden(model, inputs):
    with torch.no_grad():
        out = model(**inputs, output_hidden_states=True).hidden_states[-1]
    return out[inputs["attention_mask"].bool()]


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_top_k_per_layer(lively_model, model_type):
    model, _, _ = lively_model(model_type)
    inputs = batch()
    exact = hidden(model, inputs)
    plan = Plan.identity(model_type, spec_for(model_type).dims(model.config))
    plan.layers[1].attention.sign_match_top_k = 9  # every valid key of every row: exact attention
    apply_sign_match(model, plan)
    assert torch.allclose(hidden(model, inputs), exact, atol=1e-5, rtol=0)
    plan.layers[1].attention.sign_match_top_k = 2
    apply_sign_match(model, plan)
    assert (hidden(model, inputs) - exact).abs().max() > 1e-2
    plan.layers[1].attention.sign_match_top_k = None  # back to the model's own kernel
    apply_sign_match(model, plan)
    assert torch.equal(hidden(model, inputs), exact)
