"""Physical pruning of an encoder from a plan, and the project's own save/load format for pruned models.

Heads are cut out of the Q/K/V rows and the attention output projection's columns, neurons out of the FFN
input projection's rows and output projection's columns (`transformers.pytorch_utils.prune_linear_layer`).
A removed block becomes its residual path, LayerNorm(x + output bias): the self-attention core is replaced by
`RemovedAttention` (no context) and the output projection by `BiasOnly`; never a zero-size matrix.
transformers 5 cannot rebuild such models with `from_pretrained`, so `save_pruned` writes the weights
(safetensors) with the plan that says which shapes to rebuild, and `load_pruned` rebuilds the architecture
from the HF config, prunes it by that plan and loads the weights.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import torch
import transformers
from safetensors.torch import load_file, save_file
from torch import nn
from transformers.pytorch_utils import prune_linear_layer

from onnx_approx.architectures import ArchitectureSpec, spec_for
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text, read_json
from onnx_approx.model_sources import PRUNED_SHAPES_FILE
from onnx_approx.plan import Plan
from onnx_approx.significance.gates import head_columns
from onnx_approx.significance.precision import apply_precision, latent_state_dict
from onnx_approx.topk_attention import apply_sign_match, attention_core_path
from onnx_approx.vocabulary import apply_vocabulary

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
PRUNED_FORMAT = 1
# Attributes of a self-attention core that hold its head count / total width (BERT & RoBERTa / DistilBERT).
_HEAD_COUNT_ATTRS = ("num_attention_heads", "n_heads")
_HEAD_WIDTH_ATTRS = ("all_head_size",)


class BiasOnly(nn.Module):
    """What a Linear of a removed block leaves: its bias, broadcast over the tokens ([..., 0] -> [..., out])."""

    def __init__(self, bias: torch.Tensor):
        super().__init__()
        self.bias = nn.Parameter(bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bias.expand(*x.shape[:-1], self.bias.shape[0])


class ZeroWidth(nn.Module):
    """Stands for a Linear whose outputs were all pruned: [..., in] -> [..., 0]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.new_zeros(*x.shape[:-1], 0)


class RemovedAttention(nn.Module):
    """Stands for the self-attention core of a removed block: a context of width 0, passed through the output
    projection when the core owns it (DistilBERT), as the attention modules' callers expect (output, weights)."""

    def __init__(self, output_name: str | None = None, output: nn.Module | None = None):
        super().__init__()
        self.output_name = output_name
        if output_name is not None:
            self.add_module(output_name, output)

    def forward(self, hidden_states: torch.Tensor, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, None]:
        context = hidden_states.new_zeros(*hidden_states.shape[:-1], 0)
        if self.output_name is not None:
            context = getattr(self, self.output_name)(context)
        return context, None


def _set_submodule(root: nn.Module, path: str, module: nn.Module) -> None:
    parent, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _prune_heads(layer: nn.Module, spec: ArchitectureSpec, heads: list[int], head_dim: int) -> None:
    index = head_columns(heads, head_dim)
    for role in ("attention.query", "attention.key", "attention.value"):
        path = spec.matrices[role]
        _set_submodule(layer, path, prune_linear_layer(layer.get_submodule(path), index, dim=0))
    out = spec.matrices["attention.output"]
    _set_submodule(layer, out, prune_linear_layer(layer.get_submodule(out), index, dim=1))
    core = layer.get_submodule(attention_core_path(spec))
    for attr in _HEAD_COUNT_ATTRS:
        if hasattr(core, attr):
            setattr(core, attr, len(heads))
    for attr in _HEAD_WIDTH_ATTRS:
        if hasattr(core, attr):
            setattr(core, attr, len(heads) * head_dim)


