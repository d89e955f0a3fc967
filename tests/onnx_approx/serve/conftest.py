"""Fixtures for the serving tests: tiny models exported once per session, and an in-thread server."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def _exported() -> dict:
    return {}


@pytest.fixture
def exported_model(tiny_model_dir, tmp_path_factory, _exported):
    """Factory: exported_model(model_type, num_labels) -> (HF folder, ONNX output folder), exported once per session."""
    from onnx_approx.export import export_folder

    def make(model_type: str = "bert", num_labels: int = 2) -> tuple[Path, Path]:
        key = (model_type, num_labels)
        if key not in _exported:
            hf_dir = tiny_model_dir(model_type, num_labels=num_labels)
            out = tmp_path_factory.mktemp(f"onnx-{model_type}-{num_labels}") / "out"
            export_folder(hf_dir, out)
            _exported[key] = (hf_dir, out)
        return _exported[key]

    return make


@contextlib.contextmanager
def serving(app, timeout_s: float = 30.0) -> Iterator[str]:
    """Run `app` with uvicorn in a thread on a free loopback port; yields the base URL; stops gracefully."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=10))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()


@pytest.fixture
def serve_app():
    """The `serving(app)` context manager: with serve_app(app) as url: ..."""
    return serving
