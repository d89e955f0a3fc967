"""Model inputs from examples: tokenization without padding, per-batch (dynamic) padding, length-grouped
batching, and SQuAD-style QA featurization with answer post-processing.

Padding happens per batch, so a batch of short sentences costs short-sentence time. Training batches
group similar lengths (shuffled, seeded); inference batches are sorted by length and their outputs
put back in the original order with `in_original_order`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from onnx_approx.data.tasks import Example, QAExample

logger = logging.getLogger(__name__)

# Per-example scalars that a training step needs next to the inputs; other keys (offsets, ids) stay out.
TARGETS = ("labels", "start_positions", "end_positions")


def _max_length(tokenizer: Any, max_length: int) -> int:
    """`max_length`, capped at what the tokenizer says the model accepts (a huge sentinel when unknown)."""
    return min(max_length, int(getattr(tokenizer, "model_max_length", max_length) or max_length))


def encode_texts(tokenizer: Any, texts_a: Sequence[str], texts_b: Sequence[str] | None = None,
                 max_length: int = 128) -> dict[str, list[list[int]]]:
    """Token ids (and token type ids where the tokenizer makes them) per text or text pair, unpadded.

    Longer sequences are truncated (longest text of a pair first) with one warning per call that says
    how many were cut.
    """
    max_length = _max_length(tokenizer, max_length)
    texts_a = list(texts_a)
    texts_b = None if texts_b is None else list(texts_b)
    if not texts_a:
        raise ValueError("no texts to encode")
    if texts_b is not None and len(texts_b) != len(texts_a):
        raise ValueError(f"{len(texts_a)} first texts but {len(texts_b)} second texts")
    # Tokenize untruncated first so truncation can be counted; only the long ones are tokenized again.
    encoded = tokenizer(texts_a, texts_b, truncation=False, padding=False, return_attention_mask=False,
                        verbose=False)
    features = {key: list(encoded[key]) for key in encoded.keys()}
    too_long = [i for i, ids in enumerate(features["input_ids"]) if len(ids) > max_length]
    if too_long:
        cut = tokenizer([texts_a[i] for i in too_long], None if texts_b is None else [texts_b[i] for i in too_long],
                        truncation=True, max_length=max_length, padding=False, return_attention_mask=False)
        for key, rows in features.items():
            for j, i in enumerate(too_long):
                rows[i] = cut[key][j]
        logger.warning("%d of %d sequences were longer than %d tokens and were truncated",
                       len(too_long), len(texts_a), max_length)
    return features


def encode_examples(tokenizer: Any, examples: Sequence[Example], max_length: int = 128) -> dict[str, list]:
    """`encode_texts` of the examples' texts, plus their "labels" when every example has one."""
    texts_b = [ex.text_b for ex in examples] if examples and examples[0].text_b is not None else None
    features: dict[str, list] = encode_texts(tokenizer, [ex.text_a for ex in examples], texts_b, max_length)
    if all(ex.label is not None for ex in examples):
        features["labels"] = [ex.label for ex in examples]
    return features


def collate(features: Mapping[str, Sequence] | Sequence[Mapping[str, Any]], pad: Any, with_token_type_ids: bool,
            return_tensors: str = "pt", indices: Sequence[int] | None = None) -> dict[str, Any]:
    """Pad one batch to its longest sequence: input_ids, attention_mask, token_type_ids (int64), plus any
    of labels / start_positions / end_positions present (int64, or float32 for regression labels).

    `features` is columnar ({key: [per example]}, as `encode_texts` returns, optionally restricted to
    `indices`) or a list of per-example dicts (as a DataLoader hands a collate_fn). `pad` is the
    tokenizer or its pad token id. Written with NumPy rather than `tokenizer.pad`, which is a slow
    per-example Python path for fast tokenizers and needs a tokenizer where the ONNX path has only ids.
    """
    if return_tensors not in ("pt", "np"):
        raise ValueError(f"return_tensors must be 'pt' or 'np', got {return_tensors!r}")
    if not isinstance(features, Mapping):
        features = {key: [row[key] for row in features] for key in features[0]} if features else {}
    rows = range(len(features.get("input_ids", ()))) if indices is None else indices
    ids = [features["input_ids"][i] for i in rows]
    if not ids:
        raise ValueError("cannot collate an empty batch")
    pad_id = pad if isinstance(pad, int) else pad.pad_token_id
    width = max(len(seq) for seq in ids)
    batch = {
        "input_ids": np.full((len(ids), width), pad_id, dtype=np.int64),
        "attention_mask": np.zeros((len(ids), width), dtype=np.int64),
    }
    if with_token_type_ids:
        batch["token_type_ids"] = np.zeros((len(ids), width), dtype=np.int64)
    for row, (i, seq) in enumerate(zip(rows, ids)):
        batch["input_ids"][row, : len(seq)] = seq
        batch["attention_mask"][row, : len(seq)] = 1
        if with_token_type_ids and "token_type_ids" in features:
            batch["token_type_ids"][row, : len(seq)] = features["token_type_ids"][i]
    for key in TARGETS:
        if key in features:
            values = [features[key][i] for i in rows]
            is_float = any(isinstance(v, float) for v in values)
            batch[key] = np.asarray(values, dtype=np.float32 if is_float else np.int64)
    if return_tensors == "pt":
        import torch

        batch = {key: torch.from_numpy(value) for key, value in batch.items()}
    return batch


