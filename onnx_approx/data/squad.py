"""SQuAD v1.1 JSON files (articles -> paragraphs -> questions) as flat, checked QA examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from onnx_approx.data.tasks import QAExample

# The shared data holds only the first 11 articles of the official train set (see its README).
SQUAD_FILES = {
    "train": "squad/train-v1.1.sample-first11articles.json",
    "dev": "squad/dev-v1.1.json",
}


def squad_file(split: str, data_dir: Path) -> Path:
    if split not in SQUAD_FILES:
        raise ValueError(f"task 'squad' has no split {split!r}; its splits: {', '.join(SQUAD_FILES)}")
    path = data_dir / SQUAD_FILES[split]
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found (task 'squad', split {split!r}; data folder {data_dir})")
    return path


def load_squad(path: str | Path) -> list[QAExample]:
    """Every question of a SQuAD v1.1 file, in file order; answer offsets are checked against the context."""
    path = Path(path)
    if path.stat().st_size == 0:
        raise ValueError(f"data file {path} is empty")
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg}); is the file complete?") from None
    examples = []
    for a, article in enumerate(_field(doc, "data", path, "top level", list)):
        for p, paragraph in enumerate(_field(article, "paragraphs", path, f"data[{a}]", list)):
            where = f"data[{a}].paragraphs[{p}]"
            context = _field(paragraph, "context", path, where, str)
            for q, qa in enumerate(_field(paragraph, "qas", path, where, list)):
                examples.append(_example(qa, context, path, f"{where}.qas[{q}]"))
    if not examples:
        raise ValueError(f"data file {path} holds no questions")
    return examples


def _example(qa: Any, context: str, path: Path, where: str) -> QAExample:
    qid = _field(qa, "id", path, where, str)
    answers, starts = [], []
    for answer in _field(qa, "answers", path, where, list):
        text = _field(answer, "text", path, f"{where} (id {qid})", str)
        start = _field(answer, "answer_start", path, f"{where} (id {qid})", int)
        if context[start:start + len(text)] != text:
            raise ValueError(f"{path}: question {qid}: answer {text!r} is not at character {start} of its context")
        answers.append(text)
        starts.append(start)
    return QAExample(qid, _field(qa, "question", path, where, str), context, answers, starts)


def _field(obj: Any, key: str, path: Path, where: str, kind: type) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"{path}: {where}: missing field {key!r} (not a SQuAD v1.1 file?)")
    value = obj[key]
    if not isinstance(value, kind):
        raise ValueError(f"{path}: {where}: field {key!r} should be {kind.__name__}, got {type(value).__name__}")
    return value
