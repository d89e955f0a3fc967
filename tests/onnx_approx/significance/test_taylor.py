import numpy as np
import pytest
import torch

from onnx_approx.significance.ablation import LayerInputCache
from onnx_approx.significance.gates import Component, GateLayout, Gates, gated
from onnx_approx.significance.precision import fake_quantize
from onnx_approx.significance.taylor import first_order_scores

pytestmark = pytest.mark.usefixtures("single_thread")

EPS = 1e-3


def losses_with_gate(model, valset, layout, component, value) -> np.ndarray:
    gates = Gates(layout)
    gates.set(component, value)
    with gated(model, gates):
        return LayerInputCache(model, valset, progress=False).baseline.losses


@pytest.mark.parametrize("model_type", ["bert", "distilbert"])
def test_gate_gradients_match_finite_differences(lively_model, tiny_valset, model_type):
    model, tokenizer, _ = lively_model(model_type)
    valset = tiny_valset(tokenizer, model_type)
    layout = GateLayout.for_model(model)  # 12 groups of 4 neurons
    scores = first_order_scores(model, valset, layout, precisions=(), progress=False)
    assert set(scores.score) == set(layout.components())
    for component in (Component("head", 0, 2), Component("group", 1, 5), Component("attention", 1),
                      Component("ffn", 0)):
        up = losses_with_gate(model, valset, layout, component, 1 + EPS)
        down = losses_with_gate(model, valset, layout, component, 1 - EPS)
        per_sample = (up - down) / (2 * EPS)  # dL_i/dgate, central difference
        assert scores.score[component] == pytest.approx(np.abs(per_sample).mean(), rel=2e-2, abs=1e-6)
        assert scores.estimate[component] == pytest.approx(-per_sample.mean(), rel=2e-2, abs=1e-6)


def test_matrix_estimate_is_the_directional_derivative(lively_model, tiny_valset):
    model, tokenizer, _ = lively_model("bert")
    valset = tiny_valset(tokenizer)
    scores = first_order_scores(model, valset, GateLayout.for_model(model), precisions=("int4",), progress=False)
    linear = model.bert.encoder.layer[1].intermediate.dense
    original = linear.weight.detach().clone()
    delta = fake_quantize(original, "int4") - original
    mean_loss = []
    for t in (EPS, -EPS):
        with torch.no_grad():
            linear.weight.copy_(original + t * delta)
        mean_loss.append(LayerInputCache(model, valset, progress=False).baseline.loss)
    with torch.no_grad():
        linear.weight.copy_(original)
    derivative = (mean_loss[0] - mean_loss[1]) / (2 * EPS)
    assert scores.matrix_estimate[(1, "ffn.intermediate", "int4")] == pytest.approx(derivative, rel=2e-2, abs=1e-6)
