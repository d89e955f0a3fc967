"""User tables (CSV, TSV, JSONL) with named text and label columns, turned into a task and its examples.

Label rule (deterministic, independent of row order): a column whose values are all integers gives
labels 0..max (names "0", "1", ...); otherwise the distinct strings, sorted, are the label names and
a label's id is its position. Non-integer numbers are refused unless `regression=True`. Load the dev
or test file with the training file's `label_names` so ids agree.
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from onnx_approx.data.glue import tsv_rows
from onnx_approx.data.tasks import ACCURACY, F1, MCC, PEARSON, SPEARMAN, Example, TaskSpec

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
_INT = re.compile(r"[+-]?\d+")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def table_task(name: str, text_fields: tuple[str, ...], label_names: tuple[str, ...] | None,
               regression: bool = False) -> TaskSpec:
    """A task for a user table: accuracy (+ F1 if binary) and MCC, or Pearson/Spearman for regression."""
    if regression:
        return TaskSpec(name, "regression", text_fields, None, (PEARSON, SPEARMAN), PEARSON)
    metrics = (ACCURACY, F1, MCC) if len(label_names) == 2 else (ACCURACY, MCC)
    return TaskSpec(name, "classification", text_fields, label_names, metrics, ACCURACY)


def load_table(path: str | Path, text_column: str, text_pair_column: str | None = None,
               label_column: str | None = "label", regression: bool = False,
               label_names: tuple[str, ...] | None = None) -> tuple[TaskSpec, list[Example]]:
    """Read a .csv (standard quoting), .tsv (quoting off, as GLUE) or .jsonl file into (task, examples).

    `label_column=None` reads an unlabeled file (labels None); its task then needs `label_names` or
    `regression`. `label_names` (from the training file) fixes the label ids; unknown labels are errors.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(f"{path}: unsupported table format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} not found")
    text_columns = (text_column,) if text_pair_column is None else (text_column, text_pair_column)
    needed = (*text_columns, *([label_column] if label_column else []))
    texts, raw_labels, sources = [], [], []
    for source, row in _rows(path, fmt):
        missing = [c for c in needed if c not in row]
        if missing:
            raise ValueError(f"{source}: missing column {missing[0]!r}; available columns: {', '.join(row)}")
        texts.append([_text(row[c], c, source) for c in text_columns])
        raw_labels.append(row[label_column] if label_column else None)
        sources.append(source)
    if not sources:
        raise ValueError(f"data file {path} has no data rows")

    if label_column is None:
        if label_names is None and not regression:
            raise ValueError(f"{path}: an unlabeled file needs the training file's label names (or regression)")
        labels = [None] * len(sources)
    elif regression:
        labels = [_score(value, source) for value, source in zip(raw_labels, sources)]
    else:
        canonical = [_class_value(value, source) for value, source in zip(raw_labels, sources)]
        if label_names is None:
            label_names = _derive_label_names(canonical, path, label_column)
        labels = [_class_id(value, label_names, source) for value, source in zip(canonical, sources)]
    task = table_task(fmt, text_columns, None if regression else label_names, regression)
    examples = [Example(t[0], t[1] if len(t) == 2 else None, y, s) for t, y, s in zip(texts, labels, sources)]
    return task, examples


def _rows(path: Path, fmt: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """("file:line", {column: value}) for every data row; the header row of CSV/TSV is line 1."""
    if fmt == "jsonl":
        yield from _jsonl_rows(path)
        return
    if fmt == "tsv":
        rows = tsv_rows(path)
    else:
        rows = _csv_rows(path)
    first = next(rows, None)
    if first is None:
        raise ValueError(f"data file {path} is empty")
    header = first[1]
    for line_no, row in rows:
        if len(row) != len(header):
            raise ValueError(f"{path}:{line_no}: expected {len(header)} fields ({', '.join(header)}), found {len(row)}")
        yield f"{path}:{line_no}", dict(zip(header, row))


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        for row in reader:
            if row:
                yield reader.line_num, row


def _jsonl_rows(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    with open(path, encoding="utf-8-sig") as fh:
        seen_any = False
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            seen_any = True
            source = f"{path}:{line_no}"
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{source}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise ValueError(f"{source}: expected a JSON object per line, got {type(row).__name__}")
            yield source, row
    if not seen_any:
        raise ValueError(f"data file {path} is empty")


def _text(value: Any, column: str, source: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{source}: column {column!r} must hold text, got {value!r}")
    return value.strip()


def _score(value: Any, source: str) -> float:
    try:
        score = float(value) if not isinstance(value, bool) else math.nan
    except (TypeError, ValueError):
        score = math.nan
    if not math.isfinite(score):
        raise ValueError(f"{source}: bad label {value!r}: expected a finite number (regression)")
    return score


def _class_value(value: Any, source: str) -> str:
    """A class label as a string; integers in canonical form so "01", " 1" and 1 agree."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"{source}: bad label {value!r}: expected an integer or a class name")
    text = str(value).strip()
    if _INT.fullmatch(text):
        return str(int(text))
    if not text:
        raise ValueError(f"{source}: empty label")
    return text


def _derive_label_names(values: list[str], path: Path, column: str) -> tuple[str, ...]:
    distinct = set(values)
    if len(distinct) < 2:
        raise ValueError(f"{path}: column {column!r} has only one distinct label {values[0]!r}; "
                         "a classification task needs at least 2")
    if all(_INT.fullmatch(v) for v in distinct):
        ids = sorted(int(v) for v in distinct)
        if ids[0] < 0:
            raise ValueError(f"{path}: column {column!r} has a negative class id {ids[0]}; ids must be 0, 1, ...")
        return tuple(str(i) for i in range(ids[-1] + 1))
    numbers = sorted(v for v in distinct if _NUMBER.fullmatch(v) and not _INT.fullmatch(v))
    if numbers:
        raise ValueError(f"{path}: column {column!r} holds non-integer numbers (e.g. {numbers[0]!r}); "
                         "pass regression=True (--regression) for scores, or use class names")
    return tuple(sorted(distinct))


def _class_id(value: str, label_names: tuple[str, ...], source: str) -> int:
    try:
        return label_names.index(value)
    except ValueError:
        raise ValueError(f"{source}: bad label {value!r}: expected one of {', '.join(label_names)}") from None
