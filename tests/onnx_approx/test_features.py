"""Tokenization, dynamic padding, batching and QA featurization on the tiny test tokenizer."""

import logging
import types

import numpy as np
import pytest
import torch

from onnx_approx.data import Example, QAExample
from onnx_approx.features import (collate, encode_examples, encode_texts, in_original_order, length_grouped_batches,
                                  postprocess_qa, prepare_qa_features, sorted_batches)

SHORT = "the movie was good"
LONG = " ".join(["the film was really quite boring but the actor was great"] * 6)


@pytest.fixture
def tokenizer(tiny_tokenizer):
    return tiny_tokenizer


def _warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "onnx_approx.features"]


def test_encode_matches_tokenizer_truncation_and_warns_once(tokenizer, caplog):
    texts = [SHORT, LONG, LONG + " it is", "fun"]
    with caplog.at_level(logging.WARNING):
        got = encode_texts(tokenizer, texts, max_length=16)
    reference = tokenizer(texts, truncation=True, max_length=16)
    assert got["input_ids"] == reference["input_ids"]
    assert got["token_type_ids"] == reference["token_type_ids"]
    assert [len(ids) for ids in got["input_ids"]][1:3] == [16, 16]
    (warning,) = _warnings(caplog)
    assert "2 of 4 sequences" in warning.getMessage()


def test_encode_pairs_truncates_longest_first(tokenizer, caplog):
    a, b = [SHORT, LONG], [LONG, "yes"]
    with caplog.at_level(logging.WARNING):
        got = encode_texts(tokenizer, a, b, max_length=20)
    reference = tokenizer(a, b, truncation="longest_first", max_length=20)
    assert got["input_ids"] == reference["input_ids"] and got["token_type_ids"] == reference["token_type_ids"]
    assert len(_warnings(caplog)) == 1


def test_encode_without_truncation_is_silent_and_unpadded(tokenizer, caplog):
    with caplog.at_level(logging.WARNING):
        got = encode_texts(tokenizer, [SHORT, "fun"], max_length=16)
    assert not caplog.records
    assert [len(ids) for ids in got["input_ids"]] == [len(x) for x in tokenizer([SHORT, "fun"])["input_ids"]]


def test_encode_rejects_empty_and_mismatched_input(tokenizer):
    with pytest.raises(ValueError, match="no texts"):
        encode_texts(tokenizer, [])
    with pytest.raises(ValueError, match="2 first texts but 1 second"):
        encode_texts(tokenizer, ["a", "b"], ["c"])


def test_max_length_capped_by_model_maximum(tokenizer):
    got = encode_texts(tokenizer, [LONG * 3], max_length=10_000)
    assert len(got["input_ids"][0]) == tokenizer.model_max_length


def test_encode_examples_adds_labels(tokenizer):
    examples = [Example("a b", "c", 1, "f:1"), Example("d", "e f", 0, "f:2")]
    features = encode_examples(tokenizer, examples)
    assert features["labels"] == [1, 0]
    assert features["input_ids"] == tokenizer(["a b", "d"], ["c", "e f"])["input_ids"]
    unlabeled = encode_examples(tokenizer, [Example("a", None, None, "f:1")])
    assert "labels" not in unlabeled


def test_collate_matches_tokenizer_pad(tokenizer):
    features = encode_texts(tokenizer, [SHORT, LONG, "fun"], ["yes", "no", "it was fine"], max_length=32)
    rows = [{k: features[k][i] for k in features} for i in range(3)]
    reference = tokenizer.pad(rows, return_tensors="np")
    got = collate(features, tokenizer, with_token_type_ids=True, return_tensors="np")
    for key in ("input_ids", "attention_mask", "token_type_ids"):
        np.testing.assert_array_equal(got[key], reference[key])
        assert got[key].dtype == np.int64
    from_rows = collate(rows, tokenizer.pad_token_id, with_token_type_ids=True, return_tensors="pt")
    for key in got:
        assert from_rows[key].dtype == torch.int64
        np.testing.assert_array_equal(from_rows[key].numpy(), got[key])


