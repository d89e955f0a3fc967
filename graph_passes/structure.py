"""Locate the encoder of an exported BERT-family model: (layer, block, matrix) -> nodes and initializers.

Roles are assigned from the PyTorch module path of each projection, read from the dynamo exporter's
`pkg.torch.onnx.name_scopes` metadata or from TorchScript node names (`/bert/encoder/layer.0/...`), with
the module paths of `onnx_approx.architectures`. Where neither is present the projections are assigned by
the graph pattern alone. Either way the attention core, residual Adds and LayerNorms are found by walking
the graph from the projections, which also checks the assignment.
"""

from __future__ import annotations

import ast
import math
import re
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import onnx_ir as ir

from graph_passes._ir_utils import constant_array
from onnx_approx.architectures import MATRIX_ROLES, ArchitectureSpec, spec_for

ATTENTION_ROLES = MATRIX_ROLES[:4]
FFN_ROLES = MATRIX_ROLES[4:]
NAME_SCOPES = "pkg.torch.onnx.name_scopes"
# Ops on the path from a projection to the attention core that only reshape or rescale the data.
_RESHAPING = frozenset({"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Identity", "Cast"})
_SCALING = frozenset({"Mul", "Div"})
# Consumers that read only the shape of a value, never its data.
_SHAPE_READERS = frozenset({"Shape", "Size"})
# Element-wise ops an FFN activation is built from (GELU decomposed as Div/Erf/Add/Mul, or one op).
_ACTIVATION_OPS = frozenset(
    {"Div", "Mul", "Add", "Sub", "Erf", "Tanh", "Pow", "Sigmoid", "Relu", "Gelu", "Identity", "Cast"}
)


class StructureError(ValueError):
    """The model's encoder could not be recognized; the message says what was not found."""


@dataclass
class Linear:
    """One projection `x @ W (+ b)`: a MatMul on a constant [in, out] weight, maybe followed by a bias Add."""

    matmul: ir.Node
    bias_add: ir.Node | None = None
    bias_index: int = 1

    @property
    def input(self) -> ir.Value:
        return self.matmul.inputs[0]

    @property
    def weight(self) -> ir.Value:
        return self.matmul.inputs[1]

    @property
    def bias(self) -> ir.Value | None:
        return None if self.bias_add is None else self.bias_add.inputs[self.bias_index]

    @property
    def output(self) -> ir.Value:
        return (self.bias_add or self.matmul).outputs[0]

    def weight_array(self) -> np.ndarray:
        return constant_array(self.weight)

    def bias_array(self) -> np.ndarray | None:
        return None if self.bias is None else constant_array(self.bias)


@dataclass
class AttentionBlock:
    """Projections, core and residual of one self-attention block.

    `splits` are the Reshapes [B, S, H*D] -> [B, S, H, D] of query, key and value; `merge` the Reshape of the
    context back to [B, S, H*D]; `core` the nodes from the splits to `core_output` ([B, H, S, D]), either
    scores MatMul -> Softmax -> context MatMul or one Attention op.
    """

    query: Linear
    key: Linear
    value: Linear
    output: Linear
    splits: dict[str, ir.Node]
    merge: ir.Node
    core: list[ir.Node]
    core_output: ir.Value
    scale: float
    num_heads: int
    head_dim: int
    residual: ir.Node
    layernorm: ir.Node

    def linear(self, role: str) -> Linear:
        return {"attention.query": self.query, "attention.key": self.key,
                "attention.value": self.value, "attention.output": self.output}[role]


@dataclass
class FFNBlock:
    intermediate: Linear
    output: Linear
    activation: list[ir.Node]
    residual: ir.Node
    layernorm: ir.Node

    def linear(self, role: str) -> Linear:
        return self.intermediate if role == "ffn.intermediate" else self.output


@dataclass
class EncoderLayer:
    """One layer; a block is None once a pass has removed it (the residual path and LayerNorm remain)."""

    index: int
    attention: AttentionBlock | None
    ffn: FFNBlock | None
    sign_match: ir.Node | None = None  # the SignMatchAttention node once substituted

    def linear(self, role: str) -> Linear | None:
        block = self.attention if role in ATTENTION_ROLES else self.ffn
        return None if block is None else block.linear(role)


