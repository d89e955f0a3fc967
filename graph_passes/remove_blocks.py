"""Remove whole attention and FFN blocks: the layer keeps its residual path and LayerNorm."""

from __future__ import annotations

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from graph_passes.base import PlanPass
from graph_passes.structure import Linear


def bypass_block(residual: ir.Node, output: Linear) -> None:
    """Make `residual` = Add(block input, block output) add the output projection's bias instead of the block.

    The block's output becomes its bias alone (what a block with a zero output weight computes), so the layer
    computes LayerNorm(x + bias); without a bias the Add is skipped. Never a zero-size matrix.
    """
    index = list(residual.inputs).index(output.output)
    if output.bias is not None:
        residual.replace_input_with(index, output.bias)
    else:
        ir.convenience.replace_all_uses_with(residual.outputs[0], residual.inputs[1 - index])


class RemoveBlocksPass(PlanPass):
    """Attention/FFN blocks the plan removes are replaced by their output bias; their nodes and weights go."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        for layer in self.structure.layers:
            plan = self.plan.layers[layer.index]
            if plan.attention.remove and layer.attention is not None:
                bypass_block(layer.attention.residual, layer.attention.output)
                layer.attention = None
                self.note(f"layer {layer.index}: attention block removed")
            if plan.ffn.remove and layer.ffn is not None:
                bypass_block(layer.ffn.residual, layer.ffn.output)
                layer.ffn = None
                self.note(f"layer {layer.index}: FFN block removed")
        if self.changes:
            RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(self.changes))
