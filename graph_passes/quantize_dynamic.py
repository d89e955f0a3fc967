"""The int8 layout ONNX Runtime runs fast: dynamic quantization of the chosen MatMul and Attention nodes.

Weight-only DequantizeLinear saves size but no time in ORT 1.32. Here weights are s8, symmetric, one scale
per output channel, and activations u8 quantized at run time (optimum's avx512_vnni settings), through
`onnxruntime.quantization.quantize_dynamic` restricted to the nodes the plan quantizes: MatMul ->
MatMulIntegerToFloat, fused Attention -> QAttention (whose weights ORT quantizes with reduce_range, 7 bits).
Activations are quantized too, so the numbers differ a little from the plan's weight-only fake quantization.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import onnx
import onnx_ir as ir
from onnx_ir.passes.common import NameFixPass
from onnxruntime.quantization import QuantType, quantize_dynamic

from graph_passes.fuse import ORT_DOMAIN
from graph_passes.quantize import WeightTarget


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


class DynamicQuantizePass(ir.passes.FunctionalPass):
    """The given MatMul/Attention nodes become ORT's dynamically quantized int8 ops; returns a new model."""

    def __init__(self, nodes: list[ir.Node]):
        super().__init__()
        self.nodes = nodes

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        if not self.nodes:
            return ir.passes.PassResult(model.clone(), modified=False)
        NameFixPass()(model)  # quantize_dynamic selects nodes by (unique, non-empty) name
        for node in self.nodes:
            if node.domain == ORT_DOMAIN and node.op_type == "Attention":
                drop_equal_qkv_sizes(node)
        names = [node.name for node in self.nodes]
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
