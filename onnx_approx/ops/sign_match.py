"""Sign-matching attention in PyTorch: the trainable form used by significance analysis and recovery
fine-tuning. Key selection (sign matching, top-k) is not differentiable; gradients flow through the exact
softmax attention over the selected keys. Semantics: `onnx_approx.ops.reference`.

Works on [B, H, S, D] tensors, so it drops into an HF attention function (see
`onnx_approx.topk_attention`, which plugs per-layer K into transformers' attention interface).
"""

from __future__ import annotations

import torch
from torch import nn


@torch.no_grad()
def select_keys(
    q: torch.Tensor, k: torch.Tensor, top_k: int, key_padding_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Boolean [B, H, Sq, Sk]: the keys each query attends to (sign matching, ties to the lower index)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    dim, k_len = q.shape[-1], k.shape[-2]
    with torch.autocast(q.device.type, enabled=False):
        # ±1 signs: their dot product is 2 * match - D, exact in float32 for D < 2^24.
        q_sign = torch.where(torch.signbit(q), -1.0, 1.0).float()
        k_sign = torch.where(torch.signbit(k), -1.0, 1.0).float()
        agree = torch.matmul(q_sign, k_sign.transpose(-1, -2))
    # One integer per key that orders by match count, then by lower key index (topk's own tie
    # order is unspecified); invalid keys get -1, below every valid one.
    dtype = torch.int32 if (dim + 1) * k_len < 2**31 else torch.int64
    match = (agree.round().to(dtype) + dim) // 2
    rank = match * k_len + torch.arange(k_len - 1, -1, -1, device=q.device, dtype=dtype)
    valid = None
    if key_padding_mask is not None:
        valid = (key_padding_mask != 0)[:, None, None, :]
        rank = rank.masked_fill(~valid, -1)
    chosen = rank.topk(min(top_k, k_len), dim=-1).indices
    selected = torch.zeros(rank.shape, dtype=torch.bool, device=q.device).scatter_(-1, chosen, True)
    return selected if valid is None else selected & valid


def sign_match_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    top_k: int,
    key_padding_mask: torch.Tensor | None = None,
    scale: float | None = None,
    dropout: float = 0.0,
) -> torch.Tensor:
    """Attention [B, H, Sq, D] over each query's `top_k` best sign-matching valid keys.

    q, k, v: [B, H, S, D]; key_padding_mask: [B, Sk], bool or int (nonzero = valid); scale defaults to
    1/sqrt(D); dropout applies to the attention probabilities (training only, as in HF).
    """
    selected = select_keys(q, k, top_k, key_padding_mask)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    scores = scores.masked_fill(~selected, torch.finfo(scores.dtype).min)
    # Multiplying by the selection zeroes the rows of queries without any valid key (their softmax
    # is uniform over nothing) while leaving the others unchanged: exp(min - max) is exactly 0.
    probs = torch.softmax(scores, dim=-1) * selected
    if dropout > 0.0:
        probs = nn.functional.dropout(probs, p=dropout, training=True)
    return torch.matmul(probs, v)
