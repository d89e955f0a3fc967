"""Where a job's examples come from: a registered task in the data folder, or the user's own table files."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from onnx_approx.data import TaskSpec, get_task, load_split, load_table, resolve_data_dir, subsample


@dataclass
class TaskData:
    """A task and the way to load its splits; `load` returns Example/QAExample lists."""

    task: TaskSpec
    data_dir: Path | None = None  # registered tasks
    files: dict[str, Path] = field(default_factory=dict)  # table tasks: split -> file
    columns: tuple[str, str | None, str] = ("sentence", None, "label")
    regression: bool = False

    @classmethod
    def registered(cls, name: str, data_dir: str | Path | None = None) -> "TaskData":
        task = get_task(name)
        return cls(task=task, data_dir=resolve_data_dir(data_dir))

    @classmethod
    def table(
        cls,
        files: dict[str, str | Path],
        text_column: str,
        text_pair_column: str | None = None,
        label_column: str = "label",
        regression: bool = False,
    ) -> "TaskData":
        """A task read from CSV/TSV/JSONL files; label names come from the train file, so ids agree."""
        if "train" not in files:
            raise ValueError("a table task needs a training file (--train-file)")
        columns = (text_column, text_pair_column, label_column)
        task, _ = load_table(files["train"], *columns, regression=regression)
        return cls(task=task, files={k: Path(v) for k, v in files.items()}, columns=columns, regression=regression)

    def load(self, split: str, max_samples: int | None = None, seed: int = 0) -> list:
        if not self.files:
            return load_split(self.task, split, self.data_dir, max_samples=max_samples, seed=seed)
        if split not in self.files:
            raise ValueError(f"no {split} file given for this table task (--{split}-file)")
        _, examples = load_table(
            self.files[split], *self.columns, regression=self.regression, label_names=self.task.label_names
        )
        return subsample(examples, max_samples, seed)
