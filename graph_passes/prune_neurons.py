"""Prune FFN neurons: slice the intermediate projection's columns and the output projection's rows."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from graph_passes._ir_utils import feed_constant, forget_shapes
from graph_passes.base import PlanPass
from graph_passes.structure import FFNBlock


def prune_ffn_neurons(ffn: FFNBlock, neurons: list[int], prefix: str) -> None:
    """Keep only `neurons` of one FFN block (weights sliced into fresh initializers)."""
    inter, out = ffn.intermediate, ffn.output
    feed_constant(inter.matmul, 1, inter.weight_array()[:, neurons], f"{prefix}.intermediate.weight")
    bias = inter.bias_array()
    if bias is not None:
        feed_constant(inter.bias_add, inter.bias_index, bias[neurons], f"{prefix}.intermediate.bias")
    feed_constant(out.matmul, 1, out.weight_array()[neurons, :], f"{prefix}.output.weight")
    forget_shapes([inter.matmul], out.matmul)


class PruneNeuronsPass(PlanPass):
    """Each FFN keeps the plan's `neurons_kept`."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        for layer in self.structure.layers:
            neurons = self.plan.layers[layer.index].ffn.neurons_kept
            if layer.ffn is None or neurons is None:
                continue
            width = layer.ffn.intermediate.weight_array().shape[1]
            if len(neurons) == width:
                continue
            prune_ffn_neurons(layer.ffn, neurons, f"layer{layer.index}.ffn")
            self.note(f"layer {layer.index}: {width} -> {len(neurons)} FFN neurons")
        if self.changes:
            RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(self.changes))
