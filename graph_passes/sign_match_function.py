"""The SignMatchAttention op in standard ONNX ops: a model-local FunctionProto stored in every model
that uses the op, so the model runs where the compiled kernel is not registered (another machine, the
CUDA execution provider); ORT inlines the function then, and prefers the kernel when it is registered.
Torch-free. Semantics: `onnx_approx.ops.reference`.

How the standard ops reproduce the kernel exactly:
- sign bit with -0.0 negative: 1/x keeps the sign of x and 1/(-0.0) = -inf, so Less(1/x, 0);
- match counts: the ±1 sign matrices' MatMul is 2*match - D, exact small integers in float32;
- padding keys: -inf before TopK, below every valid key; TopK breaks ties by the lower index (spec);
- K = min(top_k, Sk); selected keys with -inf (padding) drop out of the softmax; a query without any
  valid key gets zeros.
The fallback computes all Sq x Sk scores, so it is O(S^2): correct everywhere, fast only in the kernel.

An ONNX function cannot test whether an optional input was given (a missing input has no type, and
type inference of any op reading it fails), so the op has two function overloads: the default with
`key_padding_mask`, and `no_mask` for calls without it. `make_node`/`ir_node` set the overload.

Use from a pass (onnx_ir):
    node = ir_node(q, k, v, top_k=32, key_padding_mask=mask)   # insert it, then once per model:
    add_to_model(model)
"""

from __future__ import annotations

import math

import onnx
import onnx.parser
import onnx_ir as ir

DOMAIN = "ai.onnx_approx"
OP_TYPE = "SignMatchAttention"
OP_VERSION = 1
NO_MASK_OVERLOAD = "no_mask"
MIN_OPSET = 13  # Unsqueeze with axes as input, Softmax over one axis
MIN_IR_VERSION = 10  # function overloads


def _function_text(opset: int, with_mask: bool) -> str:
    mask_input = ", key_padding_mask" if with_mask else ""
    rank_keys = (
        """
    valid = Cast <to = 9> (key_padding_mask)
    axes_bh = Constant <value_ints = [1, 2]> ()
    valid_bhqk = Unsqueeze (valid, axes_bh)
    ranked = Where (valid_bhqk, agree, neg_inf)"""
        if with_mask
        else """
    ranked = Identity (agree)"""
    )
    return f"""
<domain: "{DOMAIN}", opset_import: ["": {opset}]>
{OP_TYPE} <top_k, scale: float = nan> (Q, K, V{mask_input}) => (Y)
{{
    one = Constant <value_float = 1.0> ()
    zero = Constant <value_float = 0.0> ()
    minus_one = Constant <value_float = -1.0> ()
    neg_inf = Constant <value_float = -inf> ()
    q_inv = Div (one, Q)
    q_negative = Less (q_inv, zero)
    q_sign = Where (q_negative, minus_one, one)
    k_inv = Div (one, K)
    k_negative = Less (k_inv, zero)
    k_sign = Where (k_negative, minus_one, one)
    k_sign_t = Transpose <perm = [0, 1, 3, 2]> (k_sign)
    agree = MatMul (q_sign, k_sign_t)
    {rank_keys}
    k_shape = Shape (K)
    seq_axis = Constant <value_int = 2> ()
    k_len = Gather (k_shape, seq_axis)
    top_k_value = Constant <value_int: int = @top_k> ()
    n_keys = Min (top_k_value, k_len)
    first_axis = Constant <value_ints = [0]> ()
    n_keys_1d = Unsqueeze (n_keys, first_axis)
    top_agree, chosen = TopK <axis = -1, largest = 1, sorted = 1> (ranked, n_keys_1d)
    chosen_ok = Greater (top_agree, neg_inf)

    scale_given = Constant <value_float: float = @scale> ()
    scale_absent = IsNaN (scale_given)
    q_shape = Shape (Q)
    dim_axis = Constant <value_int = 3> ()
    dim = Gather (q_shape, dim_axis)
    dim_float = Cast <to = 1> (dim)
    dim_sqrt = Sqrt (dim_float)
    scale_default = Div (one, dim_sqrt)
    scale_used = Where (scale_absent, scale_default, scale_given)
    k_t = Transpose <perm = [0, 1, 3, 2]> (K)
    dots = MatMul (Q, k_t)
    scores = Mul (dots, scale_used)
    chosen_scores = GatherElements <axis = 3> (scores, chosen)
    masked_scores = Where (chosen_ok, chosen_scores, neg_inf)
    chosen_probs = Softmax <axis = -1> (masked_scores)
    kept_probs = Where (chosen_ok, chosen_probs, zero)
    scores_shape = Shape (scores)
    empty = ConstantOfShape <value = float[1] {{0.0}}> (scores_shape)
    probs = ScatterElements <axis = 3> (empty, chosen, kept_probs)
    Y = MatMul (probs, V)
}}
"""