@dataclass
class EncoderStructure:
    model: ir.Model
    model_type: str
    layers: list[EncoderLayer]
    hidden_size: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    word_embeddings: ir.Node | None = None  # the Gather on the word-embedding table
    position_embeddings: ir.Node | None = None  # the Gather on the position-embedding table
    head_dense: ir.Node | None = None  # the task head's hidden x hidden MatMul/Gemm (BERT's pooler), if any
    located_by: str = "module paths"  # or "graph pattern"

    def dims(self) -> dict[str, int]:
        """The dimensions `Plan.check_fits` compares against."""
        return {"num_layers": len(self.layers), "num_heads": self.num_heads, "head_dim": self.head_dim,
                "hidden_size": self.hidden_size, "intermediate_size": self.intermediate_size}


# -- entry point ---------------------------------------------------------------------------------------------


def locate(model: ir.Model, model_type: str) -> EncoderStructure:
    """Map every encoder layer of `model` (an unfused export of a `model_type` model) to its nodes."""
    spec = spec_for(model_type)
    graph = model.graph
    _refuse_fused(graph)
    linears = _find_linears(graph)
    if not linears:
        raise StructureError("no projection found: no MatMul with a constant 2-D weight in the graph")
    by_matmul = {lin.matmul: lin for lin in linears}
    roles = _roles_from_module_paths(linears, spec)
    located_by = "module paths"
    if not roles:
        roles = _roles_from_pattern(linears, by_matmul)
        located_by = "graph pattern"
    if not roles:
        raise StructureError(
            f"no encoder layer found: no projection matches the {model_type} module paths "
            f"(e.g. '{spec.layers}.0.{spec.matrices['attention.query']}') and no three projections of one "
            "input lead to a Softmax attention"
        )
    indices = sorted(roles)
    if indices != list(range(len(indices))):
        raise StructureError(f"encoder layers found: {indices}; expected consecutive indices from 0")
    layers = [_build_layer(i, roles[i], by_matmul) for i in indices]
    first = layers[0].attention
    hidden = first.query.weight_array().shape[0]
    word_embeddings = _word_embeddings(graph)
    encoder = {layer.linear(role).matmul for layer in layers for role in MATRIX_ROLES}
    structure = EncoderStructure(
        model=model,
        model_type=model_type,
        layers=layers,
        hidden_size=hidden,
        num_heads=first.num_heads,
        head_dim=first.head_dim,
        intermediate_size=layers[0].ffn.intermediate.weight_array().shape[1],
        word_embeddings=word_embeddings,
        position_embeddings=_position_embeddings(graph, spec, word_embeddings, hidden),
        head_dense=_head_dense(graph, spec, encoder, hidden),
        located_by=located_by,
    )
    for layer in layers:
        att = layer.attention
        if (att.num_heads, att.head_dim) != (structure.num_heads, structure.head_dim):
            raise StructureError(
                f"layer {layer.index} has {att.num_heads} heads of size {att.head_dim}, layer 0 has "
                f"{structure.num_heads} of size {structure.head_dim}: pass the unpruned export"
            )
    return structure


# -- refusal of fused models -----------------------------------------------------------------------------------


def _refuse_fused(graph: ir.Graph) -> None:
    fused = sorted({f"{n.domain}.{n.op_type}" for n in graph if n.domain == "com.microsoft"})
    if fused:
        raise StructureError(
            f"the model is already fused by ONNX Runtime (found {', '.join(fused)}); pass the unfused export "
            "(`onnx-approx export`, torch.onnx.export or optimum without optimization): the passes fuse "
            "the result themselves"
        )


# -- projections -----------------------------------------------------------------------------------------------


def _find_linears(graph: ir.Graph) -> list[Linear]:
    """MatMuls with a constant 2-D float weight, each with its bias Add when it has one."""
    found = []
    for node in graph:
        if node.op_type != "MatMul" or node.domain != "":
            continue
        weight = constant_array(node.inputs[1])
        if weight is None or weight.ndim != 2 or weight.dtype != np.float32:
            continue
        linear = Linear(node)
        users = node.outputs[0].uses()
        if len(users) == 1 and users[0].node.op_type == "Add":
            add = users[0].node
            other = 1 - users[0].idx
            bias = constant_array(add.inputs[other])
            if bias is not None and bias.shape == (weight.shape[1],):
                linear.bias_add, linear.bias_index = add, other
        found.append(linear)
    return found