def _remove_attention(layer: nn.Module, spec: ArchitectureSpec) -> None:
    core_path = attention_core_path(spec)
    out_path = spec.matrices["attention.output"]
    bias_only = BiasOnly(layer.get_submodule(out_path).bias)
    if out_path.startswith(core_path + "."):  # the core owns its output projection (DistilBERT)
        inner = out_path[len(core_path) + 1:]
        if "." in inner:
            raise ValueError(f"{spec.model_type}: output projection {out_path!r} is nested too deep in {core_path!r}")
        _set_submodule(layer, core_path, RemovedAttention(inner, bias_only))
    else:
        _set_submodule(layer, core_path, RemovedAttention())
        _set_submodule(layer, out_path, bias_only)


def _prune_neurons(layer: nn.Module, spec: ArchitectureSpec, neurons: list[int]) -> None:
    index = torch.tensor(neurons, dtype=torch.long)
    up, down = spec.matrices["ffn.intermediate"], spec.matrices["ffn.output"]
    _set_submodule(layer, up, prune_linear_layer(layer.get_submodule(up), index, dim=0))
    _set_submodule(layer, down, prune_linear_layer(layer.get_submodule(down), index, dim=1))


def _remove_ffn(layer: nn.Module, spec: ArchitectureSpec) -> None:
    down = spec.matrices["ffn.output"]
    _set_submodule(layer, down, BiasOnly(layer.get_submodule(down).bias))
    _set_submodule(layer, spec.matrices["ffn.intermediate"], ZeroWidth())


def prune_model(model: nn.Module, plan: Plan) -> nn.Module:
    """Cut `model` (full-size, in place) down to what `plan` keeps; precision and sign matching are not touched."""
    spec = spec_for(model.config.model_type)
    dims = spec.dims(model.config)
    plan.check_fits(spec.model_type, dims)
    layers = model.base_model.get_submodule(spec.layers)
    for index, layer in enumerate(layers):
        lp = plan.layers[index]
        if lp.attention.remove:
            _remove_attention(layer, spec)
        elif lp.attention.heads_kept is not None:
            _prune_heads(layer, spec, lp.attention.heads_kept, dims["head_dim"])
        if lp.ffn.remove:
            _remove_ffn(layer, spec)
        elif lp.ffn.neurons_kept is not None:
            _prune_neurons(layer, spec, lp.ffn.neurons_kept)
    return model


def layer_shapes(model: nn.Module) -> list[dict[str, int]]:
    """Per layer: how many heads and FFN neurons the (possibly pruned) model computes."""
    spec = spec_for(model.config.model_type)
    head_dim = spec.dims(model.config)["head_dim"]
    shapes = []
    for layer in model.base_model.get_submodule(spec.layers):
        core = layer.get_submodule(attention_core_path(spec))
        up = layer.get_submodule(spec.matrices["ffn.intermediate"])
        query = None if isinstance(core, RemovedAttention) else layer.get_submodule(spec.matrices["attention.query"])
        heads = 0 if query is None else query.out_features // head_dim
        neurons = 0 if isinstance(up, ZeroWidth) else up.out_features
        shapes.append({"heads": heads, "neurons": neurons})
    return shapes


