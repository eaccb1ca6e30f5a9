"""The blipkit image index as a job's destination.

Workers write their shards as part files into ``<index>/_job/``, exactly as for a folder output. The
driver moves each committed part into the index as its report arrives: an upsert keyed on path (atomic,
and idempotent, so doing it twice after a crash changes nothing), then an ``ingested-NNNNN.json`` marker
with the shard's counts, then the part is deleted. A shard is done when it has a part or a marker, so a
re-run resumes from either; leftover parts (a driver that died between a worker's commit and its
ingestion) are ingested first.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from blipkit.errors import JobError
from blipkit.index.schema import STAMP_COLUMN, WRITTEN_COLUMNS
from blipkit.jobs import manifest
from blipkit.jobs.runner import ShardReport
from blipkit.jobs.shards import Shard, input_digest
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.storage import locate
from blipkit.jobs.writers import PartWriter

STAGING = "_job"
MARKER = "ingested-{:05d}.json"


class IndexDestination:
    """Upserts a job's rows into the blipkit index at ``spec.output`` (a local folder)."""

    def __init__(self, spec: JobSpec) -> None:
        root = locate(spec.output)
        if not root.is_local:
            raise JobError("a blipkit index is a local folder; write Parquet to object storage instead "
                           "(blipkit job embed --output s3://...)")
        self.spec = spec
        self.db = root.path
        self.staging_root = root.child(STAGING)
        self.staging = self.staging_root.path
        self.writer = PartWriter(spec, self.staging)
        self.index: Any = None

    def prepare(self, shards: Sequence[Shard], overwrite: bool) -> bool:
        import blipkit
        from blipkit.index.builder import open_for

        # The driver loads the model once, for its fingerprint: an index never mixes two models' vectors.
        blip = blipkit.load(self.spec.model, "itc", device="cpu")
        self.index = open_for(blip, self.db, create=True)
        resumed = manifest.check_or_write(self.staging_root, self.spec.identity(), input_digest(shards),
                                          len(shards), overwrite, ("part-", ".part-", "ingested-"))
        self.writer.cleanup()
        for index in sorted(self.writer.committed()):
            self._ingest(index)
        return resumed

    def _markers(self) -> set[int]:
        done = set()
        for name in self.staging_root.listdir():
            if name.startswith("ingested-") and name.endswith(".json") and name[9:14].isdigit():
                done.add(int(name[9:14]))
        return done

    def committed(self) -> set[int]:
        return self.writer.committed() | self._markers()

    def on_report(self, report: ShardReport) -> None:
        self._ingest(report.index)

    def _ingest(self, index: int) -> None:
        import pyarrow.parquet as pq

        part = self.writer.part(index)
        if not part.exists():
            return  # ingested already (a retried shard reports twice)
        rows = pq.read_table(part.path).to_pylist()
        now = dt.datetime.now(dt.UTC)
        good = [{**{k: r[k] for k in WRITTEN_COLUMNS}, STAMP_COLUMN: now} for r in rows if not r.get("error")]
        bad = [{"path": r["path"], "hash": r["hash"] or "", "size": r["size"] or 0,
                "mtime_ns": r["mtime_ns"] or 0, "error": r["error"], "error_code": r["error_code"]}
               for r in rows if r.get("error")]
        self.index.upsert(good)
        self.index.record_failures(bad)
        # As `index add`: a file that now fails loses its old row, one that now works its failure record.
        self.index.delete([r["path"] for r in bad])
        self.index.delete([r["path"] for r in good], failures=True)
        counts = {"rows": len(rows), "failed": len(bad)}
        self.staging_root.child(MARKER.format(index)).write_atomic(json.dumps(counts).encode())
        part.delete()

    def finish(self, shards: Sequence[Shard]) -> dict[str, Any]:
        for index in sorted(self.writer.committed()):
            self._ingest(index)
        done = self._markers()
        missing = [s.index for s in shards if s.index not in done]
        if missing:
            raise JobError(f"{len(missing)} shards were not indexed (first: {missing[0]}); run the job again")
        rows = failed = 0
        for shard in shards:
            counts = json.loads(self.staging_root.child(MARKER.format(shard.index)).read_bytes())
            rows, failed = rows + int(counts["rows"]), failed + int(counts["failed"])
        maintenance = self.index.maintain()
        totals = {"rows": rows, "failed": failed, "indexed": self.index.count()}
        manifest.mark_done(self.staging_root, {**totals, "maintenance": maintenance})
        return totals
