"""int8 quantization of a whole fp32 model the way users do it today, for the baselines of the benchmark.

Dynamic: optimum's `AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=True)` passed to
`ORTQuantizer.quantize`, which builds ORT's `ONNXQuantizer` with
- mode IntegerOps, weights QInt8 symmetric, one scale per output channel, activations QUInt8 asymmetric
  (quantized at run time), reduce_range False;
- operators: every key of ORT's `IntegerOpsRegistry` (MatMul, Attention, Gather, EmbedLayerNormalization, ...);
- extra_options WeightSymmetric=True, ActivationSymmetric=False, EnableSubgraph=False, ForceSymmetric=False,
  AddQDQPairToWeight=False, DedicatedQDQPair=False, QDQOpTypePerChannelSupportToAxis={"MatMul": 1}.
Optimum never sets `MatMulConstBOnly`, so the quantizer's default (False) applies; `quantize_dynamic`
defaults it to True, hence it is passed explicitly here. `DefaultTensorType` (FLOAT) is not in optimum's
settings: ORT's quantizer needs it on graphs with ORT's fused ops, whose output types it cannot infer.

Static: the same settings with `is_static=True`: QDQ format, QUInt8 activations calibrated (MinMax) on
examples the caller gives, QInt8 symmetric per-channel weights, the operators of ORT's `QDQRegistry`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.registry import IntegerOpsRegistry, QDQRegistry

log = logging.getLogger(__name__)

_COMMON_OPTIONS = {
    "WeightSymmetric": True,
    "ActivationSymmetric": False,
    "EnableSubgraph": False,
    "ForceSymmetric": False,
    "AddQDQPairToWeight": False,
    "DedicatedQDQPair": False,
    "QDQOpTypePerChannelSupportToAxis": {"MatMul": 1},
    "MatMulConstBOnly": False,
    "DefaultTensorType": onnx.TensorProto.FLOAT,
}


def quantize_dynamic_avx512_vnni(source: Path, target: Path) -> Path:
    """Dynamic int8 quantization of `source` into `target` with optimum's avx512_vnni settings (see above)."""
    quantize_dynamic(
        source,
        target,
        op_types_to_quantize=list(IntegerOpsRegistry),
        per_channel=True,
        reduce_range=False,
        weight_type=QuantType.QInt8,
        extra_options=dict(_COMMON_OPTIONS),
    )
    return target


class FeedsReader(CalibrationDataReader):
    """Calibration inputs for ORT: one feed dict (name -> int64 array) after the other."""

    def __init__(self, feeds: Iterable[dict[str, np.ndarray]]):
        self._feeds = list(feeds)
        self._next = iter(self._feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._next, None)

    def __len__(self) -> int:
        return len(self._feeds)


def quantize_static_qdq(source: Path, target: Path, calibration: list[dict[str, np.ndarray]]) -> Path:
    """Static QDQ int8 quantization of `source` into `target`, activation ranges from `calibration` feeds."""
    if not calibration:
        raise ValueError("static quantization needs calibration inputs; none were given")
    quantize_static(
        source,
        target,
        FeedsReader(calibration),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(QDQRegistry),
        per_channel=True,
        reduce_range=False,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=CalibrationMethod.MinMax,
        extra_options=dict(_COMMON_OPTIONS),
    )
    return target
