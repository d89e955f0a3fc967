"""Fake quantization of weight matrices (int8 per output channel, int4 in blocks of 32), with a straight-through
estimator for training.

The rule, which the ONNX graph passes mirror with QuantizeLinear/DequantizeLinear (keep both in step):

* A torch ``Linear`` weight W has shape [out, in]; the ONNX MatMul weight is its transpose [in, out].
* ``int8``: symmetric, one scale per output channel (row of W): ``scale = max|W[row]| / 127``;
  ``q = clamp(round(W / scale), -127, 127)``; the dequantized weight is ``q * scale``.
* ``int4``: symmetric, one scale per block of 32 consecutive input elements of a row (the MatMul's K axis):
  ``scale = fp16(min(max|block| / 7, 65504))``, rounded to float16 because ONNX stores it so (an fp32 scale
  per 32 weights would add a seventh to the 4-bit payload); ``q = clamp(round(W / scale), -8, 7)``. A row
  whose length is not a multiple of 32 ends in a short block, as if padded with zeros (padding never changes a
  block's max).
* ``round`` is round-half-to-even (``torch.round``, ``numpy.round``, ONNX QuantizeLinear); the division is
  done in float32 (W's dtype). A channel or block that is all zeros has scale 0 and stays zero.
* Quantization applies to the matrix as deployed: after pruning. Removed heads/neurons leave the output
  projections' input columns, so scales and int4 blocks are computed over the kept columns only
  (graph passes: prune first, then quantize).
* Embedding tables (word and position) use the same functions with rows = tokens (one int8 scale per token;
  int4 blocks along the hidden dimension); so does the task head's hidden x hidden projection (BERT's pooler).
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from onnx_approx.architectures import MATRIX_ROLES, spec_for
from onnx_approx.plan import INT4_BLOCK_SIZE, PRECISIONS, Plan
from onnx_approx.significance.gates import head_columns

INT8_MAX = 127
INT4_MIN, INT4_MAX = -8, 7
FLOAT16_MAX = 65504.0


def _quantize_dequantize(weight: torch.Tensor, scale: torch.Tensor, low: int, high: int) -> torch.Tensor:
    safe = torch.where(scale == 0, torch.ones_like(scale), scale)
    return torch.clamp(torch.round(weight / safe), low, high) * scale


def int8_per_channel(weight: torch.Tensor) -> torch.Tensor:
    """W quantized to int8 with one symmetric scale per row, returned dequantized (same shape and dtype)."""
    scale = weight.abs().amax(dim=-1, keepdim=True) / INT8_MAX
    return _quantize_dequantize(weight, scale, -INT8_MAX, INT8_MAX)


def int4_blocks(weight: torch.Tensor, block_size: int = INT4_BLOCK_SIZE) -> torch.Tensor:
    """W quantized to int4 with one symmetric scale per block of `block_size` along each row, dequantized."""
    rows, cols = weight.shape
    pad = (-cols) % block_size
    padded = torch.nn.functional.pad(weight, (0, pad)).reshape(rows, -1, block_size)
    scale = (padded.abs().amax(dim=-1, keepdim=True) / INT4_MAX).clamp(max=FLOAT16_MAX)
    scale = scale.to(torch.float16).to(weight.dtype)
    return _quantize_dequantize(padded, scale, INT4_MIN, INT4_MAX).reshape(rows, -1)[:, :cols]


def fake_quantize(weight: torch.Tensor, precision: str, block_size: int = INT4_BLOCK_SIZE) -> torch.Tensor:
    """`weight` as the given precision sees it: fp32 passes through, int8/int4 are quantized and dequantized."""
    if precision == "fp32":
        return weight
    if precision == "int8":
        return int8_per_channel(weight)
    if precision == "int4":
        return int4_blocks(weight, block_size)
    raise ValueError(f"unknown precision {precision!r}; known: {', '.join(PRECISIONS)}")


class FakeQuantize(nn.Module):
    """Parametrization for `torch.nn.utils.parametrize`: the forward value is the quantized weight, the
    gradient passes straight through to the fp32 latent weight (straight-through estimator).

    `columns` (input columns a gated model keeps) quantizes the matrix as its pruned form would be: scales
    and int4 blocks over the kept columns only; the other columns pass unchanged (their gates are 0).
    """

    def __init__(self, precision: str, block_size: int = INT4_BLOCK_SIZE, columns: torch.Tensor | None = None):
        super().__init__()
        if precision not in ("int8", "int4"):
            raise ValueError(f"FakeQuantize needs int8 or int4, got {precision!r}")
        self.precision = precision
        self.block_size = block_size
        self.columns = columns

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.columns is None:
            quantized = fake_quantize(weight, self.precision, self.block_size)
        else:
            quantized = weight.index_copy(
                1, self.columns, fake_quantize(weight[:, self.columns], self.precision, self.block_size))
        return weight + (quantized - weight).detach()

    def same_as(self, precision: str, block_size: int, columns: torch.Tensor | None) -> bool:
        if (self.precision, self.block_size) != (precision, block_size) or (self.columns is None) != (columns is None):
            return False
        return columns is None or torch.equal(self.columns, columns)

    def extra_repr(self) -> str:
        kept = "" if self.columns is None else f", kept_columns={self.columns.numel()}"
        return f"precision={self.precision}, block_size={self.block_size}{kept}"


def set_precision(module: nn.Module, precision: str, block_size: int = INT4_BLOCK_SIZE,
                  columns: torch.Tensor | None = None) -> None:
    """Make `module.weight` behave as `precision` (fp32 removes any fake quantization, keeping the fp32 weight).

    Wrap repeated inference in `torch.nn.utils.parametrize.cached()` so the quantized weight is computed once.
    """
    if parametrize.is_parametrized(module, "weight"):
        if precision != "fp32" and module.parametrizations.weight[0].same_as(precision, block_size, columns):
            return
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
    if precision != "fp32":
        parametrize.register_parametrization(module, "weight", FakeQuantize(precision, block_size, columns))


def apply_precision(model: nn.Module, plan: Plan) -> nn.Module:
    """Fake-quantize every matrix the plan puts in int8/int4 (and the embedding tables and the head's
    projection); others back to fp32.

    Quantization is that of the deployed, pruned matrix: on a full-size (gated) model the output projections
    are quantized over the input columns the plan keeps. Matrices of removed blocks are left in fp32.
    """
    spec = spec_for(model.config.model_type)
    head_dim = spec.dims(model.config)["head_dim"]
    layers = model.base_model.get_submodule(spec.layers)
    for lp, layer in zip(plan.layers, layers):
        kept_inputs = {"attention.output": head_columns(plan.kept_heads(lp.index), head_dim),
                       "ffn.output": torch.tensor(plan.kept_neurons(lp.index), dtype=torch.long)}
        for role in MATRIX_ROLES:
            try:
                module = layer.get_submodule(spec.matrices[role])
            except AttributeError:  # inside a removed attention core
                continue
            if not isinstance(module, nn.Linear):  # what a removed block leaves
                continue
            precision, columns = lp.precision_of(role), kept_inputs.get(role)
            if columns is not None and columns.numel() == 0:
                precision = "fp32"
            if columns is not None and columns.numel() == module.in_features:
                columns = None  # already pruned, or nothing removed
            set_precision(module, precision, columns=columns)
    for table, module in quantizable_tables(model).items():
        set_precision(module, plan.table_precision(table))
    return model


def quantizable_tables(model: nn.Module) -> dict[str, nn.Module]:
    """The modules outside the encoder whose weight a plan can quantize, by `plan.TABLE_PRECISION_FIELDS`
    name: the "word" and "position" embedding tables and, where the head has one, its "head" projection."""
    tables = {"word": model.get_input_embeddings(),
              "position": model.base_model.get_submodule(spec_for(model.config.model_type).position_embeddings)}
    head = head_dense(model)
    return tables if head is None else {**tables, "head": head}


def table_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """[rows, cols] of each of `quantizable_tables(model)` (what `costs.table_bytes` counts)."""
    def shape(module: nn.Module) -> tuple[int, int]:
        quantized = parametrize.is_parametrized(module, "weight")  # its shape, without quantizing it
        return tuple((module.parametrizations.weight.original if quantized else module.weight).shape)

    return {table: shape(module) for table, module in quantizable_tables(model).items()}


def head_dense(model: nn.Module) -> nn.Linear | None:
    """The task head's hidden x hidden projection (`ArchitectureSpec.head_dense`), None where the head has none."""
    path = spec_for(model.config.model_type).head_dense
    try:
        module = model.get_submodule(path) if path else None
    except AttributeError:  # e.g. a BERT built without its pooler (QA and token heads)
        return None
    return module if isinstance(module, nn.Linear) else None


def latent_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """`model.state_dict()` with fake-quantized weights under their plain names, holding the fp32 latent values."""
    suffix = ".parametrizations.weight.original"
    return {(k[: -len(suffix)] + ".weight" if k.endswith(suffix) else k): v for k, v in model.state_dict().items()}
