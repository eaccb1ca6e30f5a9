"""MicroBatcher: jobs gathered per key into batches, run in one worker thread, a bounded queue, draining."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Hashable, Sequence
from typing import Any

import pytest

from blipkit.serve.batcher import BatcherClosed, MicroBatcher, QueueFull


class Recorder:
    """A handler that doubles its payloads and records every batch (and the thread it ran in)."""

    def __init__(self, gate: threading.Event | None = None, delay: float = 0.0) -> None:
        self.batches: list[tuple[Hashable, list[Any]]] = []
        self.threads: set[str] = set()
        self.gate = gate
        self.delay = delay

    def __call__(self, key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        if self.gate is not None:
            self.gate.wait(10)
        if self.delay:
            time.sleep(self.delay)
        self.threads.add(threading.current_thread().name)
        self.batches.append((key, list(payloads)))
        return [ValueError(f"bad {p}") if p == "bad" else p * 2 for p in payloads]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_jobs_become_one_batch_in_the_worker_thread() -> None:
    rec = Recorder()

    async def main() -> list[int]:
        b = MicroBatcher({"t": rec}, max_batch=16, wait_s=0.05, queue_size=100)
        out = await asyncio.gather(*(b.submit("t", None, i) for i in range(5)))
        await b.close()
        return out

    assert run(main()) == [0, 2, 4, 6, 8]
    assert [len(p) for _, p in rec.batches] == [5]
    assert rec.threads == {"blipkit-infer_0"}


def test_max_batch_caps_the_weight_of_a_batch() -> None:
    rec = Recorder()

    async def main() -> None:
        b = MicroBatcher({"t": rec}, max_batch=4, wait_s=0.05, queue_size=100)
        await asyncio.gather(*(b.submit("t", None, i, weight=w) for i, w in enumerate([3, 3, 1, 1])))
        await b.close()

    run(main())
    # jobs go out in arrival order while they fit: [3] (3 + 3 > 4), [3, 1], [1]
    assert [p for _, p in rec.batches] == [[0], [1, 2], [3]]


def test_a_job_heavier_than_max_batch_still_runs_alone() -> None:
    rec = Recorder()

    async def main() -> int:
        b = MicroBatcher({"t": rec}, max_batch=2, wait_s=0.01, queue_size=10)
        out = await b.submit("t", None, 21, weight=50)
        await b.close()
        return out

    assert run(main()) == 42


def test_different_keys_and_tasks_are_never_mixed() -> None:
    rec_a, rec_b = Recorder(), Recorder()

    async def main() -> None:
        b = MicroBatcher({"a": rec_a, "b": rec_b}, max_batch=16, wait_s=0.05, queue_size=100)
        await asyncio.gather(
            b.submit("a", "k1", 1), b.submit("a", "k2", 2), b.submit("a", "k1", 3), b.submit("b", "k1", 4),
        )
        await b.close()

    run(main())
    assert sorted((k, sorted(p)) for k, p in rec_a.batches) == [("k1", [1, 3]), ("k2", [2])]
    assert rec_b.batches == [("k1", [4])]


def test_one_failed_item_fails_only_its_own_job() -> None:
    rec = Recorder()

    async def main() -> list[Any]:
        b = MicroBatcher({"t": rec}, max_batch=16, wait_s=0.05, queue_size=100)
        out = await asyncio.gather(b.submit("t", None, 1), b.submit("t", None, "bad"), b.submit("t", None, 2),
                                   return_exceptions=True)
        await b.close()
        return out

    out = run(main())
    assert out[0] == 2 and out[2] == 4
    assert isinstance(out[1], ValueError)
    assert len(rec.batches) == 1


def test_a_handler_crash_fails_the_batch_and_the_batcher_goes_on() -> None:
    calls = {"n": 0}

    def flaky(key: Hashable, payloads: Sequence[Any]) -> list[Any]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return list(payloads)

    async def main() -> tuple[Any, Any]:
        b = MicroBatcher({"t": flaky}, max_batch=16, wait_s=0.0, queue_size=10)
        first = await asyncio.gather(b.submit("t", None, 1), return_exceptions=True)
        second = await b.submit("t", None, 2)
        await b.close()
        return first[0], second

    first, second = run(main())
    assert isinstance(first, RuntimeError)
    assert second == 2


def test_full_queue_refuses_and_depth_comes_back_to_zero() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)
    depths: list[int] = []

    async def main() -> None:
        b = MicroBatcher({"t": rec}, max_batch=1, wait_s=0.0, queue_size=2, on_depth=depths.append)
        first = asyncio.ensure_future(b.submit("t", None, 1))
        second = asyncio.ensure_future(b.submit("t", None, 2))
        await asyncio.sleep(0.05)
        assert b.depth == 2
        with pytest.raises(QueueFull):
            await b.submit("t", None, 3)
        gate.set()
        assert await first == 2 and await second == 4
        assert b.depth == 0
        await b.close()

    run(main())
    assert depths[-1] == 0 and max(depths) == 2


def test_close_finishes_accepted_jobs_and_refuses_new_ones() -> None:
    rec = Recorder(delay=0.05)

    async def main() -> list[int]:
        b = MicroBatcher({"t": rec}, max_batch=2, wait_s=0.0, queue_size=100)
        jobs = [asyncio.ensure_future(b.submit("t", None, i)) for i in range(6)]
        await asyncio.sleep(0.01)
        closing = asyncio.ensure_future(b.close())
        await asyncio.sleep(0)
        with pytest.raises(BatcherClosed):
            await b.submit("t", None, 99)
        await closing
        return [j.result() for j in jobs]

    assert run(main()) == [0, 2, 4, 6, 8, 10]
    assert sum(len(p) for _, p in rec.batches) == 6


def test_a_cancelled_request_is_dropped_before_it_runs() -> None:
    gate = threading.Event()
    rec = Recorder(gate=gate)

    async def main() -> None:
        b = MicroBatcher({"t": rec}, max_batch=1, wait_s=0.0, queue_size=10)
        running = asyncio.ensure_future(b.submit("t", None, 1))
        await asyncio.sleep(0.02)  # job 1 is in the worker, blocked on the gate
        waiting = asyncio.ensure_future(b.submit("t", None, 2))
        await asyncio.sleep(0.02)
        waiting.cancel()  # its client went away
        await asyncio.sleep(0.01)
        gate.set()
        assert await running == 2
        assert await b.submit("t", None, 3) == 6
        await b.close()
        assert b.depth == 0

    run(main())
    assert [p for _, p in rec.batches] == [[1], [3]]


def test_batches_grow_while_the_worker_is_busy() -> None:
    rec = Recorder(delay=0.05)

    async def main() -> None:
        b = MicroBatcher({"t": rec}, max_batch=64, wait_s=0.0, queue_size=100)
        first = asyncio.ensure_future(b.submit("t", None, 0))
        await asyncio.sleep(0.01)
        await asyncio.gather(first, *(b.submit("t", None, i) for i in range(1, 9)))
        await b.close()

    run(main())
    # wait_s is 0, yet the 8 jobs that arrived while the first batch ran go out as one batch
    assert [len(p) for _, p in rec.batches] == [1, 8]