def module_path(node: ir.Node) -> str | None:
    """The PyTorch module a node was exported from: dynamo name scopes, else a TorchScript node name."""
    scopes = node.metadata_props.get(NAME_SCOPES)
    if scopes:
        try:
            parts = ast.literal_eval(scopes)
        except (ValueError, SyntaxError):
            return None
        return parts[-2] if isinstance(parts, list) and len(parts) >= 2 else None
    if node.name and node.name.startswith("/"):
        return ".".join(node.name.strip("/").split("/")[:-1])
    return None


def _roles_from_module_paths(linears: list[Linear], spec: ArchitectureSpec) -> dict[int, dict[str, Linear]]:
    patterns = {
        role: re.compile(rf"(?:^|\.){re.escape(spec.layers)}\.(\d+)\.{re.escape(path)}$")
        for role, path in spec.matrices.items()
    }
    roles: dict[int, dict[str, Linear]] = defaultdict(dict)
    for linear in linears:
        path = module_path(linear.matmul)
        if not path:
            continue
        for role, pattern in patterns.items():
            match = pattern.search(path)
            if match:
                layer = int(match.group(1))
                if role in roles[layer]:
                    raise StructureError(f"layer {layer}: two projections claim {role} (module {path})")
                roles[layer][role] = linear
    for layer, found in roles.items():
        missing = [r for r in MATRIX_ROLES if r not in found]
        if missing:
            raise StructureError(f"layer {layer}: no projection found for {', '.join(missing)}")
    return dict(roles)


def _roles_from_pattern(linears: list[Linear], by_matmul: dict[ir.Node, Linear]) -> dict[int, dict[str, Linear]]:
    """Without module paths: three projections of one input that meet in a Softmax attention are Q/K/V."""
    by_input: dict[ir.Value, list[Linear]] = defaultdict(list)
    for linear in linears:
        by_input[linear.input].append(linear)
    layers = []
    for group in by_input.values():
        if len(group) != 3:
            continue
        try:
            qkv = _classify_qkv(group)
            core = _trace_core(qkv)
            _, out_node, _ = _follow(core.output, lambda n: n in by_matmul)
        except StructureError:
            continue
        output = by_matmul[out_node]
        residual, norm = _residual_and_norm(output, qkv["attention.query"].input, "attention")
        ffn_in = [lin for lin in linears if lin.input == norm.outputs[0]]
        if len(ffn_in) != 1:
            raise StructureError(f"{len(ffn_in)} projections read the attention LayerNorm {norm.name}; expected 1")
        _, ffn_out = _trace_activation(ffn_in[0], by_matmul)
        layers.append({**qkv, "attention.output": output, "ffn.intermediate": ffn_in[0], "ffn.output": ffn_out})
    order = {node: i for i, node in enumerate(linears[0].matmul.graph)}
    layers.sort(key=lambda roles: order[roles["attention.query"].matmul])
    return dict(enumerate(layers))


# -- walking the graph -----------------------------------------------------------------------------------------


def _data_users(value: ir.Value) -> list[ir.Usage]:
    return [u for u in value.uses() if u.node.op_type not in _SHAPE_READERS]


def _follow(
    value: ir.Value, stop: Callable[[ir.Node], bool], limit: int = 12
) -> tuple[list[ir.Node], ir.Node, int]:
    """Walk forward through reshaping/scaling nodes until `stop`; return (path, stop node, its input index)."""
    path: list[ir.Node] = []
    for _ in range(limit):
        users = _data_users(value)
        if len(users) != 1:
            break
        node, index = users[0].node, users[0].idx
        if stop(node):
            return path, node, index
        passthrough = (node.op_type in _RESHAPING and index == 0) or (
            node.op_type in _SCALING
            and constant_array(node.inputs[1 - index]) is not None
            and (node.op_type == "Mul" or index == 0)
        )
        if not passthrough:
            break
        path.append(node)
        value = node.outputs[0]
    raise StructureError(f"no attention core found after {value.name}")


def _is_core(node: ir.Node) -> bool:
    if node.op_type == "Attention" and node.domain == "":
        return True
    return node.op_type == "MatMul" and all(constant_array(v) is None for v in node.inputs)


