"""Inputs for the sign-matching attention tests, and the compiled library (tests that need it skip without)."""

from __future__ import annotations

import numpy as np
import pytest

from onnx_approx.ops import library_path

# A few values, so that many keys tie on their match count; -0.0 must count as negative, +0.0 as positive.
TIE_VALUES = np.array([-1.5, -0.5, -0.0, 0.0, 0.5, 2.0], np.float32)


@pytest.fixture
def make_inputs():
    """Factory: make_inputs(batch, heads, q_len, k_len, dim, seed=0, ties=False) -> q, k, v (float32)."""

    def make(batch, heads, q_len, k_len, dim, seed=0, ties=False):
        rng = np.random.default_rng(seed)
        if ties:
            q = rng.choice(TIE_VALUES, (batch, heads, q_len, dim))
            k = rng.choice(TIE_VALUES, (batch, heads, k_len, dim))
        else:
            q = rng.standard_normal((batch, heads, q_len, dim)).astype(np.float32)
            k = rng.standard_normal((batch, heads, k_len, dim)).astype(np.float32)
        v = rng.standard_normal((batch, heads, k_len, dim)).astype(np.float32)
        return q, k, v

    return make


@pytest.fixture
def make_mask():
    """Factory: make_mask(batch, k_len, seed=0) -> int64 [B, Sk] key_padding_mask: batch 0 keeps a random
    ~70 % of the keys, batch 1 only two, batch 2 none (when present)."""

    def make(batch: int, k_len: int, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed + 100)
        mask = (rng.random((batch, k_len)) < 0.7).astype(np.int64)
        if batch > 1:
            mask[1] = 0
            mask[1, rng.choice(k_len, size=min(2, k_len), replace=False)] = 1
        if batch > 2:
            mask[2] = 0
        return mask

    return make


@pytest.fixture
def built_library():
    path = library_path()
    if path is None:
        pytest.skip("the SignMatchAttention kernel library is not built (run `make ops`)")
    return path
