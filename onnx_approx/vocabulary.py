"""Vocabulary pruning: the tokens a task uses, and a PyTorch model that reads every other token as [UNK].

A model deployed for one task only ever sees what its tokenizer makes of that task's texts; the embedding rows
of the other tokens are dead weight (about half of MiniLM's 30522 rows for SST-2, most of its file once the
encoder is pruned and quantized). A plan keeps the ids of the tokens found in the training examples, the
special tokens always among them (`embeddings.vocab_kept`, `embeddings.special_tokens`); the graph pass
`graph_passes.prune_vocab` slices the ONNX table and remaps input_ids, `apply_vocabulary` makes a PyTorch
model compute the same: a token not kept reads [UNK]'s embedding. Inputs and tokenizer stay as they are.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from onnx_approx.data import QAExample
from onnx_approx.plan import Plan

SPECIAL_TOKENS = ("unk", "pad", "cls", "sep", "mask", "bos", "eos")
_BATCH = 2048  # texts per tokenizer call


def special_tokens(tokenizer: Any) -> dict[str, int]:
    """The tokenizer's special tokens by name ("unk", "pad", "cls", ...: those it has) -> id."""
    found = {name: getattr(tokenizer, f"{name}_token_id", None) for name in SPECIAL_TOKENS}
    found = {name: int(token) for name, token in found.items() if token is not None}
    if "unk" not in found:
        raise ValueError("the tokenizer has no unknown token: the vocabulary cannot be pruned "
                         "(tokens not kept would have nothing to read as)")
    return found


def _text_pairs(examples: Sequence[Any]) -> Iterator[tuple[str, str | None]]:
    for example in examples:
        if isinstance(example, QAExample):
            yield example.question, example.context
        else:
            yield example.text_a, example.text_b


def _token_ids(tokenizer: Any, examples: Sequence[Any]) -> Iterator[list[int]]:
    """Token ids of each example as the model is fed them (special tokens included), untruncated."""
    pairs = list(_text_pairs(examples))
    for start in range(0, len(pairs), _BATCH):
        chunk = pairs[start:start + _BATCH]
        firsts = [a for a, _ in chunk]
        seconds = [b for _, b in chunk]
        encoded = tokenizer(firsts, None if any(b is None for b in seconds) else seconds, truncation=False,
                            padding=False, return_attention_mask=False, return_token_type_ids=False, verbose=False)
        yield from encoded["input_ids"]


def task_vocabulary(tokenizer: Any, examples: Sequence[Any]) -> list[int]:
    """Sorted ids of every token the tokenizer produces on `examples` (classification or QA), special tokens
    included whether the texts use them or not."""
    kept = set(special_tokens(tokenizer).values()) | set(tokenizer.all_special_ids)
    for ids in _token_ids(tokenizer, examples):
        kept.update(ids)
    return sorted(kept)


def unknown_fraction(tokenizer: Any, examples: Sequence[Any], vocab_kept: Sequence[int]) -> float:
    """Fraction of the tokens of `examples` that a model keeping `vocab_kept` reads as [UNK] (0 when empty)."""
    kept = set(vocab_kept)
    total = outside = 0
    for ids in _token_ids(tokenizer, examples):
        total += len(ids)
        outside += sum(token not in kept for token in ids)
    return outside / total if total else 0.0


def vocabulary_fields(tokenizer: Any, examples: Sequence[Any]) -> dict[str, Any]:
    """The plan's `embeddings` fields that keep only the vocabulary of `examples`."""
    return {"vocab_kept": task_vocabulary(tokenizer, examples), "special_tokens": special_tokens(tokenizer)}


class VocabularyRemap:
    """Forward pre-hook of the word-embedding module: every id not kept becomes [UNK]'s."""

    def __init__(self, ids_read: torch.Tensor):
        self.ids_read = ids_read  # old id -> the id whose row it reads

    def __call__(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        ids = args[0]
        return (self.ids_read.to(ids.device)[ids], *args[1:])


def apply_vocabulary(model: nn.Module, plan: Plan) -> nn.Module:
    """Make `model` read every token outside `plan.vocab_kept` as [UNK] (all tokens when it is None).

    The table keeps its size (the same outputs as the sliced ONNX table, and the model stays trainable and
    savable as usual); a hook on the word-embedding module remaps the ids.
    """
    embedding = model.get_input_embeddings()
    hooks = embedding._forward_pre_hooks  # found by type, so copies of the model (deepcopy) stay independent
    for key in [k for k, hook in hooks.items() if isinstance(hook, VocabularyRemap)]:
        del hooks[key]
    if plan.vocab_kept is None:
        return model
    rows = torch.tensor(plan.vocabulary_rows(embedding.num_embeddings), dtype=torch.long)
    embedding.register_forward_pre_hook(VocabularyRemap(torch.tensor(plan.vocab_kept, dtype=torch.long)[rows]))
    return model
