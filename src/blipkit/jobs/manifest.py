"""The job manifest, ``_job.json`` in the output folder: which job the part files there belong to.

It is written before the first part, so a re-run can tell "resume this job" from "this folder holds a
different job" (another input, model or option), which would otherwise mix two jobs' rows silently. Its
name starts with ``_``, like ``_SUCCESS``, so Parquet readers (pyarrow, Spark, Ray, DuckDB) skip it.
"""

from __future__ import annotations

import json
import time
from typing import Any

from blipkit.errors import JobError
from blipkit.jobs.storage import Location

MANIFEST = "_job.json"
SUCCESS = "_SUCCESS"
VERSION = 1


def check_or_write(root: Location, identity: dict[str, Any], digest: str, shards: int, overwrite: bool,
                   owned: tuple[str, ...]) -> bool:
    """Claim ``root`` for this job; True when it resumes an earlier run of the same job.

    ``owned`` are name prefixes of the files a job writes there; with ``overwrite`` they are deleted first.
    A folder that holds other files and no manifest is refused rather than written into. Another job's
    manifest with no output beside it (that run stopped before its first shard: a model that would not
    load, say) has nothing to mix with, so this job takes the folder over.
    """
    manifest = root.child(MANIFEST)
    wanted = {"version": VERSION, "job": identity, "input_digest": digest, "shards": shards}
    if overwrite:
        for name in root.listdir():
            if name.startswith(owned) or name in (MANIFEST, SUCCESS):
                root.child(name).delete()
    if manifest.exists():
        try:
            found = json.loads(manifest.read_bytes())
        except (OSError, ValueError) as exc:
            raise JobError(f"{manifest.name} is unreadable ({exc}); --overwrite starts afresh") from exc
        mine = {k: found.get(k) for k in wanted}
        if mine == wanted:
            return True
        if any(name.startswith(owned) for name in root.listdir()):
            diff = sorted(_differences(mine, wanted))
            raise JobError(
                f"{root.name} holds the output of another job (it differs in {', '.join(diff)}); "
                "use another --output, or --overwrite to replace it"
            )
        if root.child(SUCCESS).exists():  # an empty job's: not this one's verdict
            root.child(SUCCESS).delete()
    elif [n for n in root.listdir() if not n.startswith(".")]:
        raise JobError(f"{root.name} is not empty and holds no blipkit job; pick an empty or new --output")
    manifest.write_atomic(json.dumps({**wanted, "started": time.time()}, indent=2).encode())
    return False


def mark_done(root: Location, totals: dict[str, Any]) -> None:
    """Record the totals in the manifest and drop the ``_SUCCESS`` marker: the output is complete."""
    manifest = root.child(MANIFEST)
    data = json.loads(manifest.read_bytes())
    data.update(finished=time.time(), **totals)
    manifest.write_atomic(json.dumps(data, indent=2).encode())
    root.child(SUCCESS).write_atomic(b"")


def _differences(found: dict[str, Any], wanted: dict[str, Any]) -> list[str]:
    out = []
    for key, value in wanted.items():
        if key == "job" and isinstance(found.get(key), dict):
            out.extend(k for k in value if found[key].get(k) != value[k])
        elif found.get(key) != value:
            out.append("input" if key == "input_digest" else key)
    return out
