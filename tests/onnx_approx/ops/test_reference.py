"""The NumPy reference against a literal, per-query statement of the semantics, and a worked example."""

from __future__ import annotations

import math

import numpy as np
import pytest

from onnx_approx.ops.reference import sign_match_attention_reference, sign_match_selection


def _literal(q, k, v, top_k, mask, scale):
    """Plain Python loops: sort valid keys by (-match, index), softmax over the first top_k."""
    batch, heads, q_len, dim = q.shape
    out = np.zeros(q.shape)
    for b in range(batch):
        valid = [j for j in range(k.shape[2]) if mask is None or mask[b, j]]
        for h in range(heads):
            for i in range(q_len):
                def match(j):
                    return sum(math.copysign(1, q[b, h, i, d]) == math.copysign(1, k[b, h, j, d]) for d in range(dim))
                chosen = sorted(valid, key=lambda j: (-match(j), j))[:top_k]
                if not chosen:
                    continue
                scores = [scale * float(np.dot(q[b, h, i].astype(np.float64), k[b, h, j])) for j in chosen]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                out[b, h, i] = sum(w * v[b, h, j].astype(np.float64) for w, j in zip(weights, chosen)) / sum(weights)
    return out


class TestReference:
    @pytest.mark.parametrize("masked", [False, True])
    def test_matches_literal_statement(self, make_inputs, make_mask, masked):
        q, k, v = make_inputs(3, 2, 4, 9, 5, seed=7, ties=True)
        mask = make_mask(3, 9) if masked else None
        expected = _literal(q, k, v, 3, mask, 0.7)
        np.testing.assert_allclose(sign_match_attention_reference(q, k, v, 3, mask, 0.7), expected, atol=1e-12)

    def test_worked_example(self):
        # Query signs (+, -, +). Keys: 0 (-,-,-) matches 1; 1 (+,-,+) 3; 2 (+,+,+) 2; 3 (+,-0.0,-) 2;
        # 4 (+,-,+) 3. top_k=3 takes keys 1 and 4 (3 matches), then key 2 over key 3 (tie: lower index).
        q = np.array([1.0, -2.0, 0.5], np.float32).reshape(1, 1, 1, 3)
        k = np.array([[-1, -1, -1], [1, -1, 1], [1, 1, 1], [1, -0.0, -1], [2, -1, 3]], np.float32).reshape(1, 1, 5, 3)
        selected = sign_match_selection(q, k, 3)[0, 0, 0]
        assert selected.tolist() == [False, True, True, False, True]
        v = np.eye(5, 3, dtype=np.float32).reshape(1, 1, 5, 3) + 1.0
        scores = np.array([q[0, 0, 0] @ k[0, 0, j] for j in (1, 2, 4)]) / np.sqrt(3)
        weights = np.exp(scores) / np.exp(scores).sum()
        expected = sum(w * v[0, 0, j] for w, j in zip(weights, (1, 2, 4)))
        np.testing.assert_allclose(sign_match_attention_reference(q, k, v, 3)[0, 0, 0], expected, atol=1e-12)

    def test_query_without_valid_key_outputs_zeros(self, make_inputs):
        q, k, v = make_inputs(1, 2, 3, 4, 5)
        assert not sign_match_attention_reference(q, k, v, 2, np.zeros((1, 4), bool)).any()

    def test_rejects_top_k_below_one(self, make_inputs):
        q, k, _ = make_inputs(1, 1, 1, 2, 3)
        with pytest.raises(ValueError, match="top_k"):
            sign_match_selection(q, k, 0)
