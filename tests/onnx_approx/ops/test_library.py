"""Finding and registering the custom-op library; every way of not having a usable one falls back."""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path

import onnxruntime as ort
import pytest

from onnx_approx.ops import library, library_path, register_library


@pytest.fixture
def fresh_checks():
    """The once-per-process library checks, forgotten before and after the test."""
    library._usable.cache_clear()
    yield
    library._usable.cache_clear()


class TestLibraryPath:
    def test_environment_variable_names_the_library(self, monkeypatch, tmp_path):
        fake = tmp_path / "libother.so"
        fake.write_bytes(b"")
        monkeypatch.setenv(library.LIBRARY_ENV, str(fake))
        assert library_path() == fake

    def test_missing_library_is_none_and_not_registered(self, monkeypatch, tmp_path, fresh_checks):
        monkeypatch.setenv(library.LIBRARY_ENV, str(tmp_path / "absent.so"))
        assert library_path() is None
        assert register_library(ort.SessionOptions()) is False


class TestRegisterLibrary:
    def test_registers_when_built(self, built_library, fresh_checks):
        assert register_library(ort.SessionOptions()) is True
        assert library.kernel_isa(built_library) in ("generic", "avx2", "avx512", "avx512icl")

    def test_runtime_older_than_library_falls_back(self, built_library, monkeypatch, caplog, fresh_checks):
        monkeypatch.setattr(library, "runtime_api_version", lambda: library.library_api_version(built_library) - 1)
        with caplog.at_level(logging.WARNING, logger=library.__name__):
            assert register_library(ort.SessionOptions()) is False
        assert "was built for ONNX Runtime API" in caplog.text and "fallback" in caplog.text

    def test_unloadable_file_falls_back(self, monkeypatch, tmp_path, caplog, fresh_checks):
        broken = tmp_path / "libbroken.so"
        broken.write_bytes(b"not a shared library")
        monkeypatch.setenv(library.LIBRARY_ENV, str(broken))
        with caplog.at_level(logging.WARNING, logger=library.__name__):
            assert register_library(ort.SessionOptions()) is False
        assert "cannot be loaded" in caplog.text


class _OrtApiBase(ctypes.Structure):
    _fields_ = [("GetApi", ctypes.CFUNCTYPE(ctypes.c_void_p, ctypes.c_uint32)),
                ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_void_p))]


_OLD_VERSION = ctypes.create_string_buffer(b"1.0.0-old")  # outlives the callback that returns it


def test_library_refuses_an_older_runtime_api_with_a_message(built_library):
    """RegisterCustomOps itself, handed an API table that stops below the version it was built for."""
    runtime = ctypes.CDLL(str(next(Path(ort.__file__).parent.glob("capi/libonnxruntime.so*"))))
    runtime.OrtGetApiBase.restype = ctypes.POINTER(_OrtApiBase)  # the real table, for its GetApi
    real = runtime.OrtGetApiBase().contents
    built_for = library.library_api_version(built_library)

    older = _OrtApiBase(
        GetApi=_OrtApiBase._fields_[0][1](lambda version: real.GetApi(version) if version < built_for else None),
        GetVersionString=_OrtApiBase._fields_[1][1](lambda: ctypes.addressof(_OLD_VERSION)),
    )
    lib = ctypes.CDLL(str(built_library))
    lib.RegisterCustomOps.restype = ctypes.c_void_p
    lib.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.POINTER(_OrtApiBase)]
    status = lib.RegisterCustomOps(None, ctypes.byref(older))
    assert status, "an older runtime must be refused with an error status"
    api = ctypes.cast(real.GetApi(1), ctypes.POINTER(ctypes.c_void_p))
    get_error_message = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(api[2])  # OrtApi::GetErrorMessage
    message = get_error_message(status).decode()
    assert f"built for ONNX Runtime API {built_for}" in message and "1.0.0-old" in message
