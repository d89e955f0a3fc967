"""NumPy reference of SignMatchAttention: the plain, slow statement of the semantics that the PyTorch
function, the C++ kernel and the ONNX FunctionProto are all tested against. Torch-free.

Semantics (normative): for each batch b, head h and query i, match(j) counts the dimensions d where
signbit(Q[b,h,i,d]) == signbit(K[b,h,j,d]) (IEEE sign bit: -0.0 is negative) over the valid keys j
(key_padding_mask[b, j] nonzero, or all keys without a mask). The `top_k` valid keys with the highest
match are selected, ties to the lower j; with fewer valid keys, all are. The output is
sum over selected j of softmax_j(scale * Q[i]·K[j]) * V[j], scale defaulting to 1/sqrt(D); a query
with no valid key outputs zeros.
"""

from __future__ import annotations

import numpy as np


def sign_match_selection(
    q: np.ndarray, k: np.ndarray, top_k: int, key_padding_mask: np.ndarray | None = None
) -> np.ndarray:
    """Boolean [B, H, Sq, Sk]: which keys each query attends to."""
    q = np.asarray(q, dtype=np.float32)
    k = np.asarray(k, dtype=np.float32)
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1, got {top_k}")
    batch, heads, q_len, _ = q.shape
    k_len = k.shape[2]
    valid = np.ones((batch, k_len), bool) if key_padding_mask is None else np.asarray(key_padding_mask) != 0
    q_neg, k_neg = np.signbit(q), np.signbit(k)
    selected = np.zeros((batch, heads, q_len, k_len), bool)
    for b in range(batch):
        keys = np.flatnonzero(valid[b])
        if keys.size == 0:
            continue
        n = min(top_k, keys.size)
        for h in range(heads):
            match = (q_neg[b, h][:, None, :] == k_neg[b, h][keys][None, :, :]).sum(axis=-1)  # [Sq, valid]
            order = np.argsort(-match, axis=1, kind="stable")[:, :n]  # stable: ties keep the lower index
            np.put_along_axis(selected[b, h], keys[order], True, axis=1)
    return selected


def sign_match_attention_reference(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    top_k: int,
    key_padding_mask: np.ndarray | None = None,
    scale: float | None = None,
) -> np.ndarray:
    """SignMatchAttention output [B, H, Sq, D] in float64 (inputs are read as float32)."""
    selected = sign_match_selection(q, k, top_k, key_padding_mask)
    q64, k64, v64 = (np.asarray(x, dtype=np.float32).astype(np.float64) for x in (q, k, v))
    scale = 1.0 / np.sqrt(q64.shape[-1]) if scale is None else float(scale)
    scores = np.where(selected, np.einsum("bhid,bhjd->bhij", q64, k64) * scale, -np.inf)
    row_max = np.where(selected.any(axis=-1, keepdims=True), scores.max(axis=-1, keepdims=True), 0.0)
    weights = np.where(selected, np.exp(scores - row_max), 0.0)
    total = weights.sum(axis=-1, keepdims=True)
    probs = np.divide(weights, total, out=np.zeros_like(weights), where=total > 0)
    return np.einsum("bhij,bhjd->bhid", probs, v64)