@dataclass
class _Core:
    nodes: list[ir.Node]
    output: ir.Value
    splits: dict[str, ir.Node]
    factor: float  # scaling of the scores by Mul/Div nodes or an explicit `scale` attribute
    default_scale: bool  # the core op itself scales by 1/sqrt(head_dim)


def _classify_qkv(group: list[Linear]) -> dict[str, Linear]:
    """Tell query, key and value apart by where they enter the attention core."""
    ends = {id(lin): _follow(lin.output, _is_core)[1:] for lin in group}
    roles = {}
    for lin in group:
        node, index = ends[id(lin)]
        if node.op_type == "Attention":
            role = ATTENTION_ROLES[index] if index < 3 else None
        else:
            shared = sum(ends[id(other)][0] is node for other in group)
            role = {(2, 0): "attention.query", (2, 1): "attention.key", (1, 1): "attention.value"}.get((shared, index))
        if role is None or role in roles:
            raise StructureError("three projections of one input do not form query, key and value")
        roles[role] = lin
    return roles


def _trace_core(qkv: dict[str, Linear]) -> _Core:
    """From the Q/K/V projections to the core output [B, H, S, D], checking the scores -> Softmax -> context path."""
    paths, ends = {}, {}
    for role, lin in qkv.items():
        path, node, index = _follow(lin.output, _is_core)
        paths[role], ends[role] = path, (node, index)
    q_end, k_end, v_end = (ends[r][0] for r in ATTENTION_ROLES[:3])
    if q_end.op_type == "Attention":
        if not (q_end is k_end is v_end) or [ends[r][1] for r in ATTENTION_ROLES[:3]] != [0, 1, 2]:
            raise StructureError(f"Attention node {q_end.name} is not fed by query, key and value")
        nodes = [q_end]
        attr = q_end.attributes.get("scale")
        factor = 1.0 if attr is None else attr.as_float()
        default_scale = attr is None
        output = q_end.outputs[0]
    else:
        if q_end is not k_end or ends["attention.query"][1] != 0 or ends["attention.key"][1] != 1:
            raise StructureError(f"the scores MatMul {q_end.name} is not query x key")
        if v_end is q_end or ends["attention.value"][1] != 1:
            raise StructureError(f"the context MatMul {v_end.name} is not probabilities x value")
        between = _nodes_between(q_end.outputs[0], v_end)
        if not any(n.op_type == "Softmax" for n in between):
            raise StructureError(f"no Softmax between the scores {q_end.name} and the context {v_end.name}")
        nodes = [q_end, *between, v_end]
        factor, default_scale = _product_of_scalars(between), False
        output = v_end.outputs[0]
    splits = {}
    for role in ATTENTION_ROLES[:3]:
        reshapes = [n for n in paths[role] if n.op_type == "Reshape"]
        if not reshapes:
            raise StructureError(f"no Reshape splits the heads of {role} ({qkv[role].matmul.name})")
        splits[role] = reshapes[0]
        if role != "attention.value":  # scaling query or key scales the scores
            factor *= _product_of_scalars(paths[role])
    return _Core(nodes=nodes, output=output, splits=splits, factor=factor, default_scale=default_scale)


def _product_of_scalars(nodes: Iterable[ir.Node]) -> float:
    """The factor applied by the Mul/Div-by-scalar-constant nodes among `nodes`."""
    factor = 1.0
    for node in nodes:
        if node.op_type not in _SCALING:
            continue
        for index, value in enumerate(node.inputs):
            array = constant_array(value)
            if array is not None and array.size == 1:
                c = float(array.reshape(()))
                factor = factor / c if node.op_type == "Div" and index == 1 else factor * c
    return factor


def _nodes_between(start: ir.Value, end: ir.Node, limit: int = 20) -> list[ir.Node]:
    """Nodes on data paths from `start` to `end` (exclusive), breadth-first within `limit` nodes."""
    seen: dict[ir.Node, None] = {}
    frontier = [start]
    while frontier and len(seen) <= limit:
        value = frontier.pop(0)
        for use in _data_users(value):
            node = use.node
            if node is end or node in seen:
                continue
            seen[node] = None
            frontier.extend(node.outputs)
    reaching = {end}
    for node in reversed(list(seen)):
        if any(u.node in reaching for out in node.outputs for u in out.uses()):
            reaching.add(node)
    return [n for n in seen if n in reaching]


