"""Fixtures for the significance, pruning and search tests: tiny models whose layers matter, tiny data."""

from __future__ import annotations

import random

import pytest
import torch

WORDS = "the a movie film good bad great awful fine plot actor story boring fun loved hated it is was not very".split()


@pytest.fixture(name="synthetic_sentences")
def synthetic_sentences_fixture():
    """The `synthetic_sentences` function, for tests that write their own data files."""
    return synthetic_sentences


def synthetic_sentences(n: int, seed: int = 0) -> list[tuple[str, int]]:
    """(sentence, label) pairs of 2..14 words; label 1 iff "good"/"great"/"fun"/"loved" outnumber the negatives."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        words = [rng.choice(WORDS) for _ in range(rng.randint(2, 14))]
        score = sum(w in ("good", "great", "fun", "loved") for w in words) - sum(
            w in ("bad", "awful", "boring", "hated") for w in words)
        rows.append((" ".join(words), int(score > 0)))
    return rows


def liven(model: torch.nn.Module) -> torch.nn.Module:
    """Scale every Linear weight 10x: with the default 0.02 init the residual path drowns the layers out,
    and a test could not tell a removed head from a kept one."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.mul_(10)
    return model


@pytest.fixture
def single_thread():
    """One torch thread: tiny models gain nothing from more, and on a shared machine spinning OpenMP
    threads make each tiny op wait for a core (measured: a 2-layer search ran 6x slower with 2 threads)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def lively_model(tiny_model_dir):
    """Factory: lively_model(model_type) -> (model with 10x weights, tokenizer, its saved folder)."""
    from onnx_approx.modeling import load_model

    def make(model_type: str = "bert"):
        folder = tiny_model_dir(model_type)
        loaded = load_model(folder)
        liven(loaded.model)
        loaded.model.save_pretrained(folder)
        return loaded.model.eval(), loaded.tokenizer, folder

    return make


@pytest.fixture
def tiny_valset():
    """Factory: tiny_valset(tokenizer, model_type, n=20, labeler=None) -> ValidationSet of synthetic SST-2-like
    sentences. With `labeler` (a model), labels are its own predictions: baseline accuracy 1, so any change
    that matters shows in the metric."""
    from onnx_approx.data import Example, get_task
    from onnx_approx.evaluate import TorchEngine, evaluate_engine
    from onnx_approx.significance.validation import ValidationSet

    def make(tokenizer, model_type: str = "bert", n: int = 20, batch_size: int = 6, labeler=None):
        task, with_types = get_task("sst2"), model_type == "bert"
        examples = [Example(text, None, label, f"synthetic:{i}") for i, (text, label) in enumerate(synthetic_sentences(n))]
        if labeler is not None:
            predicted = evaluate_engine(TorchEngine(labeler, with_types), tokenizer, task, examples).predictions
            examples = [Example(ex.text_a, None, int(y), ex.source) for ex, y in zip(examples, predicted)]
        return ValidationSet.build(tokenizer, task, examples, uses_token_type_ids=with_types, batch_size=batch_size)

    return make
