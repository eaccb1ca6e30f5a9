"""The job's writer: one part file per shard, committed atomically, so every output row exists exactly once.

A shard's rows are serialised in memory and published in one step (:meth:`Location.write_atomic`): a part
file is either absent or complete. A shard is done exactly when its part exists, which is all a re-run
needs to know to skip it; a shard that is run twice (a worker died after committing, before reporting)
writes the same part again, replacing it, so no row is ever duplicated.
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from blipkit.jobs.shards import Shard
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.storage import Location, locate, remove_temporaries

SUFFIXES = {"parquet": ".parquet", "jsonl": ".jsonl"}
# Stored in each Parquet part's footer, so totals are known without reading the rows.
ROWS_KEY, FAILED_KEY = b"blipkit.rows", b"blipkit.failed"


class PartWriter:
    """Writes ``part-<shard>.parquet`` or ``.jsonl`` files into the folder ``root``."""

    def __init__(self, spec: JobSpec, root: str | None = None) -> None:
        self.format = spec.format
        self.suffix = SUFFIXES[spec.format]
        self.root = locate(root if root is not None else spec.output)

    def part(self, shard: Shard | int) -> Location:
        index = shard if isinstance(shard, int) else shard.index
        return self.root.child(f"part-{index:05d}{self.suffix}")

    def committed(self) -> set[int]:
        """Indices of the shards whose part file exists."""
        done = set()
        for name in self.root.listdir():
            if name.startswith("part-") and name.endswith(self.suffix):
                stem = name[len("part-"): -len(self.suffix)]
                if stem.isdigit():
                    done.add(int(stem))
        return done

    def commit(self, shard: Shard, rows: Sequence[dict[str, Any]], schema: pa.Schema) -> None:
        """Publish ``rows`` as the shard's part file (all of them or nothing)."""
        failed = sum(1 for r in rows if r.get("error"))
        if self.format == "parquet":
            data = _parquet_bytes(rows, schema, failed)
        else:
            data = "".join(json.dumps(_jsonable(r), ensure_ascii=False) + "\n" for r in rows).encode()
        self.part(shard).write_atomic(data)

    def counts(self, index: int) -> tuple[int, int]:
        """(rows, failed rows) of a committed part."""
        loc = self.part(index)
        if self.format == "parquet":
            import pyarrow.parquet as pq

            with loc.fs.open_input_file(loc.path) as f:
                meta = pq.read_metadata(f)
            kv = meta.metadata or {}
            if FAILED_KEY in kv:
                return meta.num_rows, int(kv[FAILED_KEY])
            with loc.fs.open_input_file(loc.path) as f:
                errors = pq.read_table(f, columns=["error"]).column("error")
            return meta.num_rows, errors.length() - errors.null_count
        rows = [json.loads(line) for line in loc.read_bytes().decode().splitlines() if line.strip()]
        return len(rows), sum(1 for r in rows if r.get("error"))

    def cleanup(self) -> None:
        """Remove the temporary files of attempts that died before they committed."""
        remove_temporaries(self.root, "part-")


def _parquet_bytes(rows: Sequence[dict[str, Any]], schema: pa.Schema, failed: int) -> bytes:
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist(list(rows), schema=schema)
    counts = {ROWS_KEY: str(len(rows)).encode(), FAILED_KEY: str(failed).encode()}
    table = table.replace_schema_metadata(counts)
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    """JSON has no NaN: a float that is not finite becomes null."""
    out = {}
    for k, v in row.items():
        bad_float = isinstance(v, float) and not math.isfinite(v)
        bad_vector = isinstance(v, list) and any(isinstance(x, float) and not math.isfinite(x) for x in v)
        out[k] = None if bad_float or bad_vector else v
    return out


def read_output(output: str) -> pa.Table:
    """Every row a job wrote to ``output`` (a folder of parts), in shard order: parts are read by name."""
    import pyarrow.parquet as pq

    root = locate(output)
    names = [n for n in root.listdir() if n.startswith("part-")]
    tables = []
    for name in names:
        loc = root.child(name)
        if name.endswith(".parquet"):
            with loc.fs.open_input_file(loc.path) as f:
                tables.append(pq.read_table(f))
        elif name.endswith(".jsonl"):
            rows = [json.loads(line) for line in loc.read_bytes().decode().splitlines() if line.strip()]
            tables.append(pa.Table.from_pylist(rows))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="default")
