"""Locate the compiled custom-op library and register it into ONNX Runtime sessions, safely.

A model that uses SignMatchAttention also carries the op as a FunctionProto of standard ops, so a
session runs it without the library, only slower; the library is therefore optional, and every way
of not having it (not built, built for a newer ORT API than the runtime, fails to load) ends in a
logged message and `False`, never an error.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

import onnxruntime as ort

log = logging.getLogger(__name__)

LIBRARY_ENV = "ONNX_APPROX_OPS_LIBRARY"
BUILT_LIBRARY = Path(__file__).resolve().parent / "build" / "libonnx_approx_ops.so"


def library_path() -> Path | None:
    """The custom-op library: $ONNX_APPROX_OPS_LIBRARY if set, else the one `make ops` built; None if absent."""
    override = os.environ.get(LIBRARY_ENV)
    path = Path(override) if override else BUILT_LIBRARY
    return path if path.is_file() else None


def runtime_api_version() -> int:
    """The ORT C API version of the installed onnxruntime (ORT 1.x provides API version x)."""
    major, minor = (int(part) for part in ort.__version__.split(".")[:2])
    return minor if major == 1 else 10**6


@functools.lru_cache(maxsize=None)
def _library_info(path: Path) -> tuple[int, str]:
    lib = ctypes.CDLL(str(path))
    lib.onnx_approx_kernel_isa.restype = ctypes.c_char_p
    return int(lib.onnx_approx_ort_api_version()), lib.onnx_approx_kernel_isa().decode()


def library_api_version(path: Path) -> int:
    """The ORT C API version the library at `path` was built against."""
    return _library_info(Path(path))[0]


def kernel_isa(path: Path) -> str:
    """Which compiled kernel variant the library runs on this CPU: generic, avx2, avx512 or avx512icl."""
    return _library_info(Path(path))[1]


@functools.lru_cache(maxsize=None)
def _usable(path: Path) -> bool:
    """Checked once per process, so a mismatch is logged once, not per session."""
    try:
        built_for = library_api_version(path)
    except (OSError, AttributeError) as exc:
        log.warning("custom-op library %s cannot be loaded (%s); models run the SignMatchAttention fallback", path, exc)
        return False
    if built_for > runtime_api_version():
        log.warning(
            "custom-op library %s was built for ONNX Runtime API %d but onnxruntime %s provides API %d: "
            "not registered, models run the SignMatchAttention FunctionProto fallback; rebuild with `make ops`",
            path, built_for, ort.__version__, runtime_api_version(),
        )
        return False
    return True


def register_library(options: ort.SessionOptions) -> bool:
    """Register the custom-op library into `options`; False (and the FunctionProto runs) when it can't be."""
    path = library_path()
    if path is None:
        log.debug("custom-op library not built; SignMatchAttention runs as its FunctionProto")
        return False
    if not _usable(path):
        return False
    try:
        options.register_custom_ops_library(str(path))
    except Exception as exc:  # onnxruntime raises its own Fail/RuntimeError types
        log.warning("custom-op library %s was not registered (%s); the FunctionProto fallback runs", path, exc)
        return False
    return True
