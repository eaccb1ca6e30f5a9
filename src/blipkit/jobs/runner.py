"""The job definition both engines run: reader -> model op -> writer, one shard at a time.

:class:`ShardRunner` is made once per worker (it loads the model) and then runs shard after shard. The
local engine makes one in its own process; the Ray engine makes one in each actor of its pool. Because
the shard, the batches inside it and the seed of each batch are fixed by the input alone, both engines
write the same rows.
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

from blipkit.jobs.ops import ModelOp, make_op
from blipkit.jobs.reader import Sample, read_samples
from blipkit.jobs.shards import Shard
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.writers import PartWriter


@dataclass
class ShardReport:
    """What a finished shard reports back to the driver."""

    index: int
    rows: int  # output rows: one per image, except for capfilt (one per judged text)
    failed: int
    seconds: float
    worker: int  # process id: which worker ran it
    images: int = 0
    started: float = 0.0  # wall-clock times (time.time()) on the worker, for throughput across workers
    finished: float = 0.0


def batch_seed(shard: Shard, batch: int) -> int:
    """A seed that depends only on the shard and the batch's place in it (stable across runs and hosts)."""
    return zlib.crc32(f"{shard.index}:{batch}".encode())


class ShardRunner:
    """Runs whole shards: reads their samples, runs the op batch by batch, commits the part file."""

    def __init__(self, spec: JobSpec, staging: str | None = None) -> None:
        self.spec = spec
        self.op: ModelOp = make_op(spec)
        self.writer = PartWriter(spec, staging)

    def run(self, shard: Shard, on_images: Callable[[int], object] | None = None) -> ShardReport:
        """Process ``shard`` and commit its part; ``on_images(n)`` is called after each batch."""
        start, started = time.perf_counter(), time.time()
        rows: list[dict] = []
        batch: list[Sample] = []
        count = images = 0
        for sample in read_samples(self.spec, shard):
            images += 1
            batch.append(sample)
            if len(batch) == self.spec.batch_size:
                rows.extend(self.op(batch, seed=batch_seed(shard, count)))
                count += 1
                if on_images:
                    on_images(len(batch))
                batch = []
        if batch:
            rows.extend(self.op(batch, seed=batch_seed(shard, count)))
            if on_images:
                on_images(len(batch))
        self.writer.commit(shard, rows, self.op.schema)
        failed = sum(1 for r in rows if r.get("error"))
        return ShardReport(shard.index, len(rows), failed, time.perf_counter() - start, os.getpid(),
                           images, started, time.time())
