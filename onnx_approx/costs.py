"""What a plan costs: encoder multiply-accumulates per token, parameters and weight bytes.

Counted from the plan alone (hidden size = heads x head dim for the supported families), so reports and
the search agree without building models. MACs per token at sequence length S, per layer:
each head 4*H*d (Q, K, V, output projections) + 2*S'*d (scores and weighted sum over S' = min(S, K) keys),
each FFN neuron 2*H. Embedding lookups and the task head are left out (they do not change).
Bytes, as the graph passes store them (`graph_passes/quantize.py`): fp32 4 per weight; int8 1 per weight + a
4-byte scale per output channel (per token for an embedding table); int4 half a byte per weight + a 2-byte
(float16) scale per block of 32; biases and LayerNorms stay fp32. The embedding tables and the task head's
projection (`table_bytes`) follow the same rules from their shapes, which only the model knows.
"""

from __future__ import annotations

import math

from onnx_approx.plan import INT4_BLOCK_SIZE, Plan

DEFAULT_SEQ_LEN = 128
# Measured speed-up of int8 (activations and weights) over fp32 MatMuls in ORT on this machine kind
# (DESIGN.md: 2.3-3x); the "faster" goal counts an int8 matrix as saving this share of its MACs.
INT8_MATMUL_SPEEDUP = 2.5
INT4_SCALE_BYTES = 2  # int4 scales are stored as float16
# A layer's Q, K and V projections, fused into one Attention node (graph_passes/fuse.py) that runs as int8
# QAttention only when all three are int8 (graph_passes/quantize_dynamic.py `int8_nodes`).
FUSED_QKV_ROLES = ("attention.query", "attention.key", "attention.value")


def hidden_size(plan: Plan) -> int:
    return plan.num_heads * plan.head_dim


def head_macs(plan: Plan, seq_len: int = DEFAULT_SEQ_LEN, top_k: int | None = None) -> int:
    span = seq_len if top_k is None else min(seq_len, top_k)
    return 4 * hidden_size(plan) * plan.head_dim + 2 * span * plan.head_dim


def neuron_macs(plan: Plan) -> int:
    return 2 * hidden_size(plan)


def layer_macs(plan: Plan, layer: int, seq_len: int = DEFAULT_SEQ_LEN) -> dict[str, int]:
    """MACs per token of one layer's attention and FFN under `plan`."""
    top_k = plan.layers[layer].attention.sign_match_top_k
    return {"attention": len(plan.kept_heads(layer)) * head_macs(plan, seq_len, top_k),
            "ffn": len(plan.kept_neurons(layer)) * neuron_macs(plan)}


def macs_per_token(plan: Plan, seq_len: int = DEFAULT_SEQ_LEN) -> int:
    """Encoder MACs per token at `seq_len` (fp32 and quantized MatMuls alike)."""
    return sum(sum(layer_macs(plan, i, seq_len).values()) for i in range(plan.num_layers))


def effective_macs_per_token(plan: Plan, seq_len: int = DEFAULT_SEQ_LEN) -> float:
    """MACs per token with the MatMuls ORT runs in int8 counted at 1 / INT8_MATMUL_SPEEDUP of their fp32 cost
    (what the "faster" goal minimizes: int8 weights and activations run 2.3-3x faster in ORT).

    Q, K and V count only when all three are int8 (FUSED_QKV_ROLES): their fused Attention becomes QAttention
    only then (graph_passes/quantize_dynamic.py); otherwise it stays fp32, the int8 ones merely dequantized."""
    credit = 0.0
    for i, lp in enumerate(plan.layers):
        shapes = matrix_shapes(plan, i)
        int8 = {role for role in shapes if lp.precision_of(role) == "int8"}
        if not int8.issuperset(FUSED_QKV_ROLES):
            int8 -= set(FUSED_QKV_ROLES)
        credit += sum(rows * cols * (1 - 1 / INT8_MATMUL_SPEEDUP)
                      for role, (rows, cols) in shapes.items() if role in int8)
    return macs_per_token(plan, seq_len) - credit


def matrix_shapes(plan: Plan, layer: int) -> dict[str, tuple[int, int]]:
    """(out, in) of each weight matrix of `layer` after pruning (zero-sized in a removed block, where only
    the output projection's bias remains)."""
    hidden = hidden_size(plan)
    width = len(plan.kept_heads(layer)) * plan.head_dim
    neurons = len(plan.kept_neurons(layer))
    return {"attention.query": (width, hidden), "attention.key": (width, hidden), "attention.value": (width, hidden),
            "attention.output": (hidden, width), "ffn.intermediate": (neurons, hidden), "ffn.output": (hidden, neurons)}


def weight_bytes(shape: tuple[int, int], precision: str) -> int:
    """Bytes of a [rows, cols] weight (rows = output channels or tokens; int4 blocks run along cols)."""
    rows, cols = shape
    if rows * cols == 0:
        return 0
    if precision == "int8":
        return rows * cols + 4 * rows
    if precision == "int4":
        return math.ceil(rows * cols / 2) + INT4_SCALE_BYTES * rows * math.ceil(cols / INT4_BLOCK_SIZE)
    return 4 * rows * cols


def encoder_parameters(plan: Plan) -> int:
    """Weights and biases of the encoder layers (LayerNorms included) that the plan keeps."""
    per_layer_norms = 4 * hidden_size(plan)
    return sum(sum(rows * cols + rows for rows, cols in matrix_shapes(plan, i).values()) + per_layer_norms
               for i in range(plan.num_layers))


def encoder_bytes(plan: Plan) -> int:
    """Bytes of the encoder layers' parameters under the plan's precisions (biases and norms in fp32)."""
    per_layer_norms = 4 * 4 * hidden_size(plan)
    return sum(sum(weight_bytes(shape, lp.precision_of(role)) + 4 * shape[0]
                   for role, shape in matrix_shapes(plan, i).items()) + per_layer_norms
               for i, lp in enumerate(plan.layers))


def table_bytes(plan: Plan, shapes: dict[str, tuple[int, int]]) -> int:
    """Bytes of the weights outside the encoder a plan can quantize, under its precisions: `shapes` maps a
    table of `plan.TABLE_PRECISION_FIELDS` to its full-size [rows, cols] (embeddings: [tokens, hidden]; the
    head's projection: [out, in]; see `significance.precision.table_shapes`). A pruned vocabulary keeps only
    `vocab_kept` rows of the word table."""
    total = 0
    for table, (rows, cols) in shapes.items():
        if table == "word" and plan.vocab_kept is not None:
            rows = len(plan.vocab_kept)
        total += weight_bytes((rows, cols), plan.table_precision(table))
    return total