def scatter_into(full: nn.Module, pruned: nn.Module, plan: Plan) -> nn.Module:
    """Copy the weights of `pruned` (pruned by `plan` from a model like `full`) into the kept slices of `full`.

    Used to hand a model recovered in pruned form to the export path, which prunes the full-size ONNX graph
    by the plan. Parameters of removed parts keep their old values (the plan never reads them).
    """
    spec = spec_for(full.config.model_type)
    head_dim = spec.dims(full.config)["head_dim"]
    rows: dict[str, torch.Tensor] = {}  # parameter name (pruned model) -> kept indices along dim 0 / dim 1
    cols: dict[str, torch.Tensor] = {}
    layers_path = f"{full.base_model_prefix}.{spec.layers}"
    for index in range(plan.num_layers):
        prefix = f"{layers_path}.{index}."
        heads = head_columns(plan.kept_heads(index), head_dim)
        neurons = torch.tensor(plan.kept_neurons(index), dtype=torch.long)
        for role in ("attention.query", "attention.key", "attention.value"):
            rows[prefix + spec.matrices[role] + ".weight"] = heads
            rows[prefix + spec.matrices[role] + ".bias"] = heads
        cols[prefix + spec.matrices["attention.output"] + ".weight"] = heads
        rows[prefix + spec.matrices["ffn.intermediate"] + ".weight"] = neurons
        rows[prefix + spec.matrices["ffn.intermediate"] + ".bias"] = neurons
        cols[prefix + spec.matrices["ffn.output"] + ".weight"] = neurons
    target = dict(full.named_parameters())
    with torch.no_grad():
        for name, value in latent_state_dict(pruned).items():
            if name not in target:
                continue  # buffers (position ids) are identical
            if name in rows:
                target[name][rows[name]] = value
            elif name in cols:
                target[name][:, cols[name]] = value
            else:
                target[name].copy_(value)
    return full


def save_pruned(model: nn.Module, plan: Plan, out_dir: str | Path, tokenizer: Any = None, overwrite: bool = False) -> Path:
    """Write a pruned model: HF config, safetensors weights (fp32 latent values), plan and per-layer shapes."""
    out_dir = Path(out_dir)
    state = {k: v.detach().contiguous() for k, v in latent_state_dict(model).items()}
    meta = {"format": PRUNED_FORMAT, "architecture": type(model).__name__, "layers": layer_shapes(model),
            "plan": plan.to_dict()}
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        model.config.save_pretrained(tmp)
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        atomic_write_text(tmp / PRUNED_SHAPES_FILE, json.dumps(meta, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
    return out_dir


def load_pruned(model_dir: str | Path) -> nn.Module:
    """Rebuild a model written by `save_pruned`: architecture from config, pruned by the saved plan, weights
    loaded strictly, then the plan's precision applied (fake quantization) so it computes what was saved."""
    model_dir = Path(model_dir)
    shapes_file = model_dir / PRUNED_SHAPES_FILE
    if not shapes_file.is_file():
        raise FileNotFoundError(f"{model_dir} is not a pruned model folder (no {PRUNED_SHAPES_FILE})")
    meta = read_json(shapes_file)
    if meta.get("format") != PRUNED_FORMAT:
        raise ValueError(f"{shapes_file}: field 'format' must be {PRUNED_FORMAT}, got {meta.get('format')!r}")
    plan = Plan.from_dict(meta.get("plan"), source=f"{shapes_file}: plan")
    config = transformers.AutoConfig.from_pretrained(model_dir)
    cls = getattr(transformers, str(meta.get("architecture")), None)
    if not (isinstance(cls, type) and issubclass(cls, transformers.PreTrainedModel)):
        raise ValueError(f"{shapes_file}: unknown 'architecture' {meta.get('architecture')!r}")
    model = prune_model(cls(config), plan)
    if layer_shapes(model) != meta.get("layers"):
        raise ValueError(f"{shapes_file}: recorded layer shapes {meta.get('layers')} do not match the plan's "
                         f"{layer_shapes(model)}")
    missing, unexpected = model.load_state_dict(load_file(str(model_dir / WEIGHTS_FILE)), strict=False)
    missing = [k for k in missing if k not in _non_persistent_buffers(model)]
    if missing or unexpected:
        raise ValueError(f"{model_dir / WEIGHTS_FILE}: weights do not fit the pruned shapes "
                         f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    apply_precision(model, plan)
    apply_vocabulary(model, plan)
    apply_sign_match(model, plan)
    model.eval()
    log.info("loaded pruned %s model from %s: %s", config.model_type, model_dir, layer_shapes(model))
    return model


def _non_persistent_buffers(model: nn.Module) -> set[str]:
    persistent = set(model.state_dict())
    return {name for name, _ in model.named_buffers() if name not in persistent}
