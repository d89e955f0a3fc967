"""Loopback load test of `onnx-approx serve`: many concurrent clients, bounded in count and time.

`run_load` drives a running server; `compare_offline` checks every answer against the same model run
directly; `main` is the benchmark: it starts two servers side by side (dynamic batching, batch size 1),
sends the same load to each in alternating rounds, and prints throughput and latency percentiles.

Example (the SST-2 dev sentences as request texts):
  tail -n +2 data/glue/SST-2/dev.tsv | cut -f1 > /tmp/texts.txt
  python -m onnx_approx.serve.loadtest out/sst2 --texts /tmp/texts.txt --clients 64 --requests 50

Only loopback addresses are used: the server binds 127.0.0.1 and the clients talk to it there.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

log = logging.getLogger(__name__)

_LISTENING = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


@dataclass
class LoadResult:
    """What the clients saw: one latency per successful request, every error, every answer."""

    clients: int
    requests_per_client: int
    wall_s: float = 0.0
    latencies_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    answers: list[tuple[int, list[dict[str, Any]]]] = field(default_factory=list)  # (payload index, predictions)

    @property
    def completed(self) -> int:
        return len(self.latencies_s)

    def add(self, other: "LoadResult") -> None:
        """Fold in another run (a later round) against the same server."""
        self.requests_per_client += other.requests_per_client
        self.wall_s += other.wall_s
        self.latencies_s += other.latencies_s
        self.errors += other.errors
        self.answers += other.answers

    def summary(self) -> dict[str, float]:
        lat = np.asarray(self.latencies_s) * 1000.0 if self.latencies_s else np.zeros(1)
        return {
            "requests": float(self.completed),
            "errors": float(len(self.errors)),
            "throughput_rps": self.completed / self.wall_s if self.wall_s else 0.0,
            "p50_ms": float(np.percentile(lat, 50)),
            "p99_ms": float(np.percentile(lat, 99)),
        }


async def run_load(
    base_url: str,
    payloads: Sequence[dict[str, Any]],
    *,
    clients: int = 64,
    requests_per_client: int = 50,
    timeout_s: float = 300.0,
    offset: int = 0,
) -> LoadResult:
    """`clients` concurrent clients each POST `requests_per_client` payloads (round-robin from `offset`) to /predict.

    Bounded: at most clients x requests_per_client requests, and all of them within `timeout_s`
    (requests left when the time is up are cancelled and counted as errors).
    """
    if not payloads:
        raise ValueError("no payloads to send")
    result = LoadResult(clients, requests_per_client)
    # Idle connections expire on the client before the server's keep-alive timeout (uvicorn: 5 s), so a
    # request is never sent on a connection the server is closing at that moment.
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients, keepalive_expiry=2.0)

    async def client(http: httpx.AsyncClient, index: int) -> None:
        for j in range(requests_per_client):
            k = (offset + index * requests_per_client + j) % len(payloads)
            start = time.perf_counter()
            try:
                response = await http.post("/predict", json=payloads[k])
            except httpx.HTTPError as exc:
                result.errors.append(f"client {index} request {j}: {type(exc).__name__}: {exc}")
                continue
            if response.status_code != 200:
                result.errors.append(f"client {index} request {j}: HTTP {response.status_code}: {response.text[:200]}")
                continue
            result.latencies_s.append(time.perf_counter() - start)
            result.answers.append((k, response.json()["predictions"]))

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=timeout_s) as http:
        tasks = [asyncio.create_task(client(http, i)) for i in range(clients)]
        start = time.perf_counter()
        done, pending = await asyncio.wait(tasks, timeout=timeout_s)
        result.wall_s = time.perf_counter() - start
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending)
            missing = clients * requests_per_client - result.completed - len(result.errors)
            result.errors.append(f"time limit of {timeout_s:.0f} s reached: {missing} requests not completed")
        for task in done:
            if task.exception() is not None:
                result.errors.append(f"client crashed: {task.exception()!r}")
    return result


def compare_offline(
    offline: Mapping[int, list[dict[str, Any]]] | Sequence[list[dict[str, Any]]],
    answers: Sequence[tuple[int, list[dict[str, Any]]]],
    atol: float = 1e-4,
) -> list[str]:
    """Mismatches between served answers and offline predictions of the same payloads.

    Labels must be equal; scores (or regression values) may differ by `atol`, because a served text is
    padded to the longest text of whatever batch it joined.
    """
    mismatches = []
    for k, predictions in answers:
        expected = offline[k]
        if len(predictions) != len(expected):
            mismatches.append(f"payload {k}: {len(predictions)} predictions, expected {len(expected)}")
            continue
        for i, (got, want) in enumerate(zip(predictions, expected)):
            if got.get("label") != want.get("label"):
                mismatches.append(f"payload {k} item {i}: label {got.get('label')!r}, offline {want.get('label')!r}")
            got_values = got["scores"] if "scores" in got else {"value": got["value"]}
            want_values = want["scores"] if "scores" in want else {"value": want["value"]}
            worst = max(abs(got_values[key] - want_values[key]) for key in want_values)
            if worst > atol:
                mismatches.append(f"payload {k} item {i}: scores differ by {worst:.2e} from offline")
    return mismatches


def read_payloads(path: Path, texts_per_request: int = 1) -> list[dict[str, Any]]:
    """Request bodies from a text file: one text per line, or a tab-separated pair per line."""
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no texts")
    payloads = []
    for start in range(0, len(lines), texts_per_request):
        chunk = lines[start : start + texts_per_request]
        if all("\t" in line for line in chunk):
            payloads.append({"pairs": [line.split("\t", 1) for line in chunk]})
        else:
            payloads.append({"texts": chunk})
    return payloads


class ServerProcess:
    """`onnx-approx serve` in a child process on a free loopback port; SIGTERM on close."""

    def __init__(self, outdir: str | Path, *args: str, start_timeout_s: float = 120.0):
        command = [sys.executable, "-m", "onnx_approx.cli", "serve", str(outdir), "--host", "127.0.0.1", "--port", "0"]
        self.proc = subprocess.Popen(
            [*command, *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        self.log_lines: list[str] = []
        self._port: int | None = None
        self._ready = threading.Event()
        threading.Thread(target=self._read_log, daemon=True).start()
        if not self._ready.wait(start_timeout_s) or self._port is None:
            self.close()
            raise RuntimeError("server did not start:\n" + "".join(self.log_lines[-30:]))

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.log_lines.append(line)
            match = _LISTENING.search(line)
            if match:
                self._port = int(match.group(1))
                self._ready.set()
        self._ready.set()  # the process ended (before or after it listened)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    def terminate(self) -> None:
        """Ask for a graceful shutdown (what a process manager does)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)

    def close(self, timeout_s: float = 60.0) -> int:
        self.terminate()
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def __enter__(self) -> "ServerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m onnx_approx.serve.loadtest", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("outdir", help="ONNX output folder to serve")
    parser.add_argument("--texts", type=Path, required=True, help="one text (or tab-separated pair) per line")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--requests", type=int, default=50, help="requests per client")
    parser.add_argument("--texts-per-request", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=32)
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--threads", type=int, default=None, help="server's ONNX Runtime threads")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds per mode; divides --requests")
    parser.add_argument("--timeout", type=float, default=600.0, help="time limit per round, seconds")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.requests % args.rounds:
        parser.error("--rounds must be >= 1 and divide --requests")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    payloads = read_payloads(args.texts, args.texts_per_request)
    threads = ["--threads", str(args.threads)] if args.threads else []
    modes = [
        (f"dynamic (max batch {args.max_batch}, wait {args.max_wait_ms:g} ms)",
         ["--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms)]),
        ("batch size 1", ["--max-batch", "1", "--max-wait-ms", "0"]),
    ]
    per_round = args.requests // args.rounds
    results = {label: LoadResult(args.clients, 0) for label, _ in modes}
    # Both servers run side by side (an idle one takes no CPU) and the rounds alternate between them,
    # so a noise burst on the machine hits both modes alike.
    with contextlib.ExitStack() as stack:
        servers = {label: stack.enter_context(ServerProcess(args.outdir, *a, *threads)) for label, a in modes}
        for server in servers.values():
            with httpx.Client(base_url=server.url) as http:  # warm-up: the first runs allocate
                for payload in payloads[:8]:
                    http.post("/predict", json=payload).raise_for_status()
        for r in range(args.rounds):
            order = modes if r % 2 == 0 else modes[::-1]
            for label, _ in order:
                result = asyncio.run(
                    run_load(servers[label].url, payloads, clients=args.clients, requests_per_client=per_round,
                             timeout_s=args.timeout, offset=r * args.clients * per_round)
                )
                log.info("round %d, %s: %.1f req/s", r + 1, label, result.summary()["throughput_rps"])
                results[label].add(result)
        for label, server in servers.items():
            if results[label].errors:
                for error in results[label].errors[:5]:
                    log.error("%s: %s", label, error)
                problems = [line for line in server.log_lines if " WARNING " in line or " ERROR " in line]
                log.error("%s: server warnings and errors:\n%s", label, "".join(problems[-20:]))

    # Offline reference after the servers are gone, so it does not compete with them for the cores.
    from onnx_approx.serve.app import parse_items
    from onnx_approx.serve.model import ServedModel
    from onnx_approx.serve.settings import ServeSettings

    model = ServedModel(args.outdir, threads=args.threads)
    used = sorted({k for result in results.values() for k, _ in result.answers})
    offline = {k: model.predict(parse_items(payloads[k], ServeSettings())) for k in used}
    mismatches = [m for result in results.values() for m in compare_offline(offline, result.answers)]

    print(f"\nload: {args.clients} clients x {args.requests} requests ({args.rounds} interleaved rounds), "
          f"{args.texts_per_request} text(s) each, server threads {args.threads or 'all'}, {os.cpu_count()} cores")
    print(f"{'mode':<40} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8}")
    rows = [(label, result.summary()) for label, result in results.items()]
    for label, s in rows:
        print(f"{label:<40} {s['requests']:>8.0f} {s['errors']:>6.0f} {s['throughput_rps']:>8.1f} "
              f"{s['p50_ms']:>8.1f} {s['p99_ms']:>8.1f}")
    print(f"predictions equal to offline: {'yes' if not mismatches else f'NO ({len(mismatches)} mismatches)'}")
    for m in mismatches[:5]:
        print("  " + m)
    failed = mismatches or any(s["errors"] for _, s in rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
