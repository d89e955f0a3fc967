"""Apply a plan to a PyTorch model: physically pruned or gated, with fake quantization and top-K attention.

`apply_plan_torch(model, plan)` is what `evaluate --plan` and recovery use; `PlannedModel` keeps a full-size
model following whichever plan was applied last, which is how the search tries plans without copying it.
"""

from __future__ import annotations

from torch import nn

from onnx_approx.architectures import spec_for
from onnx_approx.plan import Plan
from onnx_approx.pruning import layer_shapes, prune_model
from onnx_approx.significance.gates import GateLayout, Gates, install_gates
from onnx_approx.significance.precision import apply_precision
from onnx_approx.topk_attention import apply_sign_match
from onnx_approx.vocabulary import apply_vocabulary

MODES = ("prune", "gate")


class PlannedModel:
    """A full-size model with gates installed; `apply(plan)` switches it to another plan in place.

    Removals are gates (hard 0/1), precision is fake quantization of the weights (parametrizations, so the
    fp32 weights stay untouched underneath), a pruned vocabulary remaps input ids to [UNK], sign matching
    swaps the attention kernel of chosen layers.
    """

    def __init__(self, model: nn.Module, layout: GateLayout | None = None):
        self.model = model
        self.spec = spec_for(model.config.model_type)
        self.dims = self.spec.dims(model.config)
        self.gates = Gates(layout or GateLayout.for_model(model))
        self._handles = install_gates(model, self.gates)

    def apply(self, plan: Plan) -> nn.Module:
        plan.check_fits(self.spec.model_type, self.dims)
        self.gates.assign(plan)
        apply_precision(self.model, plan)
        apply_vocabulary(self.model, plan)
        apply_sign_match(self.model, plan)
        return self.model

    def close(self) -> nn.Module:
        """Remove the gates and every approximation: the model is as it was."""
        self.apply(Plan.identity(self.spec.model_type, self.dims))
        for handle in self._handles:
            handle.remove()
        return self.model


def apply_plan_torch(model: nn.Module, plan: Plan, mode: str = "prune") -> nn.Module:
    """`model` (full-size, changed in place) computing what `plan` describes.

    mode "prune" cuts removed heads, neurons and blocks out of the weights (smaller and faster); "gate"
    keeps the shapes and multiplies removed parts by 0 (same outputs within float rounding). Both
    fake-quantize int8/int4 matrices with a straight-through estimator, so the result can be trained, and
    read tokens outside a pruned vocabulary as [UNK] (the embedding table keeps its size).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    spec = spec_for(model.config.model_type)
    dims = spec.dims(model.config)
    plan.check_fits(spec.model_type, dims)
    if any(shape != {"heads": dims["num_heads"], "neurons": dims["intermediate_size"]} for shape in layer_shapes(model)):
        raise ValueError("the model is already pruned (it carries its own plan); use it without another plan")
    if mode == "gate":
        return PlannedModel(model).apply(plan)
    prune_model(model, plan)
    apply_precision(model, plan)
    apply_vocabulary(model, plan)
    apply_sign_match(model, plan)
    return model