def _residual_and_norm(linear: Linear, block_input: ir.Value, what: str) -> tuple[ir.Node, ir.Node]:
    """The Add(block output, block input) and the LayerNormalization after it."""
    users = linear.output.uses()
    add = users[0].node if len(users) == 1 else None
    if add is None or add.op_type != "Add" or block_input not in add.inputs:
        raise StructureError(
            f"the {what} output {linear.output.name} does not feed a residual Add with the block input"
        )
    norms = [u.node for u in add.outputs[0].uses()]
    if len(norms) != 1 or norms[0].op_type != "LayerNormalization":
        raise StructureError(
            f"the {what} residual {add.name} is not followed by one LayerNormalization (export with opset >= 17)"
        )
    return add, norms[0]


def _trace_activation(intermediate: Linear, by_matmul: dict[ir.Node, Linear]) -> tuple[list[ir.Node], Linear]:
    """The element-wise activation nodes after the FFN intermediate projection and the projection they feed."""
    seen: dict[ir.Node, None] = {}
    frontier = [intermediate.output]
    target = None
    while frontier and len(seen) < 16:
        for use in frontier.pop(0).uses():
            node = use.node
            if node in by_matmul and use.idx == 0:
                if target not in (None, node):
                    raise StructureError(f"the FFN activation after {intermediate.matmul.name} feeds two projections")
                target = node
            elif node.op_type in _ACTIVATION_OPS and node not in seen:
                seen[node] = None
                frontier.extend(node.outputs)
            elif node not in seen:
                raise StructureError(f"unexpected {node.op_type} node {node.name} in the FFN activation")
    if target is None:
        raise StructureError(f"no FFN output projection after {intermediate.matmul.name}")
    return list(seen), by_matmul[target]


def _word_embeddings(graph: ir.Graph) -> ir.Node | None:
    """The Gather that reads the word-embedding table with the `input_ids` graph input."""
    for node in graph:
        if node.op_type == "Gather" and len(node.inputs) == 2 and node.inputs[1] is not None:
            ids = node.inputs[1]
            table = constant_array(node.inputs[0])
            if ids.is_graph_input() and ids.name == "input_ids" and table is not None and table.ndim == 2:
                return node
    return None


def _path_pattern(path: str) -> re.Pattern[str]:
    """Matches a module path ending in `path` (exports prefix it with the model's own attribute names)."""
    return re.compile(rf"(?:^|\.){re.escape(path)}$")


def _position_embeddings(graph: ir.Graph, spec: ArchitectureSpec, word: ir.Node | None, hidden: int) -> ir.Node | None:
    """The Gather on the position-embedding table: by module path, else the Gather of the largest constant
    [rows, hidden] table other than the word and token-type embeddings (which read graph inputs)."""
    tables = {}
    for node in graph:
        if node.op_type == "Gather" and node is not word and not node.inputs[1].is_graph_input():
            table = constant_array(node.inputs[0])
            if table is not None and table.ndim == 2 and table.shape[1] == hidden and table.dtype == np.float32:
                tables[node] = table.shape[0]
    pattern = _path_pattern(spec.position_embeddings)
    by_path = [node for node in tables if pattern.search(module_path(node) or "")]
    if by_path:
        return by_path[0]
    return max(tables, key=tables.get, default=None)


def _head_dense(graph: ir.Graph, spec: ArchitectureSpec, encoder: set[ir.Node], hidden: int) -> ir.Node | None:
    """The task head's hidden x hidden projection: a MatMul or Gemm on a constant [hidden, hidden] weight outside
    the encoder layers, named `spec.head_dense` by its module path, or the only one in an export without paths."""
    dense = []
    for node in graph:
        if node.op_type not in ("MatMul", "Gemm") or node.domain != "" or node in encoder:
            continue
        if node.op_type == "Gemm" and node.attributes.get_int("transA", 0):
            continue
        weight = constant_array(node.inputs[1])
        if weight is not None and weight.shape == (hidden, hidden) and weight.dtype == np.float32:
            dense.append(node)
    if any(module_path(node) for node in dense):
        pattern = _path_pattern(spec.head_dense) if spec.head_dense else None
        dense = [node for node in dense if pattern is not None and pattern.search(module_path(node) or "")]
    return dense[0] if len(dense) == 1 else None


