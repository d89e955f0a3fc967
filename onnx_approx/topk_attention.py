"""Per-layer sign-matching top-K attention plugged into Hugging Face attention modules.

transformers 5 looks up each attention core's kernel by `module.config._attn_implementation` in
`ALL_ATTENTION_FUNCTIONS`. We register one function under `ATTENTION_NAME` and give only the chosen layers'
cores a config copy naming it, plus their K in `module.sign_match_top_k`; other layers keep their kernel.
The function runs `onnx_approx.ops.sign_match.sign_match_attention`: each query attends, with exact
softmax, to its K keys whose signs match its own in most dimensions (padding keys never).
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn
from transformers import AttentionInterface

from onnx_approx.architectures import ArchitectureSpec, spec_for
from onnx_approx.ops.sign_match import sign_match_attention
from onnx_approx.plan import Plan

ATTENTION_NAME = "onnx_approx_top_k"


def attention_core_path(spec: ArchitectureSpec) -> str:
    """Path (inside a layer) of the module that runs Q/K/V attention: the query projection's parent."""
    return spec.matrices["attention.query"].rpartition(".")[0]


def _key_valid(attention_mask: torch.Tensor | None, key: torch.Tensor) -> torch.Tensor:
    """[B, Sk] bool from the 4-D mask HF passes (bool for sdpa, additive float for eager, None = all valid)."""
    if attention_mask is None:
        return torch.ones(key.shape[0], key.shape[-2], dtype=torch.bool, device=key.device)
    if attention_mask.dtype != torch.bool:
        attention_mask = attention_mask > torch.finfo(attention_mask.dtype).min / 2
    return attention_mask[:, 0].any(dim=-2)


def _top_k_attention_function(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
    attention_mask: torch.Tensor | None, scaling: float | None = None, dropout: float = 0.0, **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    out = sign_match_attention(query, key, value, module.sign_match_top_k, _key_valid(attention_mask, key),
                               scale=scaling, dropout=dropout)
    return out.transpose(1, 2).contiguous(), None


AttentionInterface.register(ATTENTION_NAME, _top_k_attention_function)


def apply_sign_match(model: nn.Module, plan: Plan) -> nn.Module:
    """Make each layer with `sign_match_top_k` use top-K attention and every other layer its usual kernel."""
    spec = spec_for(model.config.model_type)
    layers = model.base_model.get_submodule(spec.layers)
    for lp, layer in zip(plan.layers, layers):
        core = layer.get_submodule(attention_core_path(spec))
        if not hasattr(core, "config"):  # a removed attention block
            continue
        k = lp.attention.sign_match_top_k
        if k is None:
            if hasattr(core, "sign_match_top_k"):
                core.config = model.config
                del core.sign_match_top_k
            continue
        if not hasattr(core, "sign_match_top_k"):
            core.config = copy.copy(model.config)
            core.config._attn_implementation = ATTENTION_NAME
        core.sign_match_top_k = k
    return model
