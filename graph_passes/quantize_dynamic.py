"""The int8 layout ONNX Runtime runs fast: dynamic quantization of the chosen MatMul and Attention nodes.

Weight-only DequantizeLinear saves size but no time in ORT 1.32. Here weights are s8, symmetric, one scale
per output channel, and activations u8 quantized at run time (optimum's avx512_vnni settings), through
`onnxruntime.quantization.quantize_dynamic` restricted to the nodes the plan quantizes: MatMul ->
MatMulIntegerToFloat, fused Attention -> QAttention (whose weights ORT quantizes with reduce_range, 7 bits).
Activations are quantized too, so the numbers differ a little from the plan's weight-only fake quantization.

QAttention has no `attention_bias` input, and ORT's quantizer drops it: an Attention that masks padding
through a bias (as onnxscript's fusion writes it) would attend to padding once quantized (measured: SST-2
dev 0.8727 -> 0.8589 on a batched evaluation). Such nodes get the raw padding mask as `mask_index` first.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import NameFixPass
from onnxruntime.quantization import QuantType, quantize_dynamic

from graph_passes._ir_utils import graph_input, unique_name
from graph_passes.fuse import ORT_DOMAIN
from graph_passes.quantize import WeightTarget

log = logging.getLogger(__name__)

MASK_INDEX, ATTENTION_BIAS = 3, 5  # input positions of com.microsoft Attention


def int8_nodes(targets: list[WeightTarget]) -> list[ir.Node]:
    """The MatMul and fused Attention nodes whose whole weight is int8 (what dynamic quantization can take)."""
    return [t.node for t in targets if t.precisions == {"int8"} and t.node.op_type in ("MatMul", "Attention")]


def drop_equal_qkv_sizes(node: ir.Node) -> None:
    """Remove `qkv_hidden_sizes` from a fused Attention when Q, K and V are equally wide (the default).

    onnxscript's fusion always sets it, and ORT's quantizer leaves Attention with that attribute in fp32.
    """
    sizes = node.attributes.get("qkv_hidden_sizes")
    if sizes is not None and len(set(sizes.as_ints())) == 1:
        del node.attributes["qkv_hidden_sizes"]


def graph_inputs_behind(value: ir.Value) -> set[str]:
    """Names of the graph inputs whose contents `value` is computed from (initializers and constants count
    as none, and so do inputs read only for their shape)."""
    names, seen, todo = set(), set(), [value]
    while todo:
        v = todo.pop()
        if v is None or id(v) in seen:
            continue
        seen.add(id(v))
        if v.is_graph_input():
            names.add(v.name)
        elif (node := v.producer()) is not None and not (node.op_type in ("Shape", "Size") and node.domain == ""):
            todo.extend(node.inputs)
    return names


def mask_as_index(graph: ir.Graph, node: ir.Node, cache: dict[str, ir.Value]) -> bool:
    """Give `node` (Attention) its padding mask as `mask_index` in place of an `attention_bias` computed from
    the `attention_mask` input alone. False when its bias is something else (the node then stays fp32)."""
    inputs = list(node.inputs)
    bias = inputs[ATTENTION_BIAS] if len(inputs) > ATTENTION_BIAS else None
    if bias is None:
        return True
    mask = graph_input(graph, "attention_mask")
    if (mask is None or graph_inputs_behind(bias) != {"attention_mask"} or any(inputs[MASK_INDEX:ATTENTION_BIAS])
            or any(inputs[ATTENTION_BIAS + 1:])):
        return False
    if "mask" not in cache:
        cast = ir.node("Cast", [mask], attributes={"to": ir.DataType.INT32})
        cast.outputs[0].name = unique_name(graph, "attention_mask_int32")
        graph.insert_before(next(iter(graph)), cast)
        cache["mask"] = cast.outputs[0]
    node.replace_input_with(ATTENTION_BIAS, None)
    node.resize_inputs(MASK_INDEX + 1)
    node.replace_input_with(MASK_INDEX, cache["mask"])
    return True


class DynamicQuantizePass(ir.passes.FunctionalPass):
    """The given MatMul/Attention nodes become ORT's dynamically quantized int8 ops; returns a new model."""

    def __init__(self, nodes: list[ir.Node]):
        super().__init__()
        self.nodes = nodes

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if not self.nodes:
            return ir.passes.PassResult(model.clone(), modified=False)
        NameFixPass()(model)  # quantize_dynamic selects nodes by (unique, non-empty) name
        nodes, cache = [], {}
        for node in self.nodes:
            if node.domain == ORT_DOMAIN and node.op_type == "Attention":
                if not mask_as_index(model.graph, node, cache):
                    log.warning("%s: attention bias not from attention_mask alone; left in fp32", node.name)
                    continue
                drop_equal_qkv_sizes(node)
            nodes.append(node)
        names = [node.name for node in nodes]
        with tempfile.TemporaryDirectory(prefix="onnx-approx-quantize-") as tmp:
            out = Path(tmp, "quantized.onnx")
            quantize_dynamic(
                ir.to_proto(model),
                out,
                per_channel=True,
                reduce_range=False,
                weight_type=QuantType.QInt8,
                nodes_to_quantize=names,
                extra_options={
                    "WeightSymmetric": True,
                    "ActivationSymmetric": False,
                    "DefaultTensorType": onnx.TensorProto.FLOAT,  # needed on ORT-fused graphs
                    "MatMulConstBOnly": True,
                },
            )
            quantized = ir.from_proto(onnx.load(out))
        return ir.passes.PassResult(quantized, modified=True)
