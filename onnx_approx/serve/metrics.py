"""Prometheus metrics of one server: requests, errors, latency, batch sizes (prometheus_client).

Each app gets its own registry, so several servers (tests, benchmarks) can live in one process.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

PREFIX = "onnx_approx"
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def _size_buckets(max_batch: int) -> tuple[float, ...]:
    """Powers of two up to max_batch, and max_batch itself."""
    buckets, size = [], 1
    while size < max_batch:
        buckets.append(float(size))
        size *= 2
    return (*buckets, float(max_batch))


class ServerMetrics:
    CONTENT_TYPE = CONTENT_TYPE_LATEST

    def __init__(self, max_batch: int, queued: Callable[[], float]):
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            f"{PREFIX}_requests", "HTTP requests by endpoint and status code", ["endpoint", "status"], registry=r
        )
        self.errors = Counter(
            f"{PREFIX}_errors", "Requests answered with an error, by endpoint and reason", ["endpoint", "reason"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_request_latency_seconds", "Time from request received to response sent", ["endpoint"],
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.texts = Counter(f"{PREFIX}_texts", "Texts (or text pairs) predicted", registry=r)
        self.batch_size = Histogram(
            f"{PREFIX}_batch_size", "Items per model run", buckets=_size_buckets(max_batch), registry=r
        )
        self.batch_latency = Histogram(
            f"{PREFIX}_batch_seconds", "Tokenization + model run time per batch", buckets=LATENCY_BUCKETS, registry=r
        )
        self.queue = Gauge(f"{PREFIX}_queued_items", "Items waiting for a batch", registry=r)
        self.queue.set_function(queued)

    def observe_batch(self, size: int, seconds: float) -> None:
        self.batch_size.observe(size)
        self.batch_latency.observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
