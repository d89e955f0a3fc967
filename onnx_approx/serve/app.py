"""The HTTP app: POST /predict, GET /health, /metadata, /metrics, on Starlette.

Why Starlette (served by uvicorn): it is the small ASGI toolkit FastAPI is built on, well kept, with no
validation framework to pull in; the request schema here is two fields, checked by hand with messages
that name the offending item. Tokenization and the model run happen in the batcher's worker thread,
so the event loop only parses JSON and routes.

Errors are JSON `{"error": message}`: malformed JSON or a bad schema -> 400, too many or too long
texts (or an oversized body) -> 413, a body that is not `application/json` -> 415, shutting down -> 503,
a failed model run -> 500 (the server keeps serving).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onnx_approx.serve.batcher import BatcherClosedError, DynamicBatcher
from onnx_approx.serve.metrics import ServerMetrics
from onnx_approx.serve.settings import ServeSettings

if TYPE_CHECKING:
    from onnx_approx.serve.model import Item, ServedModel

log = logging.getLogger(__name__)

ENDPOINTS = ("/predict", "/health", "/metadata", "/metrics")


class RequestError(Exception):
    """A request the server refuses: HTTP status, a metrics reason, and a message for the client."""

    def __init__(self, status: int, reason: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.headers = headers


def parse_items(payload: Any, settings: ServeSettings) -> list[Item]:
    """`{"texts": [str, ...]}` or `{"pairs": [[str, str], ...]}` -> items; RequestError naming the bad field."""
    if not isinstance(payload, dict):
        raise RequestError(
            400, "bad_request", 'body must be a JSON object: {"texts": [...]} or {"pairs": [[a, b], ...]}'
        )
    unknown = sorted(set(payload) - {"texts", "pairs"})
    if unknown:
        raise RequestError(400, "bad_request", f"unknown field(s) {unknown}; expected 'texts' or 'pairs'")
    if len(payload) != 1:
        raise RequestError(400, "bad_request", "give exactly one of 'texts' or 'pairs'")
    field, values = next(iter(payload.items()))
    if not isinstance(values, list):
        raise RequestError(400, "bad_request", f"'{field}' must be a list")
    if not values:
        raise RequestError(400, "empty_input", f"'{field}' is empty")
    if len(values) > settings.max_texts:
        raise RequestError(
            413, "too_many_texts", f"'{field}' has {len(values)} items; this server takes at most {settings.max_texts}"
        )
    items: list[Item] = []
    for i, value in enumerate(values):
        if field == "texts":
            parts = (value,)
        elif isinstance(value, list) and len(value) == 2:
            parts = tuple(value)
        else:
            raise RequestError(400, "bad_request", f"pairs[{i}] must be a list of two strings")
        for part in parts:
            if not isinstance(part, str):
                raise RequestError(400, "bad_request", f"{field}[{i}] must be text, got {type(part).__name__}")
            if not part.strip():
                raise RequestError(400, "empty_input", f"{field}[{i}] is empty")
            if len(part) > settings.max_text_chars:
                raise RequestError(
                    413,
                    "text_too_long",
                    f"{field}[{i}] has {len(part)} characters; this server takes at most {settings.max_text_chars}",
                )
        items.append(parts[0] if field == "texts" else parts)
    return items


async def _read_body(request: Request, limit: int) -> bytes:
    # Own limit instead of Starlette's `max_body_size`: that one answers in plain text, outside the
    # JSON error format and the error metrics.
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestError(413, "body_too_large", f"request body of {declared} bytes is over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, "body_too_large", f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


class _MetricsMiddleware:
    """Counts every HTTP request by endpoint and status, and times it (pure ASGI: sees 404s and crashes too)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        status = 500  # what the client gets if the app raises before answering
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)


def create_app(model: ServedModel, settings: ServeSettings | None = None) -> Starlette:
    """A Starlette app serving `model`; the batcher starts and drains with the app's lifespan."""
    settings = settings or ServeSettings()
    batcher: DynamicBatcher[Item, dict[str, Any]] = DynamicBatcher(
        model.predict, max_batch=settings.max_batch, max_wait_s=settings.max_wait_ms / 1000.0
    )
    metrics = ServerMetrics(settings.max_batch, queued=lambda: batcher.queued)
    batcher.on_batch = metrics.observe_batch
    metadata = {**model.metadata(), "serving": asdict(settings)}

    def error(endpoint: str, exc: RequestError) -> JSONResponse:
        metrics.errors.labels(endpoint, exc.reason).inc()
        return JSONResponse({"error": str(exc)}, status_code=exc.status, headers=exc.headers)

    async def predict(request: Request) -> Response:
        try:
            media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if media_type != "application/json":
                raise RequestError(
                    415, "unsupported_media_type", f"send JSON with Content-Type: application/json (got {media_type!r})"
                )
            body = await _read_body(request, settings.max_body_bytes)
            try:
                payload = json.loads(body)
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RequestError(400, "malformed_json", f"body is not valid JSON: {exc}") from None
            items = parse_items(payload, settings)
            try:
                predictions = await batcher.submit(items)
            except BatcherClosedError as exc:
                raise RequestError(503, "shutting_down", str(exc)) from None
            except Exception as exc:  # the model run failed; logged by the batcher
                raise RequestError(500, "internal", f"prediction failed: {type(exc).__name__}: {exc}") from None
        except RequestError as exc:
            return error("/predict", exc)
        metrics.texts.inc(len(items))
        return JSONResponse({"model": model.name, "predictions": predictions})

    async def health(request: Request) -> Response:
        if not batcher.running:
            return JSONResponse({"status": "shutting down"}, status_code=503)
        return JSONResponse({"status": "ok", "model": model.name, "queued": batcher.queued})

    async def get_metadata(request: Request) -> Response:
        return JSONResponse(metadata)

    async def get_metrics(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=ServerMetrics.CONTENT_TYPE)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        endpoint = request.url.path if request.url.path in ENDPOINTS else "other"
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error(endpoint, RequestError(exc.status_code, reason, exc.detail, headers=exc.headers))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await batcher.start()
        log.info(
            "serving %s: max batch %d, max wait %.1f ms", model.name, settings.max_batch, settings.max_wait_ms
        )
        try:
            yield
        finally:
            await batcher.stop()
            log.info("batcher drained; stopped")

    app = Starlette(
        routes=[
            Route("/predict", predict, methods=["POST"]),
            Route("/health", health, methods=["GET"]),
            Route("/metadata", get_metadata, methods=["GET"]),
            Route("/metrics", get_metrics, methods=["GET"]),
        ],
        middleware=[Middleware(_MetricsMiddleware, metrics=metrics)],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
    app.state.batcher = batcher
    app.state.metrics = metrics
    return app
