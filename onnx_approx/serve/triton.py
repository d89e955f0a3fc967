"""A Triton Inference Server model repository for the ONNX Runtime backend, from an ONNX output folder.

Layout written (only `<repo>/<name>/` is replaced; other models in the repository are left alone):

    <repo>/<name>/config.pbtxt      backend "onnxruntime", input/output dims, dynamic_batching
    <repo>/<name>/labels.txt        class names, one per line (classification models)
    <repo>/<name>/1/model.onnx      the model (and its external-data files, if any)
    <repo>/<name>/<lib>.so          the sign-match custom-op library, when the model uses it and it is built

config.pbtxt is protobuf text format of Triton's `inference.ModelConfig`; it is written here by hand
because the Triton proto is not a dependency (tritonclient ships it only with gRPC).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import onnx
from onnx.external_data_helper import ExternalDataInfo, uses_external_data
from transformers import AutoConfig

from onnx_approx import runtime
from onnx_approx.io_utils import atomic_output_dir, atomic_write_text
from onnx_approx.serve.model import MODEL_FILE, OUTPUT_NAME, label_names

log = logging.getLogger(__name__)

CONFIG_FILE = "config.pbtxt"
LABELS_FILE = "labels.txt"
VERSION = "1"
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
# ONNX element type name -> Triton data type suffix, where the names differ.
_TRITON_TYPE_NAMES = {"FLOAT": "FP32", "FLOAT16": "FP16", "DOUBLE": "FP64", "BFLOAT16": "BF16"}


def triton_data_type(elem_type: int) -> str:
    """ONNX TensorProto element type -> Triton `DataType` name, e.g. INT64 -> TYPE_INT64, FLOAT -> TYPE_FP32."""
    name = onnx.TensorProto.DataType.Name(elem_type)
    return "TYPE_" + _TRITON_TYPE_NAMES.get(name, name)


def _io_entry(value: onnx.ValueInfoProto, where: str, extra: str = "") -> str:
    """One `input`/`output` entry: dims without the batch axis, -1 for every dynamic axis."""
    tensor = value.type.tensor_type
    dims = list(tensor.shape.dim)
    if not dims or dims[0].HasField("dim_value"):
        raise ValueError(
            f"{where} {value.name!r} has no dynamic first (batch) axis; Triton's dynamic batching needs one "
            "(export with a dynamic batch dimension)"
        )
    shape = ", ".join(str(d.dim_value) if d.HasField("dim_value") else "-1" for d in dims[1:])
    return (
        f'  {{\n    name: "{value.name}"\n    data_type: {triton_data_type(tensor.elem_type)}\n'
        f"    dims: [ {shape} ]\n{extra}  }}"
    )


def triton_config(
    model: onnx.ModelProto,
    name: str,
    *,
    max_batch: int = 32,
    max_queue_delay_us: int = 5000,
    labels_file: str | None = None,
    op_library: str | None = None,
) -> str:
    """The config.pbtxt text for `model` (graph inputs and outputs as they are in the model)."""
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    inputs = [_io_entry(v, "input") for v in model.graph.input]
    outputs = []
    for v in model.graph.output:
        extra = f'    label_filename: "{labels_file}"\n' if labels_file and v.name == OUTPUT_NAME else ""
        outputs.append(_io_entry(v, "output", extra))
    lines = [
        f'name: "{name}"',
        'backend: "onnxruntime"',
        f"max_batch_size: {max_batch}",
        "input [\n" + ",\n".join(inputs) + "\n]",
        "output [\n" + ",\n".join(outputs) + "\n]",
        f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}\n}}",
    ]
    if op_library:
        lines.append(f'model_operations {{\n  op_library_filename: "{op_library}"\n}}')
    return "\n".join(lines) + "\n"


def _external_data_files(model: onnx.ModelProto) -> list[str]:
    """Relative locations of the model's external-data files (none for a self-contained model)."""
    locations = {
        ExternalDataInfo(t).location for t in model.graph.initializer if uses_external_data(t)
    }
    return sorted(locations)


def export_triton(
    folder: str | Path,
    repo: str | Path,
    *,
    name: str | None = None,
    max_batch: int = 32,
    max_wait_ms: float = 5.0,
    op_library_path: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write `<repo>/<name>/` for Triton's onnxruntime backend from an ONNX output folder; returns it.

    `op_library_path`: where the Triton server will find the custom-op library (e.g. inside its
    container); by default the absolute path of the copy placed in the model folder.
    """
    folder = Path(folder)
    model_path = folder / MODEL_FILE
    if not model_path.is_file():
        raise FileNotFoundError(f"{model_path} not found: pass an output folder of `onnx-approx export` or `passes`")
    name = name or re.sub(r"[^A-Za-z0-9_.-]", "_", folder.resolve().name)
    if not _NAME_RE.match(name):
        raise ValueError(f"model name {name!r}: use letters, digits, '_', '.', '-' only")
    model = onnx.load(str(model_path), load_external_data=False)
    if OUTPUT_NAME not in [o.name for o in model.graph.output]:
        raise ValueError(f"{model_path}: no output named '{OUTPUT_NAME}'; export a classification/regression model")
    labels = label_names(AutoConfig.from_pretrained(folder)) if (folder / "config.json").is_file() else None
    target = Path(repo) / name

    with atomic_output_dir(target, overwrite=overwrite) as tmp:
        version_dir = tmp / VERSION
        version_dir.mkdir()
        shutil.copy2(model_path, version_dir / MODEL_FILE)
        for location in _external_data_files(model):
            (version_dir / location).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / location, version_dir / location)
        op_library = None
        if runtime.uses_custom_ops(model_path):
            op_library = _place_op_library(tmp, target, op_library_path)
        if labels:
            atomic_write_text(tmp / LABELS_FILE, "\n".join(labels) + "\n")
        config = triton_config(
            model,
            name,
            max_batch=max_batch,
            max_queue_delay_us=round(max_wait_ms * 1000),
            labels_file=LABELS_FILE if labels else None,
            op_library=op_library,
        )
        atomic_write_text(tmp / CONFIG_FILE, config)
    log.info("wrote Triton model %s (max batch %d%s)", target, max_batch, ", custom-op library" if op_library else "")
    return target


def _place_op_library(tmp: Path, target: Path, op_library_path: str | None) -> str | None:
    """Copy the built custom-op library into the model folder; the path Triton should load it from."""
    from onnx_approx import ops

    built = ops.library_path()
    if built is None:
        log.warning(
            "the model uses the sign-match custom op but its library is not built (make ops); Triton will run "
            "the model's portable function instead"
        )
        return None
    built = Path(built)
    shutil.copy2(built, tmp / built.name)
    return op_library_path or str((target / built.name).resolve())