def length_grouped_batches(lengths: Sequence[int], batch_size: int, seed: int = 0, shuffle: bool = True,
                           mega_batch_mult: int = 50) -> list[list[int]]:
    """Training batches of similar lengths: a seeded permutation is cut into mega-batches of
    `mega_batch_mult * batch_size`, each sorted by length and cut into batches, and the batch order is
    shuffled. `shuffle=False` keeps the data order (mega-batches of consecutive examples, in order).

    Own version of transformers' `get_length_grouped_indices`, which returns one flat, torch-permuted
    list with the longest example moved first and no shuffling of the batch order.
    """
    _check_batch_size(batch_size)
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    order = rng.permutation(lengths.size) if shuffle else np.arange(lengths.size)
    mega = mega_batch_mult * batch_size
    batches = []
    for start in range(0, lengths.size, mega):
        chunk = order[start:start + mega]
        chunk = chunk[np.argsort(-lengths[chunk], kind="stable")]
        batches += [chunk[i:i + batch_size].tolist() for i in range(0, chunk.size, batch_size)]
    if shuffle:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def sorted_batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Inference batches with the least padding: indices sorted by length, longest first (ties by index)."""
    _check_batch_size(batch_size)
    order = np.argsort(-np.asarray(lengths), kind="stable")
    return [order[i:i + batch_size].tolist() for i in range(0, order.size, batch_size)]


def in_original_order(batches: Sequence[Sequence[int]], outputs: Sequence[np.ndarray]) -> np.ndarray:
    """Stack per-batch outputs (first axis = batch rows) back into the examples' original order."""
    index = np.concatenate([np.asarray(b, dtype=np.int64) for b in batches])
    stacked = np.concatenate([np.asarray(o) for o in outputs])
    if stacked.shape[0] != index.size:
        raise ValueError(f"{stacked.shape[0]} output rows for {index.size} batched examples")
    result = np.empty_like(stacked)
    result[index] = stacked
    return result


def _check_batch_size(batch_size: int) -> None:
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")


def prepare_qa_features(tokenizer: Any, examples: Sequence[QAExample], max_length: int = 384,
                        doc_stride: int = 128) -> dict[str, list]:
    """Question + context windows for extractive QA (a fast tokenizer is needed for character offsets).

    A long context becomes several features that overlap by `doc_stride` tokens. Each feature has the
    model inputs, `example_index` / `example_id`, `offset_mapping` (character span per token, None
    outside the context) and `start_positions` / `end_positions` of the first gold answer: the CLS token
    where the answer is not wholly inside the window (or the example has none).
    """
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError("QA featurization needs a fast tokenizer (character offsets); got "
                         f"{type(tokenizer).__name__}")
    max_length = _max_length(tokenizer, max_length)
    questions = [ex.question.lstrip() for ex in examples]
    _check_context_room(tokenizer, examples, questions, max_length, doc_stride)
    encoded = tokenizer(questions, [ex.context for ex in examples],
                        truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True, padding=False)
    features: dict[str, list] = {key: list(encoded[key]) for key in encoded.keys()
                                 if key not in ("offset_mapping", "overflow_to_sample_mapping")}
    features.update(example_index=[], example_id=[], offset_mapping=[], start_positions=[], end_positions=[])
    for f, example_index in enumerate(encoded["overflow_to_sample_mapping"]):
        example = examples[example_index]
        sequence_ids = encoded.sequence_ids(f)
        offsets = [span if sid == 1 else None for span, sid in zip(encoded["offset_mapping"][f], sequence_ids)]
        start, end = _answer_tokens(example, offsets, encoded["input_ids"][f].index(tokenizer.cls_token_id))
        features["example_index"].append(example_index)
        features["example_id"].append(example.id)
        features["offset_mapping"].append(offsets)
        features["start_positions"].append(start)
        features["end_positions"].append(end)
    return features


