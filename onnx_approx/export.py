"""PyTorch -> ONNX with the dynamo exporter, in the folder layout optimum's ORTModel classes load."""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import onnx
import torch
from transformers import PreTrainedModel

from onnx_approx.architectures import spec_for
from onnx_approx.io_utils import atomic_output_dir
from onnx_approx.modeling import LoadedModel, load_model

log = logging.getLogger(__name__)

DEFAULT_OPSET = 18
ONNX_FILE = "model.onnx"


def model_input_names(model: PreTrainedModel) -> list[str]:
    names = ["input_ids", "attention_mask"]
    if spec_for(model.config.model_type).uses_token_type_ids:
        names.append("token_type_ids")
    return names


def model_output_names(model: PreTrainedModel) -> list[str]:
    """`logits` for classification/regression; `start_logits`, `end_logits` for extractive QA."""
    return ["start_logits", "end_logits"] if "QuestionAnswering" in type(model).__name__ else ["logits"]


class _TupleOutputs(torch.nn.Module):
    """Returns the model's named outputs as a tuple, so the graph has exactly those outputs."""

    def __init__(self, model: PreTrainedModel, output_names: list[str]):
        super().__init__()
        self.model = model
        self.output_names = output_names

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        extra = {} if token_type_ids is None else {"token_type_ids": token_type_ids}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra, return_dict=True)
        return tuple(out[name] for name in self.output_names)


def _example_inputs(names: list[str], batch: int = 2, seq: int = 16) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 100, (batch, seq), generator=gen)
    mask = torch.ones(batch, seq, dtype=torch.long)
    mask[1, seq // 2 :] = 0  # a padded row, so the mask path is traced as data-dependent
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    return {name: inputs[name] for name in names}


def export_onnx(model: PreTrainedModel, path: str | Path, *, opset: int = DEFAULT_OPSET) -> Path:
    """Export `model` to one self-contained .onnx file with dynamic batch and sequence axes.

    Inputs: input_ids, attention_mask (+ token_type_ids where the architecture has them), int64.
    The exported nodes keep the PyTorch module path in `metadata_props`, which the graph passes use.
    """
    path = Path(path)
    model = model.eval()
    inputs = model_input_names(model)
    outputs = model_output_names(model)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    dynamic = {name: {0: batch, 1: seq} for name in inputs}
    # The exporter warns once per missing torchvision op; irrelevant for text models.
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # exporter chatter about unused axis names and deprecated treespecs
        program = torch.onnx.export(
            _TupleOutputs(model, outputs),
            (),
            kwargs=_example_inputs(inputs),
            input_names=inputs,
            output_names=outputs,
            dynamic_shapes=dynamic,
            opset_version=opset,
            dynamo=True,
            verbose=False,
        )
    program.save(str(path), external_data=False)
    onnx.checker.check_model(str(path))
    log.info("exported %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


TORCHSCRIPT_OPSET = 17


def export_onnx_torchscript(
    model: PreTrainedModel, path: str | Path, *, opset: int = TORCHSCRIPT_OPSET, eager_attention: bool = False
) -> Path:
    """Export `model` with the (deprecated) TorchScript exporter, as optimum does: opset 17, dynamic batch and
    sequence, the same inputs and outputs as `export_onnx`. ORT's `onnxruntime.transformers` optimizer fuses
    such graphs (not dynamo ones); users bring these files, so the baselines and tests need them.

    `eager_attention` exports attention as explicit MatMul/Softmax (transformers' "eager" implementation,
    restored afterwards) instead of the SDPA decomposition: the pattern ORT's optimizer fuses into Attention.
    """
    path = Path(path)
    model = model.eval()
    inputs = model_input_names(model)
    outputs = model_output_names(model)
    previous = model.config._attn_implementation
    if eager_attention:
        model.set_attn_implementation("eager")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's deprecation and tracing warnings
            torch.onnx.export(
                _TupleOutputs(model, outputs).eval(),  # a wrapper left in training mode exports dropout
                (),
                str(path),
                kwargs=_example_inputs(inputs),
                input_names=inputs,
                output_names=outputs,
                dynamic_axes={name: {0: "batch", 1: "sequence"} for name in inputs},
                opset_version=opset,
                dynamo=False,
            )
    finally:
        if eager_attention:
            model.set_attn_implementation(previous)
    log.info("exported %s with the TorchScript exporter (%.1f MB)", path, path.stat().st_size / 1e6)
    return path


TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
)


def save_model_folder_files(loaded: LoadedModel, out_dir: Path) -> None:
    """config.json and tokenizer files beside model.onnx, as optimum's ORTModel expects."""
    loaded.model.config.save_pretrained(out_dir)
    loaded.tokenizer.save_pretrained(out_dir)
    metrics = Path(loaded.source, "metrics.json")
    if metrics.is_file():
        shutil.copy2(metrics, out_dir / "metrics.json")


def export_folder(model: str | Path, out_dir: str | Path, *, overwrite: bool = False, opset: int = DEFAULT_OPSET) -> Path:
    """Export a model folder (or alias) to OUTDIR/model.onnx + config.json + tokenizer, atomically."""
    out_dir = Path(out_dir)
    loaded = load_model(model)
    with atomic_output_dir(out_dir, overwrite=overwrite) as tmp:
        export_onnx(loaded.model, tmp / ONNX_FILE, opset=opset)
        save_model_folder_files(loaded, tmp)
    return out_dir / ONNX_FILE
