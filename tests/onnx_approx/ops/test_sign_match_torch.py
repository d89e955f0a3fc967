"""The PyTorch sign-matching attention against the NumPy reference: selection, output, gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from onnx_approx.ops.reference import sign_match_attention_reference, sign_match_selection
from onnx_approx.ops.sign_match import select_keys, sign_match_attention

CASES = [  # batch, heads, q_len, k_len, dim, top_k
    (2, 3, 5, 9, 7, 3),
    (3, 2, 11, 40, 33, 8),
    (1, 4, 6, 6, 16, 1),
    (3, 1, 4, 5, 20, 32),  # top_k above the key count: exact attention over the valid keys
]


class TestSignMatchTorch:
    @pytest.mark.parametrize("case", CASES)
    @pytest.mark.parametrize("mask_kind", [None, "int64", "bool"])
    @pytest.mark.parametrize("ties", [False, True])
    def test_matches_reference(self, make_inputs, make_mask, case, mask_kind, ties):
        batch, heads, q_len, k_len, dim, top_k = case
        q, k, v = make_inputs(batch, heads, q_len, k_len, dim, seed=dim, ties=ties)
        mask = None if mask_kind is None else make_mask(batch, k_len).astype(mask_kind)
        torch_mask = None if mask is None else torch.from_numpy(mask)
        tq, tk, tv = (torch.from_numpy(x) for x in (q, k, v))
        selected = select_keys(tq, tk, top_k, torch_mask)
        np.testing.assert_array_equal(selected.numpy(), sign_match_selection(q, k, top_k, mask))
        out = sign_match_attention(tq, tk, tv, top_k, torch_mask)
        np.testing.assert_allclose(out.numpy(), sign_match_attention_reference(q, k, v, top_k, mask), atol=1e-5, rtol=0)

    def test_scale(self, make_inputs):
        q, k, v = make_inputs(1, 2, 3, 10, 8, seed=3)
        out = sign_match_attention(*(torch.from_numpy(x) for x in (q, k, v)), 4, scale=0.9)
        np.testing.assert_allclose(out.numpy(), sign_match_attention_reference(q, k, v, 4, scale=0.9), atol=1e-5, rtol=0)

    def test_gradients_are_those_of_exact_attention_over_the_selected_keys(self, make_inputs, make_mask):
        q, k, v = make_inputs(2, 2, 6, 12, 8, seed=5)
        mask = make_mask(2, 12)
        selected = torch.from_numpy(sign_match_selection(q, k, 4, mask))
        weights = torch.randn(2, 2, 6, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

        def grads(attention):
            tensors = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (q, k, v)]
            (attention(*tensors) * weights).sum().backward()
            return [t.grad for t in tensors]

        def restricted(tq, tk, tv):  # independent: exact attention with the selection as a -inf mask
            scores = (tq @ tk.transpose(-1, -2) / np.sqrt(8)).masked_fill(~selected, float("-inf"))
            return torch.nan_to_num(torch.softmax(scores, dim=-1)) @ tv

        ours = grads(lambda tq, tk, tv: sign_match_attention(tq, tk, tv, 4, torch.from_numpy(mask)))
        for got, expected in zip(ours, grads(restricted)):
            torch.testing.assert_close(got, expected, atol=1e-10, rtol=1e-8)
        assert all(g.abs().sum() > 0 for g in ours)

    def test_dropout_only_drops_probabilities(self, make_inputs):
        q, k, v = (torch.from_numpy(x) for x in make_inputs(1, 1, 4, 6, 8, seed=2))
        torch.manual_seed(0)
        dropped = sign_match_attention(q, k, v, 3, dropout=0.5)
        assert not torch.allclose(dropped, sign_match_attention(q, k, v, 3))
        assert torch.isfinite(dropped).all()

    def test_rejects_top_k_below_one(self, make_inputs):
        q, k, v = (torch.from_numpy(x) for x in make_inputs(1, 1, 2, 3, 4))
        with pytest.raises(ValueError, match="top_k"):
            sign_match_attention(q, k, v, 0)
