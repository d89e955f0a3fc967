"""Weight-only quantization of the matrices a plan names: int8/int4 initializers and their dequantization.

The rounding mirrors `onnx_approx.significance.precision` (the PyTorch fake quantization the plan was
measured with), so ONNX and PyTorch see the same dequantized weights:
- int8: symmetric, one scale per output channel, scale = max|w| / 127, q = clamp(round(w / scale), -127, 127);
- int4: symmetric, one scale per block of 32 along the input dimension, scale = max|block| / 7 rounded to
  float16 (at most 65504), q = clamp(round(w / scale), -8, 7), a short last block as if zero-padded;
- round half to even, float32 division, an all-zero channel or block has scale 0 and stays zero;
- the embedding tables (word, position): one int8 scale per token, int4 blocks along the hidden dimension;
- the task head's hidden x hidden projection (a MatMul, or a Gemm whose weight may be [out, in]) as a matrix.

Layout, the smallest standard ONNX offers (int8: 1 byte per weight, int4: 0.5625 with an fp16 scale per 32):
- matrices: DequantizeLinear(int8 [in, out], scale [out], axis=1) or, from opset 21,
  DequantizeLinear(int4 [in, out], scale [ceil(in/32), out], axis=0, block_size=32) before the MatMul;
  ORT 1.32 runs DQ->MatMul as MatMulNBits (with int8 activations unless the session sets
  `session.qdq_matmulnbits_accuracy_level` to 1, which keeps the plan's numerics exactly);
- int4 scales are stored as float16 and read through a Cast to float: ORT folds the Cast of the constant
  when the session starts, then fuses as with fp32 scales (same kernels, same latency, measured);
- an embedding table is gathered before it is dequantized, so a run touches only the tokens it reads:
  int8 as Gather(int8) * Gather(scale); int4 as ORT's GatherBlockQuantized (ONNX Gather takes no int4),
  or DequantizeLinear -> Gather where the hidden size is not a multiple of the block.
This saves size, not time: for speed see `quantize_dynamic.py`.
"""

from __future__ import annotations

from dataclasses import dataclass

import ml_dtypes
import numpy as np
import onnx_ir as ir
from onnx_ir.passes.common import RemoveUnusedNodesPass
from onnxscript.version_converter import convert_version

from graph_passes import sign_match_function
from graph_passes._ir_utils import (
    add_initializer,
    constant_array,
    custom_functions_set_aside,
    drop_if_unused,
    unique_name,
    value_names,
)
from graph_passes.base import PlanPass
from graph_passes.fuse import ORT_DOMAIN
from graph_passes.structure import ATTENTION_ROLES, EncoderStructure
from onnx_approx.architectures import MATRIX_ROLES
from onnx_approx.plan import INT4_BLOCK_SIZE, Plan

INT8_MAX = 127
INT4_MIN, INT4_MAX = -8, 7
FLOAT16_MAX = np.float32(np.finfo(np.float16).max)
BLOCKED_DQ_OPSET = 21  # DequantizeLinear with int4 and block_size


def _quantize(w: np.ndarray, scale: np.ndarray, low: int, high: int) -> np.ndarray:
    safe = np.where(scale == 0, np.float32(1), scale).astype(np.float32)
    return np.clip(np.round(w / safe), low, high).astype(np.int8)


