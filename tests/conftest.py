"""Shared fixtures: tiny randomly initialized models of each supported architecture, offline."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SHARED_DATA = Path(os.environ.get("ONNX_APPROX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
TINY_ARCHITECTURES = ("bert", "distilbert", "roberta")

_WORDS = (
    "the a an movie film good bad great awful fine plot actor actress story boring fun loved hated it is was "
    "not very really quite and but or this that of in on to with for as by at from one two question answer "
    "who what when where why how paris france capital city river mountain"
).split()


def make_tiny_tokenizer(tmp_path: Path):
    """A WordPiece tokenizer over a few dozen words (all tiny models share it; ids are what matter)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *_WORDS, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
    vocab += list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")
    vocab_file = tmp_path / "vocab.txt"
    vocab_file.write_text("\n".join(dict.fromkeys(vocab)) + "\n")
    # transformers 5 ignores `vocab_file` here (every word becomes [UNK]); `vocab` takes the path.
    return BertTokenizerFast(vocab=str(vocab_file), model_max_length=64)


def tiny_config(model_type: str, num_labels: int = 2, vocab_size: int = 128):
    """A 2-layer, 4-head, hidden-32 config of `model_type` (FFN width 48, so neuron groups divide it)."""
    from transformers import BertConfig, DistilBertConfig, RobertaConfig

    if model_type == "bert":
        return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=48, max_position_embeddings=72, num_labels=num_labels)
    if model_type == "roberta":
        return RobertaConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                             intermediate_size=48, max_position_embeddings=72, num_labels=num_labels,
                             pad_token_id=0, bos_token_id=2, eos_token_id=3, type_vocab_size=1)
    if model_type == "distilbert":
        return DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4, hidden_dim=48,
                                max_position_embeddings=72, num_labels=num_labels)
    raise ValueError(model_type)


@pytest.fixture
def tiny_model_dir(tmp_path_factory):
    """Factory: tiny_model_dir(model_type, num_labels=2, head='classification'|'qa') -> saved HF folder."""
    import torch
    from transformers import AutoModelForQuestionAnswering, AutoModelForSequenceClassification

    def make(model_type: str = "bert", num_labels: int = 2, head: str = "classification", seed: int = 0) -> Path:
        out = tmp_path_factory.mktemp(f"tiny-{model_type}-{head}")
        torch.manual_seed(seed)
        config = tiny_config(model_type, num_labels=num_labels)
        cls = AutoModelForQuestionAnswering if head == "qa" else AutoModelForSequenceClassification
        model = cls.from_config(config)
        model.eval()
        model.save_pretrained(out)
        make_tiny_tokenizer(out).save_pretrained(out)
        return out

    return make


@pytest.fixture
def tiny_tokenizer(tmp_path):
    return make_tiny_tokenizer(tmp_path)


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder not found at {SHARED_DATA} (set ONNX_APPROX_DATA)")
    return SHARED_DATA
