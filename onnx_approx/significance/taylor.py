"""First-order significance: |dL/dgate| per sample for every gate, and first-order loss estimates of removals
and of quantizing each weight matrix, from one forward + backward pass over the validation set.

Each sample gets its own copy of the gates (a leading batch dimension), so one backward of the summed
per-sample losses yields every sample's gradient exactly. With all gates at 1, removing a component changes
the loss by about -dL/dgate (first order), and quantizing a matrix by about dL/dW . (W_q - W).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from onnx_approx.architectures import MATRIX_ROLES, spec_for
from onnx_approx.significance.gates import Component, GateLayout, Gates, gated
from onnx_approx.significance.precision import fake_quantize
from onnx_approx.significance.validation import ValidationSet, model_inputs, per_sample_loss


@dataclass
class FirstOrderScores:
    """`score[c]`: mean over samples of |dL_i/dgate_c|; `estimate[c]`: -mean dL_i/dgate_c (first-order loss
    change when c is removed); `matrix_estimate[(layer, role, precision)]`: first-order loss change of
    quantizing that matrix."""

    score: dict[Component, float]
    estimate: dict[Component, float]
    matrix_estimate: dict[tuple[int, str, str], float]


def _matrices(model: nn.Module) -> dict[tuple[int, str], nn.Module]:
    spec = spec_for(model.config.model_type)
    layers = model.base_model.get_submodule(spec.layers)
    found = {}
    for index, layer in enumerate(layers):
        for role in MATRIX_ROLES:
            try:
                module = layer.get_submodule(spec.matrices[role])
            except AttributeError:
                continue
            if isinstance(module, nn.Linear) and not parametrize.is_parametrized(module, "weight"):
                found[(index, role)] = module
    return found


def first_order_scores(model: nn.Module, valset: ValidationSet, layout: GateLayout,
                       precisions: tuple[str, ...] = ("int8", "int4"), progress: bool = True) -> FirstOrderScores:
    """Scores of every component of `layout` (and every fp32 matrix for each of `precisions`) on `valset`.

    Components the model already removes (its own gates at 0) score 0.
    """
    model.eval()
    matrices = _matrices(model)
    weights = [m.weight for m in matrices.values()]
    with torch.no_grad():
        deltas = {(key, p): fake_quantize(m.weight, p) - m.weight for key, m in matrices.items() for p in precisions}
    abs_sum = {kind: torch.zeros(t.shape) for kind, t in Gates(layout).tensors().items()}
    grad_sum = {kind: torch.zeros(t.shape) for kind, t in Gates(layout).tensors().items()}
    matrix_sum = dict.fromkeys(deltas, 0.0)
    for batch in tqdm(valset.inputs, desc="first-order scores", leave=False, disable=not progress, dynamic_ncols=True):
        gates = Gates(layout, batch_size=batch["input_ids"].shape[0], requires_grad=True)
        tensors = gates.tensors()
        with gated(model, gates):
            loss = per_sample_loss(valset.task, model(**model_inputs(batch)), batch).sum()
        grads = torch.autograd.grad(loss, [*tensors.values(), *weights], allow_unused=True)
        for kind, grad in zip(tensors, grads):
            abs_sum[kind] += grad.abs().sum(0)
            grad_sum[kind] += grad.sum(0)
        weight_grads = dict(zip(matrices, grads[len(tensors):]))
        for (key, p), delta in deltas.items():
            if weight_grads[key] is not None:
                matrix_sum[(key, p)] += float((weight_grads[key] * delta).sum())
    n = len(valset)
    score, estimate = {}, {}
    for component in layout.components():
        where = (component.layer,) if component.index is None else (component.layer, component.index)
        score[component] = float(abs_sum[component.kind][where]) / n
        estimate[component] = -float(grad_sum[component.kind][where]) / n
    matrix_estimate = {(layer, role, p): value / n for ((layer, role), p), value in matrix_sum.items()}
    return FirstOrderScores(score, estimate, matrix_estimate)
