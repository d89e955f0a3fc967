"""Metrics against scikit-learn / SciPy on random data, degenerate cases, and hand-computed SQuAD scores."""

import numpy as np
import pytest
from scipy import stats
from sklearn import metrics as skm

from onnx_approx.data import QAExample, get_task
from onnx_approx.metrics import (accuracy, binary_f1, compute_metrics, matthews_corrcoef, normalize_answer,
                                 pearson, spearman, squad_exact_match, squad_f1, squad_scores)


@pytest.mark.parametrize("seed", range(5))
def test_classification_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 2, size=200)
    pred = np.where(rng.random(200) < 0.7, ref, 1 - ref)
    assert accuracy(pred, ref) == pytest.approx(skm.accuracy_score(ref, pred), abs=1e-12)
    assert binary_f1(pred, ref) == pytest.approx(skm.f1_score(ref, pred), abs=1e-12)
    assert matthews_corrcoef(pred, ref) == pytest.approx(skm.matthews_corrcoef(ref, pred), abs=1e-12)


@pytest.mark.parametrize("seed", range(3))
def test_multiclass_mcc_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 4, size=300)
    pred = np.where(rng.random(300) < 0.5, ref, rng.integers(0, 4, size=300))
    assert matthews_corrcoef(pred, ref) == pytest.approx(skm.matthews_corrcoef(ref, pred), abs=1e-12)


def test_degenerate_classification():
    ref = np.array([0, 1, 0, 1])
    constant = np.zeros(4, dtype=int)
    assert matthews_corrcoef(constant, ref) == skm.matthews_corrcoef(ref, constant) == 0.0
    assert binary_f1(constant, ref) == skm.f1_score(ref, constant, zero_division=0) == 0.0
    assert matthews_corrcoef(ref, ref) == 1.0 and matthews_corrcoef(1 - ref, ref) == -1.0


@pytest.mark.parametrize("seed", range(5))
def test_correlations_match_scipy(seed):
    rng = np.random.default_rng(seed)
    ref = np.round(rng.uniform(0, 5, size=150), 1)  # rounded: plenty of ties for Spearman
    pred = ref + rng.normal(0, 1.5, size=150)
    pred[:20] = np.round(pred[:20])
    assert pearson(pred, ref) == pytest.approx(stats.pearsonr(pred, ref)[0], abs=1e-12)
    assert spearman(pred, ref) == pytest.approx(stats.spearmanr(pred, ref)[0], abs=1e-12)


def test_constant_correlation_is_zero(caplog):
    assert pearson([1.0, 1.0, 1.0], [1.0, 2.0, 3.0]) == 0.0
    assert "undefined" in caplog.text


def test_length_mismatch_and_empty():
    with pytest.raises(ValueError, match="3 predictions for 2 references"):
        accuracy([0, 1, 1], [0, 1])
    with pytest.raises(ValueError, match="no predictions"):
        accuracy([], [])


def test_normalize_answer():
    assert normalize_answer("The  Denver Broncos!") == "denver broncos"
    assert normalize_answer("an apple, a pear") == "apple pear"
    assert normalize_answer("Theory") == "theory"  # only whole-word articles go


def test_squad_hand_computed():
    # "the denver broncos" vs gold "Denver Broncos": normalized equal.
    assert squad_exact_match("the denver broncos", ["Denver Broncos"]) == 1.0
    # pred tokens {denver, broncos, team}, gold {denver, broncos}: P=2/3, R=1, F1=0.8.
    assert squad_f1("Denver Broncos team", ["Denver Broncos"]) == pytest.approx(0.8)
    # best over golds: vs "Broncos" P=1/3 R=1 -> 0.5; vs "Broncos team" P=2/3 R=1 -> 0.8.
    assert squad_f1("Denver Broncos team", ["Broncos", "Broncos team"]) == pytest.approx(0.8)
    assert squad_exact_match("Carolina", ["Denver Broncos", "Broncos"]) == 0.0
    assert squad_f1("Carolina", ["Denver Broncos"]) == 0.0
    # repeated tokens overlap as multisets: pred [x, x, y], gold [x, y, y]: overlap 2, P=R=2/3.
    assert squad_f1("x x y", ["x y y"]) == pytest.approx(2 / 3)


def test_squad_scores_and_unanswered(caplog):
    refs = {"q1": ["Denver Broncos"], "q2": ["Paris"], "q3": ["blue"]}
    scores = squad_scores({"q1": "Denver Broncos", "q2": "in Paris"}, refs)
    # q1: EM 1 F1 1; q2: EM 0, F1 P=1/2 R=1 -> 2/3; q3 unanswered: 0.
    assert scores["exact_match"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx((1 + 2 / 3) / 3)
    assert "1 of 3 questions have no prediction" in caplog.text


def test_compute_metrics_per_task():
    ref, pred = [0, 1, 1, 0, 1], [0, 1, 0, 0, 1]
    assert compute_metrics(get_task("mrpc"), pred, ref) == {
        "f1": pytest.approx(skm.f1_score(ref, pred)), "accuracy": pytest.approx(0.8)}
    assert list(compute_metrics(get_task("cola"), pred, ref)) == ["matthews_correlation"]
    stsb = compute_metrics(get_task("stsb"), [0.1, 2.0, 3.3, 4.0], [0.0, 2.5, 3.0, 5.0])
    assert set(stsb) == {"pearson", "spearman"} and stsb["spearman"] == pytest.approx(1.0)
    examples = [QAExample("a", "q", "Paris is big", ["Paris"], [0])]
    assert compute_metrics(get_task("squad"), {"a": "paris"}, examples) == {"exact_match": 1.0, "f1": 1.0}
