"""ONNX Runtime fusions after pruning (Attention, SkipLayerNormalization, BiasGelu), head counts checked.

onnxscript's `optimize_for_ort` does the fusing. Two small preparations let it fuse every export:
- each attention block's Reshape targets get its head count written out (exporters write -1), so shape
  inference knows the heads of every layer, pruned or not;
- TorchScript exports zero NaN probabilities with a one-element [0.0] where the SDPA pattern expects a
  scalar (`where_nan_scalar_rule`).
Then dynamo exports fuse to Attention and TorchScript exports to MultiHeadAttention, per-layer heads included.
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass
from onnxscript.rewriter import pattern
from onnxscript.rewriter.ort_fusions import optimize_for_ort

from graph_passes._ir_utils import constant_array, custom_functions_set_aside, feed_constant
from graph_passes.prune_heads import set_shape_element
from graph_passes.structure import EncoderStructure

log = logging.getLogger(__name__)
ORT_DOMAIN = "com.microsoft"
FUSED_ATTENTION = ("Attention", "MultiHeadAttention")


class WhereNaNScalar(pattern.RewriteRuleClassBase):
    """Where(IsNaN(p), [0.0], p) -> Where(IsNaN(p), 0.0, p): the same values (p has rank 4), in the form
    onnxscript's SDPA fusion matches."""

    def pattern(self, op, probs, zero):
        return op.Where(op.IsNaN(probs), zero, probs)

    def check(self, context, probs, zero, **_) -> pattern.MatchResult:
        check = pattern.MatchResult()
        array = constant_array(zero)
        if array is None or array.size != 1 or float(array.reshape(())) != 0.0:
            return check.fail("the replacement of NaN is not a constant zero", zero)
        if array.ndim == 0:
            return check.fail("the zero is a scalar already", zero)
        return check

    def rewrite(self, op, probs, zero, **_):
        return op.Where(op.IsNaN(probs), op.Constant(value=ir.tensor(constant_array(zero).reshape(()))), probs)


where_nan_scalar_rule = WhereNaNScalar.rule()


def write_head_counts(structure: EncoderStructure) -> None:
    """Write each attention block's head count into its split and merge Reshape targets (in place of -1)."""
    for layer in structure.layers:
        attention = layer.attention
        if attention is None or layer.sign_match is not None:
            continue
        heads, width = attention.num_heads, attention.num_heads * attention.head_dim
        for split in attention.splits.values():
            set_shape_element(split, 2, heads, heads)
        set_shape_element(attention.merge, 2, width, width)


def fold_concat(node: ir.Node, index: int, name: str) -> None:
    """Replace input `index` of `node`, a Concat of constants, by one initializer holding the result.

    onnxscript's fusion feeds Attention Concat(Wq, Wk, Wv) and Concat(bq, bk, bv) and folds them only below
    its size limit; packed into one initializer, ORT's quantizer can turn the Attention into QAttention.
    """
    concat = node.inputs[index].producer() if node.inputs[index] is not None else None
    if concat is None or concat.op_type != "Concat":
        return
    parts = [constant_array(v) for v in concat.inputs]
    if any(p is None for p in parts):
        return
    feed_constant(node, index, np.concatenate(parts, axis=concat.attributes["axis"].as_int()), name)


def query_width(node: ir.Node) -> int | None:
    """Width of the query a fused attention node computes: from its packed weight or its query input."""
    if node.op_type == "Attention":
        sizes = node.attributes.get("qkv_hidden_sizes")
        if sizes is not None:
            return sizes.as_ints()[0]
        weight = constant_array(node.inputs[1])
        return None if weight is None else weight.shape[1] // 3
    shape = node.inputs[0].shape
    return shape[-1] if shape is not None and isinstance(shape[-1], int) else None


class FusePass(ir.passes.InPlacePass):
    """Fuse for ORT with onnxscript's `optimize_for_ort`; custom ops (sign-matching attention) stay one node.

    Each fused attention's `num_heads` must match the heads its query holds (layers may keep different
    numbers of heads).
    """

    def __init__(self, structure: EncoderStructure):
        super().__init__()
        self.structure = structure
        self.fusions: dict[str, int] = {}
        self.attention_heads: list[int] = []

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        before = Counter((n.domain, n.op_type) for n in model.graph)
        write_head_counts(self.structure)
        where_nan_scalar_rule.apply_to_model(model)
        with custom_functions_set_aside(model):
            fused, counts = optimize_for_ort(model)
        assert fused is model
        self.fusions = {name: count for name, count in counts.items() if count}
        head_dim = self.structure.head_dim
        for node in model.graph:
            if node.domain != ORT_DOMAIN or node.op_type not in FUSED_ATTENTION:
                continue
            if node.op_type == "Attention":
                fold_concat(node, 1, f"{node.name}_qkv_weight")
                fold_concat(node, 2, f"{node.name}_qkv_bias")
            heads, width = node.attributes["num_heads"].as_int(), query_width(node)
            if width is not None and width != heads * head_dim:
                raise ir.passes.PostconditionError(
                    f"fused {node.op_type} {node.name} has num_heads={heads} but its query holds "
                    f"{width // head_dim} heads of size {head_dim}"
                )
            self.attention_heads.append(heads)
        RemoveUnusedNodesPass()(model)
        unfused = sum(layer.attention is not None and layer.sign_match is None for layer in self.structure.layers)
        if len(self.attention_heads) < unfused:
            log.info("%d of %d attention blocks fused", len(self.attention_heads), unfused)
        after = Counter((n.domain, n.op_type) for n in model.graph)
        return ir.passes.PassResult(model, modified=before != after)
