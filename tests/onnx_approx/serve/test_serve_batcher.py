import asyncio
import threading
import time

import pytest

from onnx_approx.serve.batcher import BatcherClosedError, DynamicBatcher


class Recorder:
    """run_batch that records each batch and answers item -> (item, batch number)."""

    def __init__(self, delay_s: float = 0.0, fail_on=None):
        self.batches: list[list] = []
        self.threads: set[str] = set()
        self.delay_s = delay_s
        self.fail_on = fail_on

    def __call__(self, items):
        self.threads.add(threading.current_thread().name)
        self.batches.append(list(items))
        time.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in items:
            raise RuntimeError(f"cannot handle {self.fail_on}")
        return [(item, len(self.batches)) for item in items]


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


class TestDynamicBatcher:
    def test_concurrent_requests_share_a_batch_and_get_their_own_results(self):
        rec = Recorder()

        async def main():
            b = DynamicBatcher(rec, max_batch=32, max_wait_s=0.2)
            await b.start()
            results = await asyncio.gather(*(b.submit([f"r{i}a", f"r{i}b"]) for i in range(5)))
            await b.stop()
            return results

        results = run(main())
        assert len(rec.batches) == 1 and len(rec.batches[0]) == 10
        for i, res in enumerate(results):
            assert [item for item, _ in res] == [f"r{i}a", f"r{i}b"]
        assert all(name.startswith("onnx-approx-batch") for name in rec.threads)

    def test_batches_never_exceed_max_batch_and_big_requests_are_split(self):
        rec = Recorder()

        async def main():
            b = DynamicBatcher(rec, max_batch=4, max_wait_s=0.05)
            await b.start()
            big = await b.submit(list(range(10)))
            await b.stop()
            return big

        big = run(main())
        assert [item for item, _ in big] == list(range(10))
        assert [len(batch) for batch in rec.batches] == [4, 4, 2]

    def test_a_lone_request_waits_about_max_wait(self):
        rec = Recorder()

        async def main():
            b = DynamicBatcher(rec, max_batch=8, max_wait_s=0.3)
            await b.start()
            start = time.perf_counter()
            await b.submit(["x"])
            elapsed = time.perf_counter() - start
            await b.stop()
            return elapsed

        assert 0.29 <= run(main()) < 5.0

    def test_a_full_batch_does_not_wait(self):
        rec = Recorder()

        async def main():
            b = DynamicBatcher(rec, max_batch=3, max_wait_s=10.0)
            await b.start()
            start = time.perf_counter()
            await b.submit(["a", "b", "c"])
            elapsed = time.perf_counter() - start
            await b.stop()
            return elapsed

        assert run(main()) < 5.0  # far below the 10 s wait

    def test_a_failing_batch_fails_only_its_requests(self):
        rec = Recorder(fail_on="bad")

        async def main():
            b = DynamicBatcher(rec, max_batch=2, max_wait_s=0.0)
            await b.start()
            with pytest.raises(RuntimeError, match="cannot handle bad"):
                await b.submit(["bad"])
            ok = await b.submit(["good"])
            await b.stop()
            return ok

        assert run(main()) == [("good", 2)]

    def test_stop_finishes_queued_items_then_refuses(self):
        rec = Recorder(delay_s=0.05)

        async def main():
            b = DynamicBatcher(rec, max_batch=2, max_wait_s=5.0)
            await b.start()
            pending = [asyncio.create_task(b.submit([i])) for i in range(5)]
            await asyncio.sleep(0.01)  # all five queued; the first batch waits for 5 s
            await b.stop()  # must not wait the 5 s, must not drop anything
            results = [await p for p in pending]
            with pytest.raises(BatcherClosedError):
                await b.submit([99])
            return results

        start = time.perf_counter()
        results = run(main())
        assert time.perf_counter() - start < 4.0
        assert [r[0][0] for r in results] == [0, 1, 2, 3, 4]
        assert sorted(x for batch in rec.batches for x in batch) == [0, 1, 2, 3, 4]

    def test_items_of_a_cancelled_request_are_not_run(self):
        rec = Recorder()

        async def main():
            b = DynamicBatcher(rec, max_batch=8, max_wait_s=0.2)
            await b.start()
            gone = asyncio.create_task(b.submit(["gone"]))
            await asyncio.sleep(0.01)
            gone.cancel()
            kept = await b.submit(["kept"])
            await b.stop()
            return kept

        assert run(main()) == [("kept", 1)]
        assert rec.batches == [["kept"]]

    def test_on_batch_sees_every_run(self):
        rec = Recorder()
        seen = []

        async def main():
            b = DynamicBatcher(rec, max_batch=2, max_wait_s=0.0, on_batch=lambda n, s: seen.append((n, s)))
            await b.start()
            await b.submit([1, 2, 3])
            await b.stop()

        run(main())
        assert [n for n, _ in seen] == [len(batch) for batch in rec.batches] == [2, 1]
        assert all(s >= 0 for _, s in seen)

    @pytest.mark.parametrize("kwargs", [{"max_batch": 0}, {"max_wait_s": -1}])
    def test_bad_settings(self, kwargs):
        with pytest.raises(ValueError):
            DynamicBatcher(lambda items: items, **kwargs)
