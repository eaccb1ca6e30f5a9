"""Where a job's rows end up: a folder of part files (Parquet or JSONL), or a blipkit image index.

A destination tells the driver which shards are done already, is told of each shard a worker commits,
and closes the job. Workers only ever write part files (see :mod:`blipkit.jobs.writers`); a destination
that is not a folder of parts (the index) moves committed parts into itself from the driver.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from blipkit.errors import JobError
from blipkit.jobs import manifest
from blipkit.jobs.runner import ShardReport
from blipkit.jobs.shards import Shard, input_digest
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.storage import locate
from blipkit.jobs.writers import PartWriter

PART_PREFIXES = ("part-", ".part-")


class Destination(Protocol):
    staging: str  # the folder the workers write their part files into

    def prepare(self, shards: Sequence[Shard], overwrite: bool) -> bool: ...

    def committed(self) -> set[int]: ...

    def on_report(self, report: ShardReport) -> None: ...

    def finish(self, shards: Sequence[Shard]) -> dict[str, Any]: ...


class FolderDestination:
    """``part-NNNNN.parquet`` (or ``.jsonl``) files in the output folder, ``_job.json`` and ``_SUCCESS``."""

    def __init__(self, spec: JobSpec) -> None:
        self.spec = spec
        self.staging = spec.output
        self.root = locate(spec.output)
        self.writer = PartWriter(spec)

    def prepare(self, shards: Sequence[Shard], overwrite: bool) -> bool:
        if self.root.is_file():
            raise JobError(f"--output {self.root.name} is a file; a job writes a folder of part files")
        resumed = manifest.check_or_write(self.root, self.spec.identity(), input_digest(shards), len(shards),
                                          overwrite, PART_PREFIXES)
        self.writer.cleanup()
        return resumed

    def committed(self) -> set[int]:
        return self.writer.committed()

    def on_report(self, report: ShardReport) -> None:
        """Nothing to do: the worker's commit of the part file is the whole commit."""

    def finish(self, shards: Sequence[Shard]) -> dict[str, Any]:
        done = self.committed()
        missing = [s.index for s in shards if s.index not in done]
        if missing:
            raise JobError(f"{len(missing)} shards have no output (first: {missing[0]}); run the job again")
        self.writer.cleanup()
        rows = failed = 0
        for shard in shards:
            n, f = self.writer.counts(shard.index)
            rows, failed = rows + n, failed + f
        totals = {"rows": rows, "failed": failed}
        manifest.mark_done(self.root, totals)
        return totals


def open_destination(spec: JobSpec) -> Destination:
    """The destination ``spec`` writes to: an image index for the ``index`` op, else a folder of parts."""
    if spec.op == "index":
        from blipkit.jobs.index_sink import IndexDestination

        return IndexDestination(spec)
    return FolderDestination(spec)