def _check_context_room(tokenizer: Any, examples: Sequence[QAExample], questions: list[str], max_length: int,
                        doc_stride: int) -> None:
    """Every window must hold more context tokens than the overlap (the tokenizer panics otherwise)."""
    if doc_stride < 0:
        raise ValueError(f"doc_stride must not be negative, got {doc_stride}")
    question_lengths = [len(ids) for ids in tokenizer(questions, add_special_tokens=False)["input_ids"]]
    specials = tokenizer.num_special_tokens_to_add(pair=True)
    for example, length in zip(examples, question_lengths):
        if max_length - specials - length <= doc_stride:
            raise ValueError(
                f"question {example.id} has {length} tokens: with max_length {max_length} and doc_stride "
                f"{doc_stride} no context window fits; raise max_length or lower doc_stride")


def _answer_tokens(example: QAExample, offsets: list[tuple[int, int] | None], cls_index: int) -> tuple[int, int]:
    """Token indices of the first gold answer in this window, or (cls, cls) when it is not wholly inside."""
    context_tokens = [i for i, span in enumerate(offsets) if span is not None]
    if not example.answers or not context_tokens:
        return cls_index, cls_index
    start_char = example.answer_starts[0]
    end_char = start_char + len(example.answers[0])
    if offsets[context_tokens[0]][0] > start_char or offsets[context_tokens[-1]][1] < end_char:
        return cls_index, cls_index
    start = next(i for i in context_tokens if offsets[i][1] > start_char)
    end = next(i for i in reversed(context_tokens) if offsets[i][0] < end_char)
    return start, end


def postprocess_qa(examples: Sequence[QAExample], features: Mapping[str, Sequence], start_logits: Sequence,
                   end_logits: Sequence, n_best: int = 20, max_answer_len: int = 30) -> dict[str, str]:
    """{question id: answer text}: for every example, the best-scoring span (start + end logit) over all
    its features, among the `n_best` top starts and ends, inside the context, at most `max_answer_len`
    tokens long. Logits are per feature, padded ([features, length]) or ragged (a list of rows)."""
    if len(start_logits) != len(features["offset_mapping"]) or len(end_logits) != len(start_logits):
        raise ValueError(f"{len(start_logits)} start / {len(end_logits)} end logit rows for "
                         f"{len(features['offset_mapping'])} features")
    best: dict[int, tuple[float, str]] = {}
    for f, offsets in enumerate(features["offset_mapping"]):
        example_index = features["example_index"][f]
        example = examples[example_index]
        if example.id != features["example_id"][f]:
            raise ValueError(f"feature {f} belongs to question {features['example_id'][f]}, not to "
                             f"{example.id}: pass the examples the features were prepared from")
        starts = np.asarray(start_logits[f], dtype=np.float64)[: len(offsets)]
        ends = np.asarray(end_logits[f], dtype=np.float64)[: len(offsets)]
        in_context = np.array([span is not None for span in offsets])
        top_s, top_e = np.meshgrid(np.argsort(-starts, kind="stable")[:n_best],
                                   np.argsort(-ends, kind="stable")[:n_best], indexing="ij")
        valid = in_context[top_s] & in_context[top_e] & (top_e >= top_s) & (top_e - top_s < max_answer_len)
        scores = np.where(valid, starts[top_s] + ends[top_e], -np.inf)
        k = np.unravel_index(np.argmax(scores), scores.shape)
        if scores[k] == -np.inf or (example_index in best and scores[k] <= best[example_index][0]):
            continue
        best[example_index] = (float(scores[k]), example.context[offsets[top_s[k]][0]: offsets[top_e[k]][1]])
    return {ex.id: best[i][1] if i in best else "" for i, ex in enumerate(examples)}
