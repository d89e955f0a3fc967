"""Serve an ONNX output folder over HTTP with dynamic batching (Starlette on uvicorn).

Example:
  onnx-approx serve out/sst2-fast --port 8000 --max-batch 32 --max-wait-ms 5
  curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
       -d '{"texts": ["a gripping, funny film", "a dull mess"]}'
  curl -s localhost:8000/predict -H 'Content-Type: application/json' \\
       -d '{"pairs": [["A man is playing.", "Someone plays."]]}'

Endpoints: POST /predict ({"texts": [...]} or {"pairs": [[a, b], ...]} -> labels and softmax scores,
or the value for regression), GET /health, GET /metadata (model, task, plan summary, versions),
GET /metrics (Prometheus text). Requests arriving within --max-wait-ms of each other run as one batch
of up to --max-batch texts, padded to that batch's longest text. Ctrl-C or SIGTERM stops accepting
connections, finishes the requests in flight, then exits.

--device cuda uses ONNX Runtime's CUDA execution provider (install onnxruntime-gpu); without it the
server says so and runs on CPU.
"""

from __future__ import annotations

import argparse
import logging
import signal

NAME = "serve"
HELP = "serve an ONNX output folder over HTTP (dynamic batching, Prometheus metrics)"

log = logging.getLogger(__name__)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from onnx_approx.serve.settings import ServeSettings

    defaults = ServeSettings()
    parser.add_argument("outdir", help="output folder of `onnx-approx export` or `onnx-approx passes`")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000, help="port; 0 picks a free one (default: %(default)s)")
    parser.add_argument(
        "--max-batch", type=int, default=defaults.max_batch,
        help="texts per model run; 1 = no batching (default: %(default)s)",
    )
    parser.add_argument(
        "--max-wait-ms", type=float, default=defaults.max_wait_ms,
        help="how long the first queued text waits for others to join its batch (default: %(default)s)",
    )
    parser.add_argument("--threads", type=int, default=None, help="ONNX Runtime intra-op threads (default: all cores)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="execution device (default: %(default)s)"
    )
    parser.add_argument(
        "--max-texts", type=int, default=defaults.max_texts, help="texts per request (default: %(default)s)"
    )
    parser.add_argument(
        "--max-text-chars", type=int, default=defaults.max_text_chars,
        help="characters per text; longer texts are refused with 413 (default: %(default)s)",
    )
    parser.add_argument(
        "--graceful-timeout", type=float, default=30.0,
        help="seconds in-flight requests get to finish on shutdown (default: %(default)s)",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")


def run(args: argparse.Namespace) -> int:
    import uvicorn

    from onnx_approx.serve.app import create_app
    from onnx_approx.serve.model import ServedModel
    from onnx_approx.serve.settings import ServeSettings

    settings = ServeSettings(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_texts=args.max_texts,
        max_text_chars=args.max_text_chars,
    )
    model = ServedModel(args.outdir, threads=args.threads, device=args.device)
    config = uvicorn.Config(
        create_app(model, settings),
        host=args.host,
        port=args.port,
        log_config=None,  # keep the CLI's logging setup,
        log_level="info",  # but show uvicorn's own lines (the address it listens on)
        access_log=args.access_log,
        timeout_graceful_shutdown=args.graceful_timeout,
    )
    # uvicorn re-raises the SIGTERM it handled once its graceful shutdown is done; by then it is a normal
    # stop, so it should end with status 0 instead of killing the process.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: log.info("stopped by SIGTERM"))
    try:
        uvicorn.Server(config).run()
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0
