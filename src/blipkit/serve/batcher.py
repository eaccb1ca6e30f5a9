"""Micro-batching: concurrent requests for the same task become one model call.

A request is a *job* with a batch key (the task and every parameter that must be equal within one model
call, such as the decoding settings) and a weight (its number of images or texts). One dispatcher
coroutine takes the oldest waiting job, lets its batch fill for up to ``wait_s`` after that job arrived
(or until ``max_batch`` weight is reached), and runs the whole batch in a single worker thread, so the
event loop stays free and the model is only ever called from one thread. While the worker is busy, new
jobs pile up, so under load batches grow by themselves and an idle server adds at most ``wait_s``.

The queue is bounded: :meth:`MicroBatcher.submit` raises :class:`QueueFull` rather than letting latency
grow without limit. :meth:`MicroBatcher.close` stops intake and finishes every job already accepted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

# A handler runs in the worker thread: (key, payloads) -> one result per payload, in order. A result
# that is an exception fails only its own job.
Handler = Callable[[Hashable, Sequence[Any]], Sequence[Any]]


class QueueFull(Exception):
    """Too many jobs are waiting; the caller should retry later."""


class BatcherClosed(Exception):
    """The batcher is shutting down and takes no new jobs."""


@dataclass
class _Job:
    key: Hashable
    payload: Any
    weight: int
    future: asyncio.Future[Any]
    arrived: float = field(default_factory=time.monotonic)


@dataclass
class BatchStats:
    """What the batcher has done so far (for tests and the benchmark; Prometheus gets the same)."""

    batches: int = 0
    jobs: int = 0
    largest: int = 0


class MicroBatcher:
    """Gather jobs per batch key for up to ``wait_s`` into batches of up to ``max_batch`` weight."""

    def __init__(
        self,
        handlers: dict[str, Handler],
        *,
        max_batch: int,
        wait_s: float,
        queue_size: int,
        on_batch: Callable[[str, int, int, float], None] | None = None,
        on_depth: Callable[[int], None] | None = None,
    ) -> None:
        self.handlers = handlers
        self.max_batch = max_batch
        self.wait_s = wait_s
        self.queue_size = queue_size
        self.stats = BatchStats()
        self._on_batch = on_batch
        self._on_depth = on_depth
        # key -> its waiting jobs, oldest first
        self._waiting: dict[tuple[str, Hashable], deque[_Job]] = {}
        self._pending = 0  # jobs accepted and not yet finished (waiting or running)
        self._arrived: asyncio.Event | None = None
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        # One thread: BLIP on CPU already uses every core torch gives it, and models are not
        # guaranteed to be thread-safe.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="blipkit-infer")

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Start the dispatcher on the running event loop."""
        if self._dispatcher is None:
            self._arrived = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._dispatcher = loop.create_task(self._dispatch(), name="blipkit-batcher")

    async def close(self, timeout: float | None = None) -> None:
        """Take no new jobs, finish those already accepted (up to ``timeout`` s), stop the worker."""
        self._closing = True
        if self._arrived is not None:
            self._arrived.set()
        if self._dispatcher is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._dispatcher), timeout)
            except TimeoutError:
                self._dispatcher.cancel()
                self._fail_waiting(BatcherClosed("the server stopped before this request was run"))
        self._executor.shutdown(wait=True, cancel_futures=True)

    @property
    def depth(self) -> int:
        """Jobs accepted and not finished yet."""
        return self._pending

    @property
    def closing(self) -> bool:
        return self._closing

    # --- intake -------------------------------------------------------------------------------
    async def submit(self, task: str, key: Hashable, payload: Any, weight: int = 1) -> Any:
        """Queue one job and wait for its result (or its exception)."""
        if task not in self.handlers:
            raise KeyError(f"no handler for task {task!r}")
        if self._closing:
            raise BatcherClosed("the server is shutting down")
        if self._pending >= self.queue_size:
            raise QueueFull(f"{self._pending} requests are already queued (limit {self.queue_size})")
        if self._dispatcher is None:
            self.start()
        job = _Job((task, key), payload, max(1, weight), asyncio.get_running_loop().create_future())
        self._waiting.setdefault(job.key, deque()).append(job)
        self._set_pending(self._pending + 1)
        assert self._arrived is not None
        self._arrived.set()
        try:
            # shield: a client that goes away cancels its wait, not the batch its job is part of
            return await asyncio.shield(job.future)
        finally:
            if not job.future.done():
                job.future.cancel()

    # --- dispatch -----------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        assert self._arrived is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._arrived.clear()
                await self._arrived.wait()
                continue
            # first come, first served across keys: the key whose oldest job has waited longest
            key, jobs = min(self._waiting.items(), key=lambda item: item[1][0].arrived)
            await self._gather(jobs)
            batch = self._take(key, jobs)
            if not batch:
                continue
            task = key[0]
            started = time.monotonic()
            try:
                results = await loop.run_in_executor(
                    self._executor, self.handlers[task], key[1], [j.payload for j in batch]
                )
                if len(results) != len(batch):
                    raise RuntimeError(f"{task}: {len(results)} results for {len(batch)} jobs")
            except Exception as exc:
                results = [exc] * len(batch)
            elapsed = time.monotonic() - started
            for job, result in zip(batch, results, strict=True):
                if not job.future.done():
                    if isinstance(result, BaseException):
                        job.future.set_exception(result)
                    else:
                        job.future.set_result(result)
            self._set_pending(self._pending - len(batch))
            size = sum(j.weight for j in batch)
            self.stats.batches += 1
            self.stats.jobs += len(batch)
            self.stats.largest = max(self.stats.largest, size)
            if self._on_batch is not None:
                self._on_batch(task, size, len(batch), elapsed)

    async def _gather(self, jobs: deque[_Job]) -> None:
        """Wait until the oldest job has waited ``wait_s`` or the batch is full."""
        assert self._arrived is not None
        deadline = jobs[0].arrived + self.wait_s
        while not self._closing and sum(j.weight for j in jobs) < self.max_batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                return

    def _take(self, key: tuple[str, Hashable], jobs: deque[_Job]) -> list[_Job]:
        """Up to ``max_batch`` weight of live jobs, oldest first (always at least one job)."""
        batch: list[_Job] = []
        weight = 0
        dropped = 0
        while jobs:
            job = jobs[0]
            if job.future.done():  # its client went away before it ran
                jobs.popleft()
                dropped += 1
                continue
            if batch and weight + job.weight > self.max_batch:
                break
            batch.append(jobs.popleft())
            weight += job.weight
        if not jobs:
            del self._waiting[key]
        if dropped:
            self._set_pending(self._pending - dropped)
        return batch

    def _fail_waiting(self, exc: Exception) -> None:
        for jobs in self._waiting.values():
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(exc)
        self._waiting.clear()
        self._set_pending(0)

    def _set_pending(self, value: int) -> None:
        self._pending = value
        if self._on_depth is not None:
            self._on_depth(value)
