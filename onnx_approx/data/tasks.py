"""Task registry: what each task's examples hold, its labels and the metrics it reports.

Where the files of a task lie and how they are spelled is the loaders' business (glue.py, squad.py,
tabular.py); this module only says what a task *is*, so models, metrics and the search share one truth.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

KINDS = ("classification", "regression", "qa")

# Metric names as reported by `onnx_approx.metrics.compute_metrics`.
ACCURACY = "accuracy"
F1 = "f1"
MCC = "matthews_correlation"
PEARSON = "pearson"
SPEARMAN = "spearman"
EXACT_MATCH = "exact_match"


@dataclass(frozen=True)
class TaskSpec:
    """One task: its input fields, labels (None for regression and QA) and metrics, main one first-class."""

    name: str
    kind: str
    text_fields: tuple[str, ...]
    label_names: tuple[str, ...] | None
    metrics: tuple[str, ...]
    main_metric: str
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not 1 <= len(self.text_fields) <= 2:
            raise ValueError(f"task {self.name!r}: needs 1 or 2 text fields, got {self.text_fields}")
        if (self.kind == "classification") != (self.label_names is not None):
            raise ValueError(f"task {self.name!r}: label_names are required for classification and only there")
        if self.kind == "classification" and len(self.label_names) < 2:
            raise ValueError(f"task {self.name!r}: a classification task needs at least 2 labels")
        if self.main_metric not in self.metrics:
            raise ValueError(f"task {self.name!r}: main metric {self.main_metric!r} is not in {self.metrics}")

    @property
    def num_labels(self) -> int:
        """Width of the model's output: the label count, 1 for regression, 2 (start/end) for QA."""
        if self.kind == "classification":
            return len(self.label_names)
        return 1 if self.kind == "regression" else 2


@dataclass(frozen=True)
class Example:
    """One classification/regression example; `source` is "file:line", for error messages."""

    text_a: str
    text_b: str | None
    label: int | float | None
    source: str


@dataclass(frozen=True)
class QAExample:
    """One extractive-QA question (SQuAD v1.1): gold answers with their character offsets in `context`."""

    id: str
    question: str
    context: str
    answers: list[str]
    answer_starts: list[int]


_CLASSIFICATION_METRICS = (ACCURACY, F1, MCC)
_ENTAILMENT = ("entailment", "not_entailment")

_BASE_TASKS = (
    TaskSpec("sst2", "classification", ("sentence",), ("negative", "positive"), (ACCURACY,), ACCURACY,
             "GLUE SST-2: sentiment of movie-review phrases"),
    TaskSpec("mrpc", "classification", ("sentence1", "sentence2"), ("not_equivalent", "equivalent"),
             (F1, ACCURACY), F1, "GLUE MRPC: are the two sentences paraphrases"),
    TaskSpec("cola", "classification", ("sentence",), ("unacceptable", "acceptable"), (MCC,), MCC,
             "GLUE CoLA: is the sentence grammatical"),
    TaskSpec("rte", "classification", ("sentence1", "sentence2"), _ENTAILMENT, (ACCURACY,), ACCURACY,
             "GLUE RTE: does sentence1 entail sentence2"),
    TaskSpec("stsb", "regression", ("sentence1", "sentence2"), None, (PEARSON, SPEARMAN), PEARSON,
             "GLUE STS-B: similarity score 0-5"),
    TaskSpec("qnli", "classification", ("question", "sentence"), _ENTAILMENT, (ACCURACY,), ACCURACY,
             "GLUE QNLI: does the sentence answer the question (dev only in the shared data)"),
    TaskSpec("wnli", "classification", ("sentence1", "sentence2"), ("not_entailment", "entailment"),
             (ACCURACY,), ACCURACY, "GLUE WNLI: pronoun resolution as entailment"),
    TaskSpec("squad", "qa", ("question", "context"), None, (EXACT_MATCH, F1), F1,
             "SQuAD v1.1: extractive question answering"),
)


def _axformer(base: TaskSpec) -> TaskSpec:
    return dataclasses.replace(
        base, name=f"{base.name}-axformer",
        description=f"{base.description}; AxFormer splits: train / val (held out of GLUE train) / dev / test")


TASKS: dict[str, TaskSpec] = {t.name: t for t in _BASE_TASKS}
TASKS.update({t.name: t for t in (_axformer(TASKS[n]) for n in ("cola", "rte", "wnli"))})

# Spellings users type, mapped to registry names (lower-cased, '-' and '_' removed before lookup).
_ALIASES = {"squadv1": "squad", "squad11": "squad", "squadv11": "squad", "stsbenchmark": "stsb"}


def _key(name: str) -> str:
    return name.strip().lower().replace("-", "").replace("_", "").replace(".", "")


_LOOKUP = {_key(name): name for name in TASKS} | {key: name for key, name in _ALIASES.items()}


def get_task(task: TaskSpec | str) -> TaskSpec:
    """The registry entry for `task` ("SST-2", "sst2", "cola-axformer", ...); a TaskSpec passes through."""
    if isinstance(task, TaskSpec):
        return task
    name = _LOOKUP.get(_key(task))
    if name is None:
        raise ValueError(
            f"unknown task {task!r}; known tasks: {', '.join(TASKS)}"
            "; your own CSV/TSV/JSONL files are read as a table (load_table; CLI: --task table --train-file ...)")
    return TASKS[name]
