"""GLUE-style TSV files: a declarative layout per task, and one reader that copes with their quirks.

Quirks handled (see shared/data/README.md): quoting is off (many fields start with a literal `"`),
MRPC starts with a UTF-8 BOM, CoLA and the AxFormer RTE/WNLI val files have no header, the CoLA
test file does have one, SST-2 sentences end in a space, CoLA dev has no final newline, and test
files carry no labels.
"""

from __future__ import annotations

import csv
import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from onnx_approx.data.tasks import Example, TaskSpec

# Splits whose files may lack the label column: their examples get label None.
UNLABELED_SPLITS = ("test",)


@dataclass(frozen=True)
class TsvLayout:
    """Where a task's files are and which columns hold text and label.

    A file's first row is its header iff it names every text column; otherwise the file is read by
    position with `columns` (tasks without `columns` must have headers).
    """

    folder: str
    splits: dict[str, tuple[str, ...]]  # split -> files in `folder`, concatenated in this order
    text_columns: tuple[str, ...]
    label_column: str
    label_values: tuple[str, ...] | None  # spelling in the file, in label-id order; None: float score
    columns: tuple[str, ...] | None = None


_RTE_COLUMNS = ("index", "sentence1", "sentence2", "label")
_COLA_COLUMNS = ("source", "label", "annotation", "sentence")
_TRAIN_DEV = {"train": ("train.tsv",), "dev": ("dev.tsv",)}
_AXFORMER = {"train": ("train.tsv",), "val": ("val.tsv",), "dev": ("dev.tsv",), "test": ("test.tsv",)}

LAYOUTS: dict[str, TsvLayout] = {
    "sst2": TsvLayout("glue/SST-2", _TRAIN_DEV, ("sentence",), "label", ("0", "1")),
    "mrpc": TsvLayout("glue/MRPC", _TRAIN_DEV, ("#1 String", "#2 String"), "Quality", ("0", "1")),
    "cola": TsvLayout("glue/CoLA", _TRAIN_DEV, ("sentence",), "label", ("0", "1"), _COLA_COLUMNS),
    "rte": TsvLayout("glue/RTE", _TRAIN_DEV, ("sentence1", "sentence2"), "label",
                     ("entailment", "not_entailment"), _RTE_COLUMNS),
    "stsb": TsvLayout("glue/STS-B", _TRAIN_DEV, ("sentence1", "sentence2"), "score", None),
    "qnli": TsvLayout("glue/QNLI", _TRAIN_DEV, ("question", "sentence"), "label", ("entailment", "not_entailment")),
    # The shared data has no glue/WNLI: the AxFormer train + val files are exactly GLUE's WNLI train set.
    "wnli": TsvLayout("axformer-splits/WNLI", {"train": ("train.tsv", "val.tsv"), "dev": ("dev.tsv",),
                                               "test": ("test.tsv",)},
                      ("sentence1", "sentence2"), "label", ("0", "1"), _RTE_COLUMNS),
    "cola-axformer": TsvLayout("axformer-splits/CoLA", _AXFORMER, ("sentence",), "label", ("0", "1"), _COLA_COLUMNS),
    "rte-axformer": TsvLayout("axformer-splits/RTE", _AXFORMER, ("sentence1", "sentence2"), "label",
                              ("entailment", "not_entailment"), _RTE_COLUMNS),
    "wnli-axformer": TsvLayout("axformer-splits/WNLI", _AXFORMER, ("sentence1", "sentence2"), "label",
                               ("0", "1"), _RTE_COLUMNS),
}


def split_files(task: TaskSpec, split: str, data_dir: Path) -> list[Path]:
    """The files of `split` for a TSV task, checked to exist."""
    layout = LAYOUTS[task.name]
    if split not in layout.splits:
        raise ValueError(f"task {task.name!r} has no split {split!r}; its splits: {', '.join(layout.splits)}")
    paths = [data_dir / layout.folder / name for name in layout.splits[split]]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"data file {path} not found (task {task.name!r}, split {split!r}; "
                                    f"data folder {data_dir})")
    return paths


def load_glue_split(task: TaskSpec, split: str, data_dir: Path) -> list[Example]:
    """All examples of one split of a GLUE-style task, in file order."""
    layout = LAYOUTS[task.name]
    labeled = split not in UNLABELED_SPLITS
    return [ex for path in split_files(task, split, data_dir) for ex in read_tsv(path, layout, labeled)]


def tsv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    """(line number, fields) of a TSV file read with quoting off and any BOM removed; blank lines skipped."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE), start=1):
            if row:
                yield line_no, row


def read_tsv(path: Path, layout: TsvLayout, labeled: bool = True) -> list[Example]:
    """Examples of one TSV file; label None when `labeled` is False and the file has no label column."""
    rows = tsv_rows(path)
    first = next(rows, None)
    if first is None:
        raise ValueError(f"data file {path} is empty")
    header = first[1]
    if all(col in header for col in layout.text_columns):
        columns, data_rows = header, rows
    elif layout.columns is not None:
        columns, data_rows = list(layout.columns), itertools.chain([first], rows)
    else:
        raise ValueError(f"{path}:1: missing column {layout.text_columns[0]!r} in the header; "
                         f"the header has: {', '.join(header)}")
    missing = [c for c in (*layout.text_columns, *([layout.label_column] if labeled else [])) if c not in columns]
    if missing:
        raise ValueError(f"{path}: missing column {missing[0]!r}; the file has columns: {', '.join(columns)}")
    text_idx = [columns.index(c) for c in layout.text_columns]
    label_idx = columns.index(layout.label_column) if layout.label_column in columns else None
    examples = []
    for line_no, row in data_rows:
        source = f"{path}:{line_no}"
        if len(row) != len(columns):
            raise ValueError(f"{source}: expected {len(columns)} tab-separated fields "
                             f"({', '.join(columns)}), found {len(row)}")
        texts = [row[i].strip() for i in text_idx]
        label = None if label_idx is None else parse_label(row[label_idx], layout.label_values, source)
        examples.append(Example(texts[0], texts[1] if len(texts) == 2 else None, label, source))
    if not examples:
        raise ValueError(f"data file {path} has no data rows")
    return examples


def parse_label(value: str, label_values: tuple[str, ...] | None, source: str) -> int | float:
    """Label id of a class label spelled as in `label_values`, or the float of a regression score."""
    value = value.strip()
    if label_values is None:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not math.isfinite(score):
            raise ValueError(f"{source}: bad label {value!r}: expected a finite number")
        return score
    try:
        return label_values.index(value)
    except ValueError:
        raise ValueError(f"{source}: bad label {value!r}: expected one of {', '.join(label_values)}") from None
