import copy

import pytest
import torch

from onnx_approx.approximate import apply_plan_torch
from onnx_approx.data import Example, QAExample
from onnx_approx.plan import Plan, PlanError
from onnx_approx.task_data import TaskData
from onnx_approx.vocabulary import (apply_vocabulary, special_tokens, task_vocabulary, unknown_fraction,
                                    vocabulary_fields)

pytestmark = pytest.mark.usefixtures("single_thread")

EXAMPLES = [Example("the movie was great", None, 1, "t:1"), Example("boring plot , bad actor", None, 0, "t:2")]


def ids_of(tokenizer, *texts: str) -> set[int]:
    """Token ids of the texts, tokenized one at a time (without special tokens)."""
    return {i for text in texts for i in tokenizer.convert_tokens_to_ids(tokenizer.tokenize(text))}


class TestTaskVocabulary:
    def test_every_token_of_the_texts_and_the_special_tokens(self, tiny_tokenizer):
        vocab = task_vocabulary(tiny_tokenizer, EXAMPLES)
        expected = ids_of(tiny_tokenizer, "the movie was great", "boring plot , bad actor") | {0, 1, 2, 3, 4}
        assert vocab == sorted(expected)
        assert special_tokens(tiny_tokenizer) == {"pad": 0, "unk": 1, "cls": 2, "sep": 3, "mask": 4}

    def test_text_pairs_and_questions_count_both_texts(self, tiny_tokenizer):
        pair = [Example("paris is a city", "france has a river", 1, "t:1")]
        qa = [QAExample("q1", "who loved it", "the actress loved it", ["the actress"], [0])]
        special = {0, 1, 2, 3, 4}
        pair_ids = ids_of(tiny_tokenizer, "paris is a city", "france has a river")
        assert set(task_vocabulary(tiny_tokenizer, pair)) == pair_ids | special
        assert set(task_vocabulary(tiny_tokenizer, qa)) == ids_of(tiny_tokenizer, "who loved it the actress") | special

    def test_unknown_fraction_counts_tokens_outside(self, tiny_tokenizer):
        vocab = task_vocabulary(tiny_tokenizer, EXAMPLES[:1])
        assert unknown_fraction(tiny_tokenizer, EXAMPLES[:1], vocab) == 0.0
        # "boring plot , bad actor" + [CLS] [SEP]: 5 of 7 tokens were never seen
        assert unknown_fraction(tiny_tokenizer, EXAMPLES[1:], vocab) == pytest.approx(5 / 7)

    def test_fields_make_a_valid_plan(self, tiny_tokenizer):
        plan = Plan.identity("bert", {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48})
        plan.embeddings.update(vocabulary_fields(tiny_tokenizer, EXAMPLES))
        plan.validate()
        assert plan.unk_token_id == 1

    def test_sst2_training_sentences(self, shared_data, tiny_tokenizer):
        examples = TaskData.registered("sst2", shared_data).load("train", max_samples=200)
        vocab = set(task_vocabulary(tiny_tokenizer, examples))
        for example in examples:
            assert set(tiny_tokenizer(example.text_a)["input_ids"]) <= vocab


def _plan(model, kept: list[int]) -> Plan:
    dims = {"num_layers": 2, "num_heads": 4, "head_dim": 8, "intermediate_size": 48}
    plan = Plan.identity(model.config.model_type, dims)
    plan.embeddings = {"precision": "fp32", "vocab_kept": kept, "special_tokens": {"unk": 1, "pad": 0}}
    return plan


class TestApplyVocabulary:
    KEPT = [0, 1, 2, 3, 4, 7, 11, 30]

    @pytest.fixture
    def model_and_ids(self, lively_model):
        model, _, _ = lively_model("bert")
        ids = torch.tensor([[2, 7, 8, 11, 50, 3], [2, 30, 31, 3, 0, 0]])
        return model, ids

    def test_tokens_not_kept_read_as_unk(self, model_and_ids):
        model, ids = model_and_ids
        original = copy.deepcopy(model)
        apply_vocabulary(model, _plan(model, self.KEPT))
        unk_ids = torch.where(torch.isin(ids, torch.tensor(self.KEPT)), ids, torch.ones_like(ids))
        with torch.no_grad():
            got, expected, before = model(ids).logits, original(unk_ids).logits, original(ids).logits
        torch.testing.assert_close(got, expected, rtol=0, atol=1e-6)
        assert (got - before).abs().max() > 1e-3

    def test_a_plan_without_it_removes_the_remap_and_copies_stay_apart(self, model_and_ids):
        model, ids = model_and_ids
        with torch.no_grad():
            before = model(ids).logits
        apply_vocabulary(model, _plan(model, self.KEPT))
        copied = copy.deepcopy(model)
        apply_vocabulary(model, _plan(model, None))
        with torch.no_grad():
            torch.testing.assert_close(model(ids).logits, before, rtol=0, atol=0)
            assert (copied(ids).logits - before).abs().max() > 1e-3

    @pytest.mark.parametrize("mode", ["prune", "gate"])
    def test_apply_plan_torch_includes_it(self, model_and_ids, mode):
        model, ids = model_and_ids
        expected = apply_vocabulary(copy.deepcopy(model), _plan(model, self.KEPT))
        got = apply_plan_torch(copy.deepcopy(model), _plan(model, self.KEPT), mode=mode)
        with torch.no_grad():
            torch.testing.assert_close(got(ids).logits, expected(ids).logits, rtol=0, atol=1e-6)

    def test_token_beyond_the_table_names_the_field(self, model_and_ids):
        model, _ = model_and_ids
        with pytest.raises(PlanError, match=r"embeddings\.vocab_kept: token id 500 out of range 0\.\.127"):
            apply_vocabulary(model, _plan(model, [0, 1, 500]))
