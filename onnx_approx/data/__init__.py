"""Task registry and data loaders: GLUE TSVs, AxFormer splits, SQuAD v1.1 JSON, user CSV/TSV/JSONL tables.

    from onnx_approx.data import get_task, load_split, carve_validation
    task = get_task("SST-2")
    train = load_split(task, "train", max_samples=2000, seed=0)
    rest, val = carve_validation(train, fraction=0.1, seed=0)
"""

from onnx_approx.data.splits import ENV_VAR, carve_validation, load_split, resolve_data_dir, subsample
from onnx_approx.data.squad import load_squad
from onnx_approx.data.tabular import load_table, table_task
from onnx_approx.data.tasks import TASKS, Example, QAExample, TaskSpec, get_task

__all__ = [
    "ENV_VAR",
    "TASKS",
    "Example",
    "QAExample",
    "TaskSpec",
    "carve_validation",
    "get_task",
    "load_split",
    "load_squad",
    "load_table",
    "resolve_data_dir",
    "subsample",
    "table_task",
]
