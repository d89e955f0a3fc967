"""ONNX Runtime sessions configured the way this project measures and serves them."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import onnxruntime as ort

from graph_passes.sign_match_function import DOMAIN

log = logging.getLogger(__name__)


def uses_custom_ops(model_path: str | Path) -> bool:
    """Whether the model imports the project's custom-op domain (reads the graph, not the weights)."""
    model = onnx.load(str(model_path), load_external_data=False)
    return any(op.domain == DOMAIN for op in model.opset_import)


def session_options(threads: int | None = None, *, spinning: bool = False) -> ort.SessionOptions:
    """Full graph optimization; no spinning, so several engines in one process don't steal each other's cores."""
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return opts


def select_providers(device: str) -> list[str]:
    """Execution providers for `device` ("cpu" or "cuda"); CUDA falls back to CPU with a warning."""
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device != "cuda":
        raise ValueError(f"unknown device {device!r}; use 'cpu' or 'cuda'")
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        log.warning(
            "device 'cuda' requested but this onnxruntime has no CUDAExecutionProvider (available: %s); "
            "running on CPU. Install onnxruntime-gpu for GPU execution.",
            ", ".join(available),
        )
        return ["CPUExecutionProvider"]
    return ["CUDAExecutionProvider", "CPUExecutionProvider"]


def make_session(
    model_path: str | Path, threads: int | None = None, device: str = "cpu", *, spinning: bool = False,
    profile_prefix: str | Path | None = None,
) -> ort.InferenceSession:
    """An InferenceSession; registers the compiled sign-match kernel when the model needs it and it is built
    (otherwise ORT inlines the model-local function of the same op). With `profile_prefix`, ORT's profiler
    records every run into a trace file starting with it (`end_profiling()` returns its path)."""
    opts = session_options(threads, spinning=spinning)
    if profile_prefix is not None:
        opts.enable_profiling = True
        opts.profile_file_prefix = str(profile_prefix)
    providers = select_providers(device)
    if uses_custom_ops(model_path) and providers[0] == "CPUExecutionProvider":
        from onnx_approx import ops

        if not ops.register_library(opts):
            log.info("sign-match kernel not available: using the model's portable function")
    return ort.InferenceSession(str(model_path), sess_options=opts, providers=providers)
