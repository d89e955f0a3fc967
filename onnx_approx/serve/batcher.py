"""Dynamic batching: items of concurrent requests are run together, up to `max_batch` or `max_wait_s`.

One asyncio task collects queued items; the model runs in one worker thread (ONNX Runtime parallelizes
inside a run, so two runs at once would only fight for the same cores) while the event loop keeps
accepting requests. The wait starts when the oldest queued item arrived, so items that queued up during
the previous run go at once. A request with more items than `max_batch` is spread over several runs.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosedError(RuntimeError):
    """Raised by `submit` once the batcher is stopping: no new work is accepted."""


class DynamicBatcher(Generic[T, R]):
    """Runs `run_batch(items) -> results` (same length, same order) on batches of queued items."""

    def __init__(
        self,
        run_batch: Callable[[list[T]], Sequence[R]],
        *,
        max_batch: int = 32,
        max_wait_s: float = 0.005,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if max_wait_s < 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s}")
        self.run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch  # called with (batch size, seconds the run took)
        self._queue: deque[tuple[T, asyncio.Future[R], float]] = deque()
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closing = False

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._closing

    async def start(self) -> None:
        """Start the collecting task on the running event loop."""
        if self._task is not None:
            raise RuntimeError("batcher already started")
        self._wakeup = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="onnx-approx-batch")
        self._closing = False
        self._task = asyncio.create_task(self._loop(), name="onnx-approx-batcher")

    async def stop(self) -> None:
        """Refuse new items, finish every queued one, then release the worker thread."""
        if self._task is None:
            return
        self._closing = True
        self._wakeup.set()
        await self._task
        self._executor.shutdown(wait=True)
        self._task = None

    async def submit(self, items: Sequence[T]) -> list[R]:
        """Queue `items` and wait for their results (in order). Raises what `run_batch` raised."""
        if not self.running:
            raise BatcherClosedError("the server is shutting down")
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        futures = [loop.create_future() for _ in items]
        self._queue.extend((item, fut, now) for item, fut in zip(items, futures))
        self._wakeup.set()
        results = await asyncio.gather(*futures, return_exceptions=True)  # retrieve every failure, raise one
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return results

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            deadline = self._queue[0][2] + self.max_wait_s
            while len(self._queue) < self.max_batch and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            batch = [entry for entry in batch if not entry[1].done()]  # drop items of cancelled requests
            if batch:
                await self._run(loop, batch)

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[T, asyncio.Future[R], float]]) -> None:
        items = [item for item, _, _ in batch]
        start = time.perf_counter()
        try:
            results = await loop.run_in_executor(self._executor, self.run_batch, items)
            if len(results) != len(items):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
        except Exception as exc:  # the requests of this batch fail; the batcher keeps serving
            log.exception("batch of %d failed", len(items))
            for _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(exc)
            return
        if self.on_batch is not None:
            self.on_batch(len(items), time.perf_counter() - start)
        for (_, fut, _), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)

