"""Task metrics: GLUE (accuracy, binary F1, Matthews correlation, Pearson, Spearman) and SQuAD v1.1 EM/F1.

Written with NumPy so the package needs neither scikit-learn nor SciPy at run time (the tests check
these against both). All scores are fractions in [0, 1] (correlations in [-1, 1]); the official SQuAD
script prints EM/F1 multiplied by 100.
"""

from __future__ import annotations

import collections
import logging
import re
import string
from collections.abc import Mapping, Sequence

import numpy as np

from onnx_approx.data.tasks import ACCURACY, EXACT_MATCH, F1, MCC, PEARSON, SPEARMAN, QAExample, TaskSpec

logger = logging.getLogger(__name__)


def _pair(predictions, references, dtype) -> tuple[np.ndarray, np.ndarray]:
    pred = np.asarray(predictions, dtype=dtype).reshape(-1)
    ref = np.asarray(references, dtype=dtype).reshape(-1)
    if pred.shape != ref.shape:
        raise ValueError(f"{pred.size} predictions for {ref.size} references")
    if pred.size == 0:
        raise ValueError("no predictions to score")
    return pred, ref


def accuracy(predictions, references) -> float:
    pred, ref = _pair(predictions, references, np.int64)
    return float(np.mean(pred == ref))


def binary_f1(predictions, references, positive: int = 1) -> float:
    """F1 of the `positive` class; 0.0 when there are no true positives (as scikit-learn's default)."""
    pred, ref = _pair(predictions, references, np.int64)
    tp = np.sum((pred == positive) & (ref == positive))
    if tp == 0:
        return 0.0
    return float(2 * tp / (np.sum(pred == positive) + np.sum(ref == positive)))


def matthews_corrcoef(predictions, references) -> float:
    """Matthews correlation over any number of classes (Gorodkin's R_K); 0.0 when undefined."""
    pred, ref = _pair(predictions, references, np.int64)
    classes, encoded = np.unique(np.concatenate([ref, pred]), return_inverse=True)
    k = len(classes)
    confusion = np.zeros((k, k), dtype=np.float64)
    np.add.at(confusion, (encoded[: ref.size], encoded[ref.size:]), 1)
    true_per_class, pred_per_class = confusion.sum(axis=1), confusion.sum(axis=0)
    n, correct = confusion.sum(), np.trace(confusion)
    denominator = np.sqrt((n * n - pred_per_class @ pred_per_class) * (n * n - true_per_class @ true_per_class))
    if denominator == 0:
        return 0.0
    return float((correct * n - pred_per_class @ true_per_class) / denominator)


def pearson(predictions, references) -> float:
    """Pearson correlation; 0.0 (with a warning) when either side is constant and it is undefined."""
    pred, ref = _pair(predictions, references, np.float64)
    pred, ref = pred - pred.mean(), ref - ref.mean()
    norm = np.sqrt((pred @ pred) * (ref @ ref))
    if norm == 0:
        logger.warning("Pearson/Spearman correlation is undefined for constant values; reporting 0.0")
        return 0.0
    return float(np.clip(pred @ ref / norm, -1.0, 1.0))


def spearman(predictions, references) -> float:
    """Spearman rank correlation: Pearson of the ranks, ties sharing their average rank."""
    pred, ref = _pair(predictions, references, np.float64)
    return pearson(_average_ranks(pred), _average_ranks(ref))


def _average_ranks(values: np.ndarray) -> np.ndarray:
    order = np.argsort(values, kind="stable")
    _, first, counts = np.unique(values[order], return_index=True, return_counts=True)
    ranks = np.empty(values.size, dtype=np.float64)
    ranks[order] = np.repeat(first + (counts - 1) / 2.0, counts)
    return ranks


_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


def normalize_answer(text: str) -> str:
    """SQuAD's official normalization: lower case, drop punctuation and articles, collapse whitespace."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCTUATION)).split())


def squad_exact_match(prediction: str, golds: Sequence[str]) -> float:
    return float(max(normalize_answer(prediction) == normalize_answer(gold) for gold in golds))


def squad_f1(prediction: str, golds: Sequence[str]) -> float:
    """Token-overlap F1 of the normalized answers, best over the gold answers."""
    pred_tokens = normalize_answer(prediction).split()
    best = 0.0
    for gold in golds:
        gold_tokens = normalize_answer(gold).split()
        same = sum((collections.Counter(pred_tokens) & collections.Counter(gold_tokens)).values())
        if same:
            precision, recall = same / len(pred_tokens), same / len(gold_tokens)
            best = max(best, 2 * precision * recall / (precision + recall))
    return best


def squad_scores(predictions: Mapping[str, str],
                 references: Mapping[str, Sequence[str]] | Sequence[QAExample]) -> dict[str, float]:
    """Mean exact match and F1 over the reference questions; an unanswered question scores 0."""
    if not isinstance(references, Mapping):
        references = {ex.id: ex.answers for ex in references}
    if not references:
        raise ValueError("no questions to score")
    unanswered = [qid for qid in references if qid not in predictions]
    if unanswered:
        logger.warning("%d of %d questions have no prediction and score 0 (e.g. %s)",
                       len(unanswered), len(references), unanswered[0])
    answered = {qid: golds for qid, golds in references.items() if qid in predictions}
    em = sum(squad_exact_match(predictions[qid], golds) for qid, golds in answered.items())
    f1 = sum(squad_f1(predictions[qid], golds) for qid, golds in answered.items())
    return {EXACT_MATCH: em / len(references), F1: f1 / len(references)}


_GLUE_METRICS = {ACCURACY: accuracy, F1: binary_f1, MCC: matthews_corrcoef, PEARSON: pearson, SPEARMAN: spearman}


def compute_metrics(task: TaskSpec, predictions, references) -> dict[str, float]:
    """Every metric of `task`, in its declared order. Predictions: class ids (classification), floats
    (regression), or {question id: answer text} (QA, references: {id: gold answers} or QA examples)."""
    if task.kind == "qa":
        scores = squad_scores(predictions, references)
        return {name: scores[name] for name in task.metrics}
    return {name: _GLUE_METRICS[name](predictions, references) for name in task.metrics}
