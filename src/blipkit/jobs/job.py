"""Run a job: plan the shards, skip the ones already written, run the rest on an engine, close the output."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any

from blipkit import defaults
from blipkit.errors import JobError
from blipkit.jobs.destinations import open_destination
from blipkit.jobs.ops import check_options
from blipkit.jobs.runner import ShardReport
from blipkit.jobs.shards import plan_shards
from blipkit.jobs.spec import JobSpec

ENGINES = ("local", "ray")
log = logging.getLogger("blipkit.jobs")


@dataclass
class JobSummary:
    """What a job run did. ``rows`` and ``failed`` count the whole output, earlier runs included."""

    output: str
    engine: str
    shards: int
    skipped: int  # shards an earlier run had written already
    ran: int
    rows: int
    failed: int
    images_this_run: int
    seconds: float
    reports: list[ShardReport] = field(default_factory=list, repr=False)  # this run's shards, as finished

    @property
    def images_per_s(self) -> float:
        return self.images_this_run / self.seconds if self.seconds > 0 else 0.0

    @property
    def processing_rate(self) -> float:
        """Images per second from the first shard's start to the last one's end: the throughput of the
        workers once running, without the engine's start-up (Ray workers loading the model)."""
        if not self.reports:
            return 0.0
        span = max(r.finished for r in self.reports) - min(r.started for r in self.reports)
        return sum(r.images for r in self.reports) / span if span > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "reports"}
        return {**out, "images_per_s": round(self.images_per_s, 2),
                "processing_rate": round(self.processing_rate, 2)}


def run_job(
    spec: JobSpec,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    max_retries: int = defaults.JOB_MAX_RETRIES,
) -> JobSummary:
    """Run ``spec`` to completion on ``engine`` (``local`` or ``ray``) and return its summary.

    A job is resumable: run it again with the same spec after a crash and only the shards without output
    are run. With ``overwrite``, the job's earlier output is deleted first. ``workers``, ``address`` and
    the ``*_per_worker`` resources apply to the Ray engine (give GPU workers ``spec.device="cuda"``).
    """
    if engine not in ENGINES:
        raise JobError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")
    if workers < 1:
        raise JobError("--workers must be at least 1")
    start = time.perf_counter()
    check_options(spec)  # before the output folder is made: a refused job must leave nothing behind
    shards = plan_shards(spec)
    destination = open_destination(spec)
    resumed = destination.prepare(shards, overwrite)
    done = destination.committed()
    pending = [s for s in shards if s.index not in done]
    if resumed:
        log.info("resuming %s: %d of %d shards already written", spec.output, len(shards) - len(pending),
                 len(shards))
    reports: list[ShardReport]
    if engine == "local":
        from blipkit.jobs.local_engine import run_local

        reports = run_local(spec, pending, staging=destination.staging, progress=progress,
                            on_report=destination.on_report)
    else:
        from blipkit.jobs.ray_engine import run_ray

        reports = run_ray(spec, pending, staging=destination.staging, workers=workers, address=address,
                          cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker,
                          max_retries=max_retries,
                          on_report=destination.on_report)
    totals = destination.finish(shards)
    return JobSummary(
        output=spec.output, engine=engine, shards=len(shards), skipped=len(shards) - len(pending),
        ran=len(reports), rows=int(totals["rows"]), failed=int(totals["failed"]),
        images_this_run=sum(r.images for r in reports), seconds=time.perf_counter() - start, reports=reports,
    )
