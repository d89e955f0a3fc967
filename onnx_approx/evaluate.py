"""Evaluate a PyTorch model or an ONNX model on a task split through one metric code path."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from onnx_approx.data import TaskSpec
from onnx_approx.dataset import EncodedDataset, encode_dataset
from onnx_approx.features import in_original_order, postprocess_qa, sorted_batches
from onnx_approx.metrics import compute_metrics

log = logging.getLogger(__name__)


TOKEN_OUTPUTS = {"start_logits", "end_logits"}  # one value per token: batches differ in width


class Engine(Protocol):
    """Runs a padded int64 batch and returns the model's named outputs as NumPy arrays."""

    name: str
    uses_token_type_ids: bool

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...


class TorchEngine:
    def __init__(self, model: Any, uses_token_type_ids: bool, name: str = "pytorch"):
        self.model = model.eval()
        self.uses_token_type_ids = uses_token_type_ids
        self.name = name

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import torch

        with torch.inference_mode():
            out = self.model(**{k: torch.from_numpy(v) for k, v in batch.items()}, return_dict=True)
        return {k: v.float().numpy() for k, v in out.items() if k.endswith("logits")}


class OrtEngine:
    def __init__(self, session: Any, name: str = "onnxruntime"):
        self.session = session
        self.input_names = [i.name for i in session.get_inputs()]
        self.output_names = [o.name for o in session.get_outputs()]
        self.uses_token_type_ids = "token_type_ids" in self.input_names
        self.name = name

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.session.run(self.output_names, {name: batch[name] for name in self.input_names})
        return dict(zip(self.output_names, outputs))


@dataclass
class EvalResult:
    task: str
    engine: str
    metrics: dict[str, float]
    main_metric: str
    predictions: Any  # label ids, regression values, or {question id: answer text}
    outputs: dict[str, np.ndarray] = field(repr=False, default_factory=dict)  # per feature, input order

    @property
    def main_value(self) -> float:
        return self.metrics[self.main_metric]


def run_engine(engine: Engine, data: EncodedDataset, batch_size: int = 64, desc: str | None = None) -> dict[str, np.ndarray]:
    """Outputs for every feature of `data`, in order; batches are sorted by length to minimise padding.

    Per-token outputs (QA start/end logits) are right-padded with -inf to the longest feature.
    """
    chunks: dict[str, list[np.ndarray]] = {}
    batches = sorted_batches(data.lengths, batch_size)
    for indices in tqdm(batches, desc=desc or f"predict ({engine.name})", unit="batch", leave=False, dynamic_ncols=True):
        batch = data.collate(indices, with_token_type_ids=engine.uses_token_type_ids, with_labels=False, return_tensors="np")
        for name, value in engine(batch).items():
            chunks.setdefault(name, []).append(value)
    width = max(data.lengths, default=0)
    for name in TOKEN_OUTPUTS.intersection(chunks):
        chunks[name] = [np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-np.inf) for p in chunks[name]]
    return {name: in_original_order(batches, parts) for name, parts in chunks.items()}


def predictions_from_outputs(task: TaskSpec, data: EncodedDataset, outputs: dict[str, np.ndarray], examples: list) -> Any:
    if task.kind == "qa":
        return postprocess_qa(examples, data.qa_features, outputs["start_logits"], outputs["end_logits"])
    logits = outputs["logits"]
    if task.kind == "regression":
        return logits[:, 0].astype(np.float64)
    return logits.argmax(axis=-1)


def references_of(task: TaskSpec, examples: list) -> Any:
    if task.kind == "qa":
        return {ex.id: ex.answers for ex in examples}
    return np.asarray([ex.label for ex in examples])


def evaluate_engine(
    engine: Engine,
    tokenizer: PreTrainedTokenizerBase,
    task: TaskSpec,
    examples: list,
    *,
    max_seq_len: int = 128,
    batch_size: int = 64,
    data: EncodedDataset | None = None,
) -> EvalResult:
    """Metrics of `engine` on `examples`: the same encoding, batching and scoring for every engine."""
    data = data or encode_dataset(tokenizer, task, examples, max_seq_len)
    outputs = run_engine(engine, data, batch_size)
    predictions = predictions_from_outputs(task, data, outputs, examples)
    metrics = compute_metrics(task, predictions, references_of(task, examples))
    return EvalResult(task.name, engine.name, metrics, task.main_metric, predictions, outputs)


def is_onnx_path(path: Path) -> bool:
    return path.suffix == ".onnx" or (path.is_dir() and (path / "model.onnx").is_file())


def open_engine(
    model: str | Path, task: TaskSpec, *, plan: str | Path | None = None, threads: int | None = None
) -> tuple[Engine, PreTrainedTokenizerBase]:
    """An engine and tokenizer for a PyTorch folder/alias, an ONNX folder, or an .onnx file."""
    path = Path(model)
    if is_onnx_path(path):
        if plan is not None:
            raise ValueError("--plan applies to PyTorch models; an ONNX model already has its plan applied (see `passes`)")
        from onnx_approx.bench.engines import onnx_file_of  # local: the bench builds on this module
        from onnx_approx.runtime import make_session

        onnx_file = onnx_file_of(path)
        folder = onnx_file.parent
        if not (folder / "tokenizer_config.json").is_file():
            raise FileNotFoundError(f"no tokenizer files beside {onnx_file}; use a folder written by `onnx-approx export`")
        return OrtEngine(make_session(onnx_file, threads=threads)), AutoTokenizer.from_pretrained(folder)

    import torch

    from onnx_approx.modeling import load_model

    if threads:
        torch.set_num_threads(threads)
    loaded = load_model(model, task)
    net = loaded.model
    if plan is not None:
        from onnx_approx.approximate import apply_plan_torch
        from onnx_approx.plan import Plan

        net = apply_plan_torch(net, Plan.load(plan))
    return TorchEngine(net, loaded.uses_token_type_ids), loaded.tokenizer