def quantize_int8(w: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    """(q int8, scale [w.shape[axis]]): one symmetric scale per slice along `axis` (the output channel)."""
    w = w.astype(np.float32)
    reduce = tuple(i for i in range(w.ndim) if i != axis)
    scale = (np.abs(w).max(axis=reduce, keepdims=True) / np.float32(INT8_MAX)).astype(np.float32)
    return _quantize(w, scale, -INT8_MAX, INT8_MAX), scale.reshape(-1)


def quantize_int4(w: np.ndarray, axis: int, block: int = INT4_BLOCK_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(q in [-8, 7] as int8, scale with ceil(n/block) along `axis`): symmetric blocks of `block` along a 2-D
    weight's `axis`; the float32 scales hold float16 values (stored as such)."""
    w = np.moveaxis(w.astype(np.float32), axis, -1)  # blocks along the last axis
    rows, n = w.shape
    padded = np.pad(w, ((0, 0), (0, (-n) % block))).reshape(rows, -1, block)
    scale = np.minimum(np.abs(padded).max(axis=-1, keepdims=True) / np.float32(INT4_MAX), FLOAT16_MAX)
    scale = scale.astype(np.float16).astype(np.float32)
    q = _quantize(padded, scale, INT4_MIN, INT4_MAX).reshape(rows, -1)[:, :n]
    return np.moveaxis(q, -1, axis), np.moveaxis(scale[..., 0], -1, axis)


@dataclass
class WeightTarget:
    """A constant weight input of one node, quantized in column pieces of possibly different precisions.

    A MatMul weight is one piece; a fused QKV weight [in, 3 x width] is three (query, key, value).
    `out_axis` is the output-channel axis (1 for [in, out] matrices, 0 for the [tokens, hidden] embedding).
    """

    node: ir.Node
    index: int
    pieces: list[tuple[str, int]]  # (precision, size along out_axis)
    out_axis: int
    label: str

    def __post_init__(self) -> None:
        merged: list[tuple[str, int]] = []  # quantization is per column, so equal neighbours quantize as one
        for precision, size in self.pieces:
            if merged and merged[-1][0] == precision:
                merged[-1] = (precision, merged[-1][1] + size)
            else:
                merged.append((precision, size))
        self.pieces = merged

    @property
    def precisions(self) -> set[str]:
        return {p for p, _ in self.pieces}


def weight_targets(structure: EncoderStructure, plan: Plan) -> list[WeightTarget]:
    """Every matrix the plan quantizes, wherever it lives now: a MatMul, a fused Attention, an embedding table
    or the head's projection."""
    graph = structure.model.graph
    fused = iter([n for n in graph if n.domain == ORT_DOMAIN and n.op_type == "Attention"])
    targets = []
    for layer in structure.layers:
        lp, roles = plan.layers[layer.index], MATRIX_ROLES
        attention = layer.attention
        if attention is not None and attention.query.matmul.graph is not graph:  # fused: Q/K/V packed
            node = next(fused, None)
            if node is None:
                raise ValueError(f"layer {layer.index}: its query projection is gone and no fused Attention is left")
            width = attention.num_heads * attention.head_dim
            pieces = [(lp.precision_of(role), width) for role in ATTENTION_ROLES[:3]]
            if any(p != "fp32" for p, _ in pieces):
                targets.append(WeightTarget(node, 1, pieces, 1, f"layer {layer.index} attention.qkv"))
            roles = MATRIX_ROLES[3:]
        for role in roles:
            linear, precision = layer.linear(role), lp.precision_of(role)
            if linear is None or precision == "fp32":
                continue
            if linear.matmul.graph is not graph:
                raise ValueError(f"layer {layer.index} {role}: its projection is no longer in the graph")
            width = linear.weight_array().shape[1]
            targets.append(WeightTarget(linear.matmul, 1, [(precision, width)], 1, f"layer {layer.index} {role}"))
    for table, embedding in (("word", structure.word_embeddings), ("position", structure.position_embeddings)):
        precision = plan.embedding_precision(table)
        if embedding is not None and embedding.graph is graph and precision != "fp32":
            rows = constant_array(embedding.inputs[0]).shape[0]
            targets.append(WeightTarget(embedding, 0, [(precision, rows)], 0, f"{table} embeddings"))
    head = structure.head_dense
    if head is not None and head.graph is graph and plan.head_precision != "fp32":
        out_axis = 0 if head.op_type == "Gemm" and head.attributes.get_int("transB", 0) else 1
        targets.append(WeightTarget(head, 1, [(plan.head_precision, structure.hidden_size)], out_axis, "head dense"))
    return targets


def _int4_scale(graph: ir.Graph, scale: np.ndarray, name: str) -> tuple[ir.Node, ir.Value]:
    """Int4 scales as a float16 initializer read through a Cast to float (see the module doc)."""
    stored = add_initializer(graph, scale.astype(np.float16), f"{name}_scale")
    cast = ir.node("Cast", [stored], {"to": ir.DataType.FLOAT}, name=unique_name(graph, f"{name}_scale_cast"))
    cast.outputs[0].name = unique_name(graph, f"{name}_scale_float")
    return cast, cast.outputs[0]


def _dequantize(graph: ir.Graph, w: np.ndarray, precision: str, out_axis: int, name: str) -> list[ir.Node]:
    """Nodes ending in a DequantizeLinear of fresh quantized initializers holding `w`."""
    if precision == "int8":
        q, scale = quantize_int8(w, out_axis)
        nodes, s_value = [], add_initializer(graph, scale, f"{name}_scale")
        attributes = {"axis": out_axis}
    else:
        in_axis = 1 - out_axis
        q, scale = quantize_int4(w, in_axis)
        q = q.astype(ml_dtypes.int4)
        cast, s_value = _int4_scale(graph, scale, name)
        nodes = [cast]
        attributes = {"axis": in_axis, "block_size": INT4_BLOCK_SIZE}
    q_value = add_initializer(graph, q, f"{name}_quantized")
    node = ir.node("DequantizeLinear", [q_value, s_value], attributes, name=unique_name(graph, f"{name}_dequantize"))
    node.outputs[0].name = unique_name(graph, f"{name}_dequantized")
    return [*nodes, node]


def quantize_embedding(gather: ir.Node, precision: str) -> None:
    """Replace an embedding Gather by a gather of the quantized table, then its dequantization."""
    graph = gather.graph
    table, ids = gather.inputs
    w = constant_array(table)
    name = table.name or "embeddings"
    if precision == "int8":
        q, scale = quantize_int8(w, 0)
        rows = ir.node("Gather", [add_initializer(graph, q, f"{name}_quantized"), ids], {"axis": 0})
        scales = ir.node("Gather", [add_initializer(graph, scale[:, None], f"{name}_scale"), ids], {"axis": 0})
        as_float = ir.node("Cast", [rows.outputs[0]], {"to": ir.DataType.FLOAT})
        result = ir.node("Mul", [as_float.outputs[0], scales.outputs[0]])
        new_nodes = [rows, scales, as_float, result]
    elif w.shape[1] % INT4_BLOCK_SIZE == 0:
        q, scale = quantize_int4(w, 1)
        cast, s_value = _int4_scale(graph, scale, name)
        inputs = [add_initializer(graph, q.astype(ml_dtypes.int4), f"{name}_quantized"), ids, s_value]
        attributes = {"block_size": INT4_BLOCK_SIZE, "gather_axis": 0, "quantize_axis": 1}
        result = ir.node("GatherBlockQuantized", inputs, attributes, domain=ORT_DOMAIN)
        new_nodes = [cast, result]
        graph.opset_imports.setdefault(ORT_DOMAIN, 1)
    else:
        dequantize = _dequantize(graph, w, precision, 0, name)
        result = ir.node("Gather", [dequantize[-1].outputs[0], ids], {"axis": 0})
        new_nodes = [*dequantize, result]
    taken = value_names(graph)
    for node in new_nodes:
        node.name = unique_name(graph, f"{name}_{node.op_type}", taken)
        if not node.outputs[0].name:
            node.outputs[0].name = node.name
    graph.insert_before(gather, new_nodes)
    ir.convenience.replace_all_uses_with(gather.outputs[0], result.outputs[0])
    graph.remove(gather, safe=True)
    drop_if_unused(graph, table)


def quantize_target(target: WeightTarget) -> None:
    """Feed `target.node` DequantizeLinear outputs instead of its fp32 weight (pieces joined by a Concat)."""
    node, graph = target.node, target.node.graph
    if node.op_type == "Gather":
        quantize_embedding(node, target.pieces[0][0])
        return
    old = node.inputs[target.index]
    w = constant_array(old)
    name = old.name or target.label.replace(" ", "_")
    new_nodes, parts, start = [], [], 0
    for i, (precision, width) in enumerate(target.pieces):
        piece = w.take(range(start, start + width), axis=target.out_axis)
        start += width
        piece_name = name if len(target.pieces) == 1 else f"{name}_{i}"
        if precision == "fp32":
            parts.append(add_initializer(graph, piece, piece_name))
            continue
        dequantize = _dequantize(graph, piece, precision, target.out_axis, piece_name)
        new_nodes += dequantize
        parts.append(dequantize[-1].outputs[0])
    if len(parts) > 1:
        concat = ir.node("Concat", parts, {"axis": target.out_axis}, name=unique_name(graph, f"{name}_concat"))
        concat.outputs[0].name = unique_name(graph, f"{name}_joined")
        new_nodes.append(concat)
    graph.insert_before(node, new_nodes)
    node.replace_input_with(target.index, new_nodes[-1].outputs[0])
    drop_if_unused(graph, old)


def require_opset(model: ir.Model, version: int) -> None:
    """Raise the default-domain opset to at least `version` with onnxscript's version converter.

    The sign-matching attention keeps its node; its function is rebuilt for the new opset.
    """
    if model.opset_imports.get("", 0) >= version:
        return
    with custom_functions_set_aside(model):
        convert_version(model, version)
    if sign_match_function.DOMAIN in model.opset_imports:
        sign_match_function.add_to_model(model)


class QuantizeWeightsPass(PlanPass):
    """Matrices with precision int8/int4 become DequantizeLinear of int8 / int4-block initializers.

    `skip` names nodes left to another quantizer (the dynamic int8 quantization of the speed layout).
    """

    def __init__(self, structure: EncoderStructure, plan: Plan, skip: frozenset[ir.Node] = frozenset()):
        super().__init__(structure, plan)
        self.skip = skip

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        targets = [t for t in weight_targets(self.structure, self.plan) if t.node not in self.skip]
        if any("int4" in t.precisions for t in targets):
            require_opset(model, BLOCKED_DQ_OPSET)
        for target in targets:
            quantize_target(target)
            self.note(f"{target.label}: {'/'.join(p for p, _ in target.pieces)}")
        if targets:
            RemoveUnusedNodesPass()(model)
        return ir.passes.PassResult(model, modified=bool(targets))
