"""Fixtures for the significance, pruning, search and pipeline tests: tiny models whose layers matter, tiny data,
tiny recipes."""

from __future__ import annotations

import random
from pathlib import Path

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


@pytest.fixture
def recipe_workspace(tiny_model_dir, tmp_path):
    """Factory: write_recipe(name, goal="faster", **changes) -> recipe file for a tiny BERT on a table task
    (train/dev TSVs of 60 / 24 synthetic sentences in tmp_path) with budgets of seconds, running into
    tmp_path/runs/<name>. `changes` maps "section.key" (or a top-level key) to a value."""
    import json

    model = tiny_model_dir("bert")
    for split, n, seed in (("train", 60, 0), ("dev", 24, 1)):
        rows = synthetic_sentences(n, seed)
        (tmp_path / f"{split}.tsv").write_text("sentence\tlabel\n" + "".join(f"{t}\t{y}\n" for t, y in rows))

    def write_recipe(name: str, goal: str = "faster", **changes) -> Path:
        sections = {
            "": {"model": str(model), "task": "table", "goal": goal, "seed": 1, "out": str(tmp_path / "runs" / name)},
            "data": {"train_file": str(tmp_path / "train.tsv"), "dev_file": str(tmp_path / "dev.tsv")},
            "bounds": {"max_rel_drop": 0.2} if goal in ("faster", "smaller") else {},
            "finetune": {"epochs": 2, "batch_size": 8, "lr": 1e-3},
            "analysis": {"val_fraction": 0.4},
            "search": {"patience": 2} if goal != "none" else {},
            "recovery": {"epochs": 1, "batch_size": 8} if goal != "none" else {},
            "bench": {"shapes": ["1x16"], "rounds": 2, "baselines": ["torch", "ort-int8"], "calibration_samples": 8},
        }
        for key, value in changes.items():
            section, _, field = key.rpartition(".")
            sections[section][field] = value
        lines = []
        for section, values in sections.items():
            if section and values:
                lines.append(f"[{section}]")
            lines += [f"{k} = {json.dumps(v)}" for k, v in values.items()]
        path = tmp_path / f"{name}.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return write_recipe


# -- the side-by-side benchmark (onnx_approx.bench, `onnx-approx bench`) --------------------------------
@pytest.fixture(scope="session")
def _bench_cache() -> dict:
    return {}


@pytest.fixture
def calibration_examples(synthetic_sentences):
    """Twenty SST-2-like training examples."""
    from onnx_approx.data import Example

    return [Example(text, None, label, f"synthetic:{i}") for i, (text, label) in enumerate(synthetic_sentences(20))]


@pytest.fixture
def bench_reference(tiny_model_dir, _bench_cache) -> Path:
    """A tiny BERT classifier folder, made once per session. Its Linear weights are 3x the initialization: the
    layers then matter, yet activations stay in the range int8 handles (at 10x, as `lively_model`, dynamic
    int8 flips a quarter of the predictions of a random tiny model)."""
    if "reference" not in _bench_cache:
        import torch
        from transformers import AutoModelForSequenceClassification

        folder = tiny_model_dir("bert")
        model = AutoModelForSequenceClassification.from_pretrained(folder)
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, torch.nn.Linear):
                    module.weight.mul_(3)
        model.save_pretrained(folder)
        _bench_cache["reference"] = folder
    return _bench_cache["reference"]


@pytest.fixture
def sentence_batch(bench_reference, synthetic_sentences):
    """64 synthetic sentences (other than the calibration ones) tokenized by the reference's tokenizer."""
    from transformers import AutoTokenizer

    from onnx_approx.features import collate, encode_texts

    tokenizer = AutoTokenizer.from_pretrained(bench_reference)
    features = encode_texts(tokenizer, [text for text, _ in synthetic_sentences(64, seed=1)])
    batch = collate(features, tokenizer.pad_token_id, True, return_tensors="np")
    return {k: batch[k] for k in ("input_ids", "attention_mask", "token_type_ids")}


@pytest.fixture
def built_baselines(bench_reference, calibration_examples, tmp_path_factory, _bench_cache):
    """(reference folder, work folder) with every baseline built there once per session."""
    if "work" not in _bench_cache:
        from onnx_approx.bench import BASELINES, build_baselines

        work = tmp_path_factory.mktemp("bench-work")
        build_baselines(bench_reference, work, BASELINES, calibration_examples, threads=1)
        _bench_cache["work"] = work
    return bench_reference, _bench_cache["work"]
