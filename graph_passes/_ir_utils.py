"""Helpers on onnx_ir models and values: read constants, add initializers, feed new weights without editing
shared ones, keep custom-op functions out of reach of tools that inline.

Exporters deduplicate equal initializers (e.g. all-zero biases become one tensor used by every layer), so a
pass must never slice or quantize an initializer in place: it feeds a fresh one to the node it changes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import onnx_ir as ir

STANDARD_DOMAINS = ("", "ai.onnx", "com.microsoft")


def constant_array(value: ir.Value | None) -> np.ndarray | None:
    """The value as a NumPy array when it is an initializer or a Constant output, also behind Identity nodes."""
    while value is not None:
        tensor = ir.convenience.get_const_tensor(value)
        if tensor is not None:
            return tensor.numpy()
        node = value.producer()
        if node is None or node.op_type != "Identity" or node.domain != "":
            return None
        value = node.inputs[0]
    return None


def graph_input(graph: ir.Graph, name: str) -> ir.Value | None:
    """The graph input called `name` (e.g. "attention_mask"), or None."""
    return next((v for v in graph.inputs if v.name == name), None)


def value_names(graph: ir.Graph) -> set[str]:
    """Every value name in use in `graph` (inputs, initializers, node outputs)."""
    names = {v.name for v in graph.inputs} | set(graph.initializers)
    names.update(out.name for node in graph for out in node.outputs)
    return names


def unique_name(graph: ir.Graph, base: str, taken: set[str] | None = None) -> str:
    """`base`, or `base_1`, `base_2`, ... whichever is not yet a value name of `graph` (or in `taken`)."""
    taken = value_names(graph) if taken is None else taken
    name, i = base, 0
    while name in taken:
        i += 1
        name = f"{base}_{i}"
    taken.add(name)
    return name


def add_initializer(graph: ir.Graph, array: np.ndarray | ir.TensorProtocol, name: str) -> ir.Value:
    """Register `array` as a new initializer under a unique name derived from `name`."""
    name = unique_name(graph, name)
    tensor = array if isinstance(array, ir.TensorProtocol) else ir.tensor(np.ascontiguousarray(array), name=name)
    tensor.name = name
    value = ir.Value(name=name, shape=ir.Shape(tensor.shape), type=ir.TensorType(tensor.dtype), const_value=tensor)
    graph.register_initializer(value)
    return value


def drop_if_unused(graph: ir.Graph, value: ir.Value | None) -> None:
    """Remove an initializer nobody reads any more (graph inputs and outputs are kept)."""
    if value is None or value.uses() or value.is_graph_output() or value.is_graph_input():
        return
    if value.name in graph.initializers and graph.initializers[value.name] is value:
        del graph.initializers[value.name]


def feed_constant(node: ir.Node, index: int, array: np.ndarray, name: str) -> ir.Value:
    """Make input `index` of `node` a fresh initializer holding `array`; the old input is dropped if now unused."""
    graph = node.graph
    assert graph is not None, f"node {node.name} is not in a graph"
    old = node.inputs[index]
    new = add_initializer(graph, array, name)
    node.replace_input_with(index, new)
    drop_if_unused(graph, old)
    return new


def tensor_bytes(value: ir.Value) -> int:
    """Stored size of an initializer's data."""
    return 0 if value.const_value is None else int(value.const_value.nbytes)


def forget_shapes(starts: list[ir.Node], stop: ir.Node) -> None:
    """Clear the shapes of the outputs of `starts` and of every node after them up to (not including) `stop`.

    Slicing a projection changes the shapes downstream until the next projection restores the width; those
    values are cleared for shape inference to redo, the others keep the exporter's symbolic dims.
    """
    seen: set[ir.Node] = set()
    frontier = list(starts)
    while frontier:
        node = frontier.pop()
        if node is stop or node in seen:
            continue
        seen.add(node)
        for value in node.outputs:
            if not value.is_graph_output():
                value.shape = None
            frontier.extend(use.node for use in value.uses())


@contextlib.contextmanager
def custom_functions_set_aside(model: ir.Model) -> Iterator[None]:
    """Remove the model-local functions of custom domains for the duration, then put them back.

    onnxscript's optimizer and version converter inline every model-local function; the sign-matching
    attention must stay one node (the compiled kernel replaces it; ORT inlines the function only without it).
    """
    kept = {key: f for key, f in model.functions.items() if f.domain not in STANDARD_DOMAINS}
    for key in kept:
        del model.functions[key]
    try:
        yield
    finally:
        model.functions.update(kept)
