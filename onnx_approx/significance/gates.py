"""Gates on the components of an encoder: per layer the attention block, each head, the FFN block, each
neuron group (and single neurons, for plans that keep arbitrary neurons).

transformers 5 ignores `head_mask`, so gates act where every supported architecture has the same shape: a
forward pre-hook on the attention output projection scales each head's slice of the concatenated context,
and one on the FFN output projection scales each neuron's activation. A gate of 0 on a whole block leaves
the output projection's bias alone, which is exactly the residual path LayerNorm(x + bias) that physical
pruning builds. Gate values are plain tensors: 0/1 for exact ablation, or leaf tensors that require grad
(optionally with a leading batch dimension, one gate set per sample) for first-order scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from onnx_approx.architectures import spec_for
from onnx_approx.plan import Plan

GROUPS_PER_LAYER = 12  # default neuron-group count: group size = intermediate_size / 12


@dataclass(frozen=True)
class GateLayout:
    """Gate shapes of one model: layers, heads, head width, FFN width and the neuron-group size."""

    num_layers: int
    num_heads: int
    head_dim: int
    intermediate_size: int
    group_size: int

    @classmethod
    def for_model(cls, model: nn.Module, group_size: int | None = None) -> "GateLayout":
        dims = spec_for(model.config.model_type).dims(model.config)
        return cls.from_dims(dims, group_size)

    @classmethod
    def from_dims(cls, dims: dict[str, int], group_size: int | None = None) -> "GateLayout":
        size = group_size or max(1, dims["intermediate_size"] // GROUPS_PER_LAYER)
        if not 1 <= size <= dims["intermediate_size"]:
            raise ValueError(f"neuron group size must be in 1..{dims['intermediate_size']}, got {size}")
        return cls(dims["num_layers"], dims["num_heads"], dims["head_dim"], dims["intermediate_size"], size)

    @property
    def num_groups(self) -> int:
        """Groups per layer; the last one is shorter when the group size does not divide the FFN width."""
        return math.ceil(self.intermediate_size / self.group_size)

    def group_neurons(self, group: int) -> range:
        return range(group * self.group_size, min((group + 1) * self.group_size, self.intermediate_size))

    def components(self) -> list["Component"]:
        """Every gateable component, layer by layer: attention, its heads, FFN, its groups."""
        out = []
        for layer in range(self.num_layers):
            out.append(Component("attention", layer))
            out += [Component("head", layer, h) for h in range(self.num_heads)]
            out.append(Component("ffn", layer))
            out += [Component("group", layer, g) for g in range(self.num_groups)]
        return out


@dataclass(frozen=True, order=True)
class Component:
    """One gateable part: kind attention/head/ffn/group, its layer, and the head/group index for heads and groups."""

    kind: str
    layer: int
    index: int | None = None

    @property
    def name(self) -> str:
        return f"L{self.layer}.{self.kind}" + ("" if self.index is None else str(self.index))


class Gates:
    """Gate values of every component. Shapes (B = optional per-sample batch dimension):
    attention [B?, L], heads [B?, L, H], ffn [B?, L], groups [B?, L, G]; `neurons` [L, I] is a fixed 0/1 mask.
    """

    def __init__(self, layout: GateLayout, batch_size: int | None = None, requires_grad: bool = False):
        self.layout = layout
        lead = () if batch_size is None else (batch_size,)
        n = layout.num_layers

        def ones(*shape: int) -> torch.Tensor:
            return torch.ones(*lead, *shape, requires_grad=requires_grad)

        self.attention = ones(n)
        self.heads = ones(n, layout.num_heads)
        self.ffn = ones(n)
        self.groups = ones(n, layout.num_groups)
        self.neurons = torch.ones(n, layout.intermediate_size)
        self._group_of_neuron = torch.arange(layout.intermediate_size) // layout.group_size

    def assign(self, plan: Plan) -> None:
        """Set every gate (in place) to what `plan` keeps: 1 kept, 0 removed."""
        with torch.no_grad():
            for tensor in (*self.tensors().values(), self.neurons):
                tensor.fill_(1.0)
            for lp in plan.layers:
                i = lp.index
                if lp.attention.remove:
                    self.attention[..., i] = 0.0
                elif lp.attention.heads_kept is not None:
                    self.heads[..., i, :] = 0.0
                    self.heads[..., i, lp.attention.heads_kept] = 1.0
                if lp.ffn.remove:
                    self.ffn[..., i] = 0.0
                elif lp.ffn.neurons_kept is not None:
                    self.neurons[i] = 0.0
                    self.neurons[i, lp.ffn.neurons_kept] = 1.0

    def tensors(self) -> dict[str, torch.Tensor]:
        """The four learnable gate tensors by component kind."""
        return {"attention": self.attention, "head": self.heads, "ffn": self.ffn, "group": self.groups}

    def set(self, component: Component, value: float) -> None:
        with torch.no_grad():
            tensor = self.tensors()[component.kind]
            if component.index is None:
                tensor[..., component.layer] = value
            else:
                tensor[..., component.layer, component.index] = value

    def attention_columns(self, layer: int) -> torch.Tensor:
        """Multiplier of each input column of the attention output projection: [B?, H * head_dim]."""
        per_head = self.heads[..., layer, :] * self.attention[..., layer, None]
        return per_head.repeat_interleave(self.layout.head_dim, dim=-1)

    def ffn_columns(self, layer: int) -> torch.Tensor:
        """Multiplier of each FFN neuron (input column of the FFN output projection): [B?, I]."""
        per_group = self.groups[..., layer, :] * self.ffn[..., layer, None]
        return per_group[..., self._group_of_neuron] * self.neurons[layer]


def head_columns(heads: list[int], head_dim: int) -> torch.Tensor:
    """Indices of the concatenated-context columns (attention output projection inputs) of `heads`."""
    return torch.tensor([h * head_dim + d for h in heads for d in range(head_dim)], dtype=torch.long)


def _scale_columns(columns: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    if columns.dim() == 2:  # per-sample gates [B, D] against x [B, S, D]
        columns = columns[:, None, :]
    return x * columns.to(x.dtype)


@contextmanager
def gated(model: nn.Module, gates: Gates) -> Iterator[Gates]:
    """Install `gates` on `model` for the duration of the block (hooks removed afterwards)."""
    handles = install_gates(model, gates)
    try:
        yield gates
    finally:
        for handle in handles:
            handle.remove()


def install_gates(model: nn.Module, gates: Gates) -> list[torch.utils.hooks.RemovableHandle]:
    """Attach forward pre-hooks that apply `gates`; returns the handles (call .remove() to detach)."""
    spec = spec_for(model.config.model_type)
    layers = model.base_model.get_submodule(spec.layers)
    if len(layers) != gates.layout.num_layers:
        raise ValueError(f"gates are for {gates.layout.num_layers} layers, the model has {len(layers)}")
    handles = []
    for index, layer in enumerate(layers):
        for role, columns in (("attention.output", gates.attention_columns), ("ffn.output", gates.ffn_columns)):
            linear = layer.get_submodule(spec.matrices[role])

            def hook(module: nn.Module, args: tuple, columns=columns, index=index) -> tuple:
                return (_scale_columns(columns(index), args[0]), *args[1:])

            handles.append(linear.register_forward_pre_hook(hook))
    return handles
