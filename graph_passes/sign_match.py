"""Substitute the sign-matching attention op for the attention core of the layers the plan names."""

from __future__ import annotations

import math

import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass

from graph_passes import sign_match_function
from graph_passes._ir_utils import graph_input, unique_name, value_names
from graph_passes.base import PlanPass
from graph_passes.structure import ATTENTION_ROLES, AttentionBlock

HEADS_FIRST = (0, 2, 1, 3)  # [B, S, H, D] -> [B, H, S, D]


def _heads_first(split: ir.Node, new_nodes: list[ir.Node]) -> ir.Value:
    """The split Q/K/V as [B, H, S, D]: the exporter's own Transpose when there is one, else a new one."""
    for use in split.outputs[0].uses():
        perm = use.node.attributes.get("perm")
        if use.node.op_type == "Transpose" and perm is not None and tuple(perm.as_ints()) == HEADS_FIRST:
            return use.node.outputs[0]
    node = ir.node("Transpose", [split.outputs[0]], {"perm": list(HEADS_FIRST)})
    new_nodes.append(node)
    return node.outputs[0]


def substitute_sign_match(
    attention: AttentionBlock, top_k: int, mask: ir.Value | None, name: str
) -> ir.Node:
    """Replace the core of `attention` by SignMatchAttention(Q, K, V, key_padding_mask); return the new node."""
    graph = attention.merge.graph
    new_nodes: list[ir.Node] = []
    q, k, v = (_heads_first(attention.splits[role], new_nodes) for role in ATTENTION_ROLES[:3])
    default = 1.0 / math.sqrt(attention.head_dim)
    scale = None if math.isclose(attention.scale, default, rel_tol=1e-6) else attention.scale
    node = sign_match_function.ir_node(q, k, v, top_k=top_k, key_padding_mask=mask, scale=scale,
                                       name=unique_name(graph, name))
    new_nodes.append(node)
    taken = value_names(graph)
    for new in new_nodes:
        new.outputs[0].name = unique_name(graph, f"{name}_{new.op_type}", taken)
    first_reader = min((use.node for use in attention.core_output.uses()), key=list(graph).index)
    graph.insert_before(first_reader, new_nodes)
    ir.convenience.replace_all_uses_with(attention.core_output, node.outputs[0])
    attention.core, attention.core_output = [node], node.outputs[0]
    return node


class SignMatchPass(PlanPass):
    """Layers with `sign_match_top_k` run SignMatchAttention (its model-local function added) on their heads."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        graph = model.graph
        mask = graph_input(graph, "attention_mask")
        for layer in self.structure.layers:
            top_k = self.plan.layers[layer.index].attention.sign_match_top_k
            if top_k is None or layer.sign_match is not None:
                continue
            if layer.attention is None:
                self.note(f"layer {layer.index}: attention removed, sign matching not applied")
                continue
            layer.sign_match = substitute_sign_match(
                layer.attention, top_k, mask, f"layer{layer.index}.sign_match_attention"
            )
            self.note(f"layer {layer.index}: SignMatchAttention top_k={top_k} on {layer.attention.num_heads} heads")
        if layer_nodes := [layer.sign_match for layer in self.structure.layers if layer.sign_match is not None]:
            sign_match_function.add_to_model(model)
            RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(layer_nodes))