def sign_match_function(opset: int, with_mask: bool = True) -> onnx.FunctionProto:
    """The FunctionProto of SignMatchAttention for models whose default-domain opset is `opset`."""
    if opset < MIN_OPSET:
        raise ValueError(f"SignMatchAttention needs a model with ONNX opset >= {MIN_OPSET}, got {opset}")
    function = onnx.parser.parse_function(_function_text(opset, with_mask))
    if not with_mask:
        function.overload = NO_MASK_OVERLOAD
    return function


def _scale_attribute(top_k: int, scale: float | None) -> float:
    """Checks the attributes; the scale to write: NaN stands for 1/sqrt(D). Nodes always carry it, because
    tools that inline functions without applying attribute defaults (onnx.inliner) would drop it."""
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"SignMatchAttention: top_k must be an int >= 1, got {top_k!r}")
    if scale is not None and not math.isfinite(scale):
        raise ValueError(f"SignMatchAttention: scale must be finite, got {scale!r}")
    return math.nan if scale is None else float(scale)


def make_node(
    q: str, k: str, v: str, output: str, top_k: int, key_padding_mask: str | None = None,
    scale: float | None = None, name: str | None = None,
) -> onnx.NodeProto:
    """A SignMatchAttention NodeProto (value names in, the matching function overload chosen);
    scale None means 1/sqrt(D)."""
    scale = _scale_attribute(top_k, scale)
    inputs = [q, k, v] if key_padding_mask is None else [q, k, v, key_padding_mask]
    node = onnx.helper.make_node(OP_TYPE, inputs, [output], name=name, domain=DOMAIN, top_k=top_k, scale=scale)
    if key_padding_mask is None:
        node.overload = NO_MASK_OVERLOAD
    return node


def ir_node(
    q: ir.Value, k: ir.Value, v: ir.Value, top_k: int, key_padding_mask: ir.Value | None = None,
    scale: float | None = None, name: str | None = None,
) -> ir.Node:
    """A SignMatchAttention onnx_ir node (not yet inserted in a graph); its output is `node.outputs[0]`."""
    scale = _scale_attribute(top_k, scale)
    inputs = [q, k, v] if key_padding_mask is None else [q, k, v, key_padding_mask]
    attributes = [ir.AttrInt64("top_k", top_k), ir.AttrFloat32("scale", scale)]
    return ir.Node(
        DOMAIN, OP_TYPE, inputs, attributes, overload="" if key_padding_mask is not None else NO_MASK_OVERLOAD,
        num_outputs=1, name=name,
    )


def make_model(
    top_k: int, key_padding_mask: int | None = None, scale: float | None = None, opset: int = 18
) -> onnx.ModelProto:
    """A model of one SignMatchAttention node: Q, K, V [batch, heads, seq, dim] float (plus key_padding_mask
    [batch, k_seq] of TensorProto type `key_padding_mask`, e.g. INT64 or BOOL) -> Y; for benchmarks and tests."""
    float_t = onnx.TensorProto.FLOAT
    inputs = [
        onnx.helper.make_tensor_value_info("Q", float_t, ["batch", "heads", "q_seq", "dim"]),
        onnx.helper.make_tensor_value_info("K", float_t, ["batch", "heads", "k_seq", "dim"]),
        onnx.helper.make_tensor_value_info("V", float_t, ["batch", "heads", "k_seq", "dim"]),
    ]
    if key_padding_mask is not None:
        inputs.append(onnx.helper.make_tensor_value_info("key_padding_mask", key_padding_mask, ["batch", "k_seq"]))
    node = make_node("Q", "K", "V", "Y", top_k, "key_padding_mask" if key_padding_mask is not None else None, scale)
    output = onnx.helper.make_tensor_value_info("Y", float_t, ["batch", "heads", "q_seq", "dim"])
    graph = onnx.helper.make_graph([node], "sign_match_attention", inputs, [output])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)])
    add_to_model(model)
    return model


def add_to_model(model: onnx.ModelProto | ir.Model) -> None:
    """Store both function overloads in `model` (once), import the op's domain, and raise the IR version
    to one that knows overloads. Call after inserting SignMatchAttention nodes."""
    if isinstance(model, ir.Model):
        opset = model.opset_imports.get("", 0)
        functions = [sign_match_function(opset, with_mask) for with_mask in (True, False)]
        for proto in functions:
            model.functions[(DOMAIN, OP_TYPE, proto.overload)] = ir.serde.deserialize_function(proto)
        model.opset_imports[DOMAIN] = OP_VERSION
        model.ir_version = max(model.ir_version, MIN_IR_VERSION)
        return
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    functions = [sign_match_function(opset, with_mask) for with_mask in (True, False)]
    kept = [f for f in model.functions if (f.domain, f.name) != (DOMAIN, OP_TYPE)]
    del model.functions[:]
    model.functions.extend([*kept, *functions])
    if not any(o.domain == DOMAIN for o in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid(DOMAIN, OP_VERSION))
    model.ir_version = max(model.ir_version, MIN_IR_VERSION)