# -- one layer ---------------------------------------------------------------------------------------------------


def _build_layer(index: int, roles: dict[str, Linear], by_matmul: dict[ir.Node, Linear]) -> EncoderLayer:
    where = f"layer {index}"
    q, o = roles["attention.query"], roles["attention.output"]
    for role in ("attention.key", "attention.value"):
        if roles[role].input is not q.input:
            raise StructureError(f"{where}: {role} does not read the same input as attention.query")
    try:
        core = _trace_core({r: roles[r] for r in ATTENTION_ROLES[:3]})
        out_path, _, _ = _follow(core.output, lambda n: n is o.matmul)
    except StructureError as exc:
        raise StructureError(f"{where}: {exc}") from None
    merges = [n for n in out_path if n.op_type == "Reshape"]
    if not merges:
        raise StructureError(f"{where}: no Reshape merges the heads before attention.output")
    num_heads, head_dim = _head_shape(core.splits["attention.query"], q.weight_array().shape[1], where)
    scale = core.factor / math.sqrt(head_dim) if core.default_scale else core.factor
    residual, norm = _residual_and_norm(o, q.input, f"{where} attention")
    inter, out = roles["ffn.intermediate"], roles["ffn.output"]
    if inter.input is not norm.outputs[0]:
        raise StructureError(f"{where}: ffn.intermediate does not read the attention LayerNorm {norm.name}")
    activation, reached = _trace_activation(inter, by_matmul)
    if reached is not out:
        raise StructureError(f"{where}: the FFN activation feeds {reached.matmul.name}, not ffn.output")
    ffn_residual, ffn_norm = _residual_and_norm(out, norm.outputs[0], f"{where} FFN")
    attention = AttentionBlock(
        query=q, key=roles["attention.key"], value=roles["attention.value"], output=o,
        splits=core.splits, merge=merges[-1], core=core.nodes, core_output=core.output, scale=scale,
        num_heads=num_heads, head_dim=head_dim, residual=residual, layernorm=norm,
    )
    ffn = FFNBlock(intermediate=inter, output=out, activation=activation, residual=ffn_residual, layernorm=ffn_norm)
    return EncoderLayer(index=index, attention=attention, ffn=ffn)


def shape_pieces(value: ir.Value) -> list[tuple[ir.Value, int, np.ndarray | None]] | None:
    """A Reshape target as (piece, length, constant or None) pieces: itself, or the inputs of its Concat.

    None when the length of a computed piece is unknown.
    """
    array = constant_array(value)
    if array is not None:
        return [(value, array.size, array.reshape(-1))]
    node = value.producer()
    if node is None or node.op_type != "Concat":
        return None
    pieces = []
    for piece in node.inputs:
        array = constant_array(piece)
        if array is not None:
            pieces.append((piece, array.size, array.reshape(-1)))
        elif piece.shape is not None and piece.shape.rank() == 1 and isinstance(piece.shape[0], int):
            pieces.append((piece, piece.shape[0], None))
        elif piece.producer() is not None and piece.producer().op_type == "Unsqueeze":
            pieces.append((piece, 1, None))  # an unsqueezed scalar (batch or sequence length)
        else:
            return None
    return pieces


def shape_elements(value: ir.Value) -> list[int | None] | None:
    """The entries of a Reshape target: constants as ints, computed ones as None; None if the length is unknown."""
    pieces = shape_pieces(value)
    if pieces is None:
        return None
    elements: list[int | None] = []
    for _, length, array in pieces:
        elements.extend([None] * length if array is None else [int(x) for x in array])
    return elements


def _head_shape(split: ir.Node, width: int, where: str) -> tuple[int, int]:
    """(num_heads, head_dim) from the query's split Reshape target [B, S, H, D] and the projection width."""
    elements = shape_elements(split.inputs[1])
    if elements is None or len(elements) != 4:
        raise StructureError(f"{where}: cannot read the head split of the query from Reshape {split.name}")
    heads, dim = elements[2], elements[3]
    if dim is not None and dim > 0 and width % dim == 0:
        return width // dim, dim
    if heads is not None and heads > 0 and width % heads == 0:
        return heads, width // heads
    raise StructureError(f"{where}: Reshape {split.name} gives neither the head count nor the head size")
