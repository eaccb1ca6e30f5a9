"""The Ray engine: the same shard runner, in a pool of Ray actors fed by a streaming Ray Data pipeline.

The dataset has one row per pending shard (its JSON descriptor) and one block per row. ``map_batches``
hands the rows, one at a time, to a fixed pool of ``workers`` actors of :class:`ShardActor`; each actor
loads the model once, then reads, runs and commits shard after shard. Images never pass through the
driver or the object store, only descriptors out and small reports back, so memory stays flat whatever
the input's size.

Fault tolerance: an actor whose process dies is restarted (``max_restarts``) and the shard it was running
is retried (``max_task_retries``). A retried shard starts over and commits its part file atomically, so a
shard's rows appear exactly once whether its first attempt died before or after committing.

Ray is imported only here, only when this engine runs: the local engine works without it.
"""

from __future__ import annotations

import inspect
import logging
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from blipkit import defaults
from blipkit.errors import JobError
from blipkit.jobs.runner import ShardReport, ShardRunner
from blipkit.jobs.shards import Shard
from blipkit.jobs.spec import JobSpec

log = logging.getLogger("blipkit.jobs")
REPORT_FIELDS = ("index", "rows", "failed", "seconds", "worker", "images", "started", "finished")


class ShardActor:
    """The callable class of the actor pool: one :class:`ShardRunner` (one loaded model) per actor."""

    def __init__(self, spec_json: str, staging: str | None) -> None:
        self.runner = ShardRunner(JobSpec.from_json(spec_json), staging)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        out: dict[str, list] = {name: [] for name in REPORT_FIELDS}
        for text in batch["shard"]:
            report = self.runner.run(Shard.from_json(str(text)))
            for name in out:
                out[name].append(getattr(report, name))
        return out


def import_ray() -> Any:
    try:
        import ray
        import ray.data  # Ray Data ships in the ray[data] extra
    except ImportError as exc:
        raise JobError(
            "the Ray engine needs Ray Data: pip install 'blipkit[ray]' or 'ray[data]'; or run --engine local"
        ) from exc
    return ray


def connect(address: str | None, *, num_cpus: int | None = None, env: dict[str, str] | None = None) -> bool:
    """Join the Ray cluster at ``address`` (``auto``, ``ray://host:10001``) or start a local one (None).

    Nothing happens when this process is already connected. True when this call connected it (so the
    caller should disconnect when done).
    """
    ray = import_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False} if address is None else {}
    if address is None and num_cpus is not None:
        kwargs["num_cpus"] = num_cpus
    if env:
        kwargs["runtime_env"] = {"env_vars": env}
    try:
        ray.init(address=address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a new local cluster"
        raise JobError(f"cannot connect to the Ray cluster at {where}: {exc}") from exc
    return True


def worker_env(spec: JobSpec, cpus_per_worker: float) -> dict[str, str]:
    """Environment of the workers: one BLAS/OpenMP thread per CPU a worker reserves, so that N workers on
    N CPUs do not each start N threads and fight over the cores."""
    threads = str(spec.threads or max(1, int(cpus_per_worker)))
    return {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}


def run_ray(
    spec: JobSpec,
    shards: Sequence[Shard],
    *,
    staging: str | None = None,
    workers: int = 1,
    address: str | None = None,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    max_retries: int = defaults.JOB_MAX_RETRIES,
    on_report: Callable[[ShardReport], object] | None = None,
) -> list[ShardReport]:
    """Run ``shards`` on a pool of ``workers`` Ray actors; returns their reports in the order they finished.

    ``on_report`` is called in the driver with each report as it arrives."""
    if not shards:
        return []
    ray = import_ray()
    from ray.data import ActorPoolStrategy

    env = worker_env(spec, cpus_per_worker)
    started_here = connect(address, env=env)
    try:
        ds = ray.data.from_items([{"shard": s.to_json()} for s in shards], override_num_blocks=len(shards))
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
            ds = ds.map_batches(
                ShardActor,
                fn_constructor_kwargs={"spec_json": spec.to_json(), "staging": staging},
                batch_size=1,
                compute=ActorPoolStrategy(size=workers),  # a fixed pool: concurrency=N in older Ray
                num_cpus=cpus_per_worker,
                num_gpus=gpus_per_worker or None,
                runtime_env={"env_vars": env},
                **_retry_args(ds, max_retries),
            )
        return _follow(ds.iter_rows(), shards, on_report)
    finally:
        if started_here:
            ray.shutdown()


def _plain(value: Any) -> Any:
    """A numpy scalar out of a Ray Data block as the plain Python number it holds."""
    return value.item() if hasattr(value, "item") else value


def _retry_args(ds: Any, max_retries: int) -> dict[str, int]:
    """Restart a dead actor, and retry the shard it was running, up to ``max_retries`` times.

    Ray Data takes these as extra ``ray.remote`` arguments of ``map_batches``, deprecated since Ray 2.60
    (whose actor pools restart actors and retry their tasks without limit by default); a Ray that no
    longer accepts them gets none and keeps its own defaults.
    """
    params = inspect.signature(ds.map_batches).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return {"max_restarts": max_retries, "max_task_retries": max_retries}
    return {}


def _follow(rows: Any, shards: Sequence[Shard], on_report: Callable[[ShardReport], object] | None
            ) -> list[ShardReport]:
    """Collect the shard reports as they stream in, logging progress and throughput."""
    start = time.perf_counter()
    known = {s.index: s for s in shards}
    reports: list[ShardReport] = []
    images = 0
    log.info("ray: %d shards to run", len(shards))
    for row in rows:
        report = ShardReport(**{name: _plain(row[name]) for name in REPORT_FIELDS})
        reports.append(report)
        if on_report:
            on_report(report)
        images += report.images
        elapsed = time.perf_counter() - start
        # Since the first shard started: the workers' rate, without the actors' start-up.
        working = max(r.finished for r in reports) - min(r.started for r in reports)
        log.info(
            "ray: shard %d done by worker %d (%d images, %d failed rows, %.1fs) | %d/%d shards, %d images, "
            "%.1f img/s (%.1f img/s since the first shard started)",
            report.index, report.worker, report.images, report.failed, report.seconds, len(reports),
            len(known), images, images / elapsed if elapsed > 0 else 0.0,
            images / working if working > 0 else 0.0,
        )
    return reports