def test_collate_indices_labels_and_options():
    features = {"input_ids": [[5, 6, 7], [5, 6], [5]], "labels": [0.5, 1.0, 2.5], "offset_mapping": [[], [], []]}
    got = collate(features, 1, with_token_type_ids=False, return_tensors="np", indices=[2, 1])
    np.testing.assert_array_equal(got["input_ids"], [[5, 1], [5, 6]])
    np.testing.assert_array_equal(got["attention_mask"], [[1, 0], [1, 1]])
    assert got["labels"].dtype == np.float32 and got["labels"].tolist() == [2.5, 1.0]
    assert set(got) == {"input_ids", "attention_mask", "labels"}
    with_types = collate(features, 1, with_token_type_ids=True, return_tensors="np")
    np.testing.assert_array_equal(with_types["token_type_ids"], np.zeros((3, 3)))
    ints = collate({"input_ids": [[1]], "labels": [1]}, 0, False, "np")
    assert ints["labels"].dtype == np.int64
    with pytest.raises(ValueError, match="empty batch"):
        collate(features, 1, False, "np", indices=[])
    with pytest.raises(ValueError, match="return_tensors"):
        collate(features, 1, False, "tf")


def _padded_tokens(lengths, batches):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_length_grouped_batches():
    rng = np.random.default_rng(0)
    lengths = rng.integers(3, 120, size=1003).tolist()
    batches = length_grouped_batches(lengths, batch_size=8, seed=3, mega_batch_mult=10)
    assert sorted(i for b in batches for i in b) == list(range(1003))
    assert all(1 <= len(b) <= 8 for b in batches)
    assert batches == length_grouped_batches(lengths, batch_size=8, seed=3, mega_batch_mult=10)
    assert batches != length_grouped_batches(lengths, batch_size=8, seed=4, mega_batch_mult=10)
    plain = [list(range(i, min(i + 8, 1003))) for i in range(0, 1003, 8)]
    assert _padded_tokens(lengths, batches) < 0.8 * _padded_tokens(lengths, plain)


def test_length_grouped_without_shuffle_keeps_mega_batches_in_order():
    lengths = [5, 1, 9, 3, 7, 2, 8, 4]
    batches = length_grouped_batches(lengths, batch_size=2, seed=0, shuffle=False, mega_batch_mult=2)
    # mega-batches are the first and last four examples, each sorted longest first
    assert batches == [[2, 0], [3, 1], [6, 4], [7, 5]]
    assert batches == length_grouped_batches(lengths, batch_size=2, seed=9, shuffle=False, mega_batch_mult=2)


def test_sorted_batches_and_original_order():
    lengths = [4, 9, 1, 9, 6]
    batches = sorted_batches(lengths, batch_size=2)
    assert batches == [[1, 3], [4, 0], [2]]
    outputs = [np.array([[i, 10 * i] for i in b]) for b in batches]
    np.testing.assert_array_equal(in_original_order(batches, outputs), [[i, 10 * i] for i in range(5)])
    with pytest.raises(ValueError, match="output rows"):
        in_original_order(batches, outputs[:2])
    with pytest.raises(ValueError, match="batch size"):
        sorted_batches(lengths, 0)


CONTEXT = ("the story of the river is long . " * 4 + "paris is the capital city of france . "
           + "the mountain is very good and the film is fun . " * 4)


def _qa_examples():
    start = CONTEXT.index("paris")
    return [
        QAExample("q1", " what is the capital of france ?", CONTEXT, ["paris"], [start]),
        QAExample("q2", "where is paris ?", CONTEXT, ["capital city of france"], [CONTEXT.index("capital")]),
        QAExample("q3", "who ?", "one two", [], []),
    ]


