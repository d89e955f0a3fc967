"""Prune attention heads: slice Q/K/V columns and output-projection rows, fix what depends on the head count."""

from __future__ import annotations

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from graph_passes._ir_utils import add_initializer, feed_constant, forget_shapes, unique_name
from graph_passes.base import PlanPass
from graph_passes.structure import AttentionBlock, shape_pieces


def set_shape_element(reshape: ir.Node, position: int, old: int, new: int) -> bool:
    """Write `new` at entry `position` of the Reshape's target where it holds the constant `old` or -1.

    Only this Reshape sees the change: targets may be one constant or a Concat of constant and computed
    pieces shared by several Reshapes (Q, K, V and other layers), so the changed piece goes into a new Concat.
    A -1 is made explicit so that shape inference (and ORT's fusions after it) know the head count.
    """
    pieces = shape_pieces(reshape.inputs[1])
    if pieces is None:
        return False
    starts = np.cumsum([0] + [length for _, length, _ in pieces])
    index = int(np.searchsorted(starts, position, side="right")) - 1
    if index >= len(pieces):
        return False
    array, at = pieces[index][2], position - int(starts[index])
    if array is None or array[at] not in (old, -1):
        return False
    changed = array.copy()
    changed[at] = new
    graph = reshape.graph
    if len(pieces) == 1:
        feed_constant(reshape, 1, changed, f"{reshape.name}_shape")
        return True
    concat = reshape.inputs[1].producer()
    inputs = list(concat.inputs)
    inputs[index] = add_initializer(graph, changed, f"{reshape.name}_shape_piece")
    copy = ir.node("Concat", inputs, {"axis": 0}, name=unique_name(graph, f"{reshape.name}_shape"))
    copy.outputs[0].name = unique_name(graph, f"{reshape.name}_shape")
    graph.insert_before(reshape, copy)
    reshape.replace_input_with(1, copy.outputs[0])
    return True


def head_columns(heads: list[int], head_dim: int) -> np.ndarray:
    """Indices of the projection columns that belong to `heads`."""
    return np.concatenate([np.arange(h * head_dim, (h + 1) * head_dim) for h in heads])


def prune_attention_heads(attention: AttentionBlock, heads: list[int], prefix: str) -> None:
    """Keep only `heads` of one attention block (weights sliced into fresh initializers)."""
    cols = head_columns(heads, attention.head_dim)
    for role, linear in (("query", attention.query), ("key", attention.key), ("value", attention.value)):
        feed_constant(linear.matmul, 1, linear.weight_array()[:, cols], f"{prefix}.{role}.weight")
        bias = linear.bias_array()
        if bias is not None:
            feed_constant(linear.bias_add, linear.bias_index, bias[cols], f"{prefix}.{role}.bias")
    out = attention.output
    feed_constant(out.matmul, 1, out.weight_array()[cols, :], f"{prefix}.output.weight")
    old, new, d = attention.num_heads, len(heads), attention.head_dim
    for split in attention.splits.values():  # [B, S, H, D]
        set_shape_element(split, 2, old, new)
    set_shape_element(attention.merge, 2, old * d, new * d)  # [B, S, H*D]
    for node in attention.core:  # an Attention op on 3-D inputs names its head counts
        for name in ("q_num_heads", "kv_num_heads"):
            if name in node.attributes:
                node.attributes[name] = ir.AttrInt64(name, new)
    attention.num_heads = new
    forget_shapes([attention.query.matmul, attention.key.matmul, attention.value.matmul], out.matmul)


class PruneHeadsPass(PlanPass):
    """Each layer keeps the plan's `heads_kept`; layers may end with different head counts."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        for layer in self.structure.layers:
            heads = self.plan.layers[layer.index].attention.heads_kept
            attention = layer.attention
            if attention is None or heads is None or len(heads) == attention.num_heads:
                continue
            before = attention.num_heads
            prune_attention_heads(attention, heads, f"layer{layer.index}.attention")
            self.note(f"layer {layer.index}: {before} -> {len(heads)} heads (kept {heads})")
        if self.changes:
            RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(self.changes))