def test_qa_features_positions_and_windows(tokenizer):
    examples = _qa_examples()
    features = prepare_qa_features(tokenizer, examples, max_length=32, doc_stride=8)
    n = len(features["input_ids"])
    assert n > 3 and all(len(ids) <= 32 for ids in features["input_ids"])
    assert set(features["example_index"]) == {0, 1, 2}
    for f in range(n):
        example = examples[features["example_index"][f]]
        assert features["example_id"][f] == example.id
        s, e = features["start_positions"][f], features["end_positions"][f]
        offsets = features["offset_mapping"][f]
        if s == 0:  # CLS: answer not wholly in this window
            assert e == 0
            continue
        assert example.context[offsets[s][0]:offsets[e][1]] == example.answers[0]
    inside = [f for f in range(n) if features["start_positions"][f] != 0]
    assert {features["example_index"][f] for f in inside} == {0, 1}
    assert len(inside) < n - 1  # long context: some windows miss the answer


def test_qa_round_trip(tokenizer):
    examples = _qa_examples()
    features = prepare_qa_features(tokenizer, examples, max_length=32, doc_stride=8)
    n = len(features["input_ids"])
    rng = np.random.default_rng(0)
    start_logits = [rng.normal(0, 0.1, len(ids)) for ids in features["input_ids"]]
    end_logits = [rng.normal(0, 0.1, len(ids)) for ids in features["input_ids"]]
    for f in range(n):
        if features["start_positions"][f] != 0:
            start_logits[f][features["start_positions"][f]] = 5.0
            end_logits[f][features["end_positions"][f]] = 5.0
    answers = postprocess_qa(examples, features, start_logits, end_logits)
    assert answers["q1"] == "paris" and answers["q2"] == "capital city of france"
    assert set(answers) == {"q1", "q2", "q3"}
    # padded logits (one [features, width] array) give the same answers
    width = max(len(ids) for ids in features["input_ids"])
    padded = [np.pad(x, (0, width - len(x)), constant_values=100.0) for x in start_logits]
    padded_end = [np.pad(x, (0, width - len(x)), constant_values=100.0) for x in end_logits]
    assert postprocess_qa(examples, features, np.stack(padded), np.stack(padded_end)) == answers


def test_postprocess_equals_brute_force(tokenizer):
    examples = _qa_examples()[:2]
    features = prepare_qa_features(tokenizer, examples, max_length=32, doc_stride=8)
    rng = np.random.default_rng(1)
    starts = [rng.normal(size=len(ids)) for ids in features["input_ids"]]
    ends = [rng.normal(size=len(ids)) for ids in features["input_ids"]]
    max_len = 4
    expected = {}
    for ex_index, example in enumerate(examples):
        best = (-np.inf, "")
        for f, offsets in enumerate(features["offset_mapping"]):
            if features["example_index"][f] != ex_index:
                continue
            for s in range(len(offsets)):
                for e in range(s, min(len(offsets), s + max_len)):
                    if offsets[s] is not None and offsets[e] is not None and starts[f][s] + ends[f][e] > best[0]:
                        best = (starts[f][s] + ends[f][e], example.context[offsets[s][0]:offsets[e][1]])
        expected[example.id] = best[1]
    assert postprocess_qa(examples, features, starts, ends, n_best=64, max_answer_len=max_len) == expected


def test_qa_errors(tokenizer):
    examples = _qa_examples()
    with pytest.raises(ValueError, match="question q1 has .* tokens.*no context window fits"):
        prepare_qa_features(tokenizer, examples, max_length=16, doc_stride=8)
    with pytest.raises(ValueError, match="fast tokenizer"):
        prepare_qa_features(types.SimpleNamespace(is_fast=False), examples)
    features = prepare_qa_features(tokenizer, examples, max_length=32, doc_stride=8)
    logits = [np.zeros(len(ids)) for ids in features["input_ids"]]
    with pytest.raises(ValueError, match="pass the examples the features were prepared from"):
        postprocess_qa(examples[::-1], features, logits, logits)
    with pytest.raises(ValueError, match="logit rows"):
        postprocess_qa(examples, features, logits[:-1], logits)
