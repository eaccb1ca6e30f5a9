"""The Ray engine on a real local Ray cluster: same rows as the local engine, a killed worker costs no row
and duplicates none, and a half-finished job completes.

One cluster (2 CPUs, no dashboard) serves the whole module: Ray takes seconds to start. Every Ray job here
starts two actors that import torch and load the tiny model, the slow part of each test.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from blipkit.jobs import JobSpec, read_output, run_job

pytestmark = pytest.mark.ray
ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")

WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
# Beam search keeps a shard busy for about a second on a worker: long enough to kill one mid-job.
OPTIONS = {"decoding": "beam", "num_beams": 3, "max_new_tokens": 12}
N_IMAGES, SHARD_SIZE = 200, 20


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    # A loaded machine can make the local cluster miss its start-up deadline once; one retry covers it.
    for attempt in range(2):
        try:
            ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": WORKER_ENV},
                     log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    try:
        yield
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """200 generated images, a tiny model, and the local engine's output to compare against."""
    from PIL import Image

    from blipkit.testing import make_tiny_checkpoint

    root = tmp_path_factory.mktemp("rayjob")
    (root / "imgs").mkdir()
    for i in range(N_IMAGES):
        pixels = np.random.default_rng(i).integers(0, 255, (32, 32, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(root / "imgs" / f"img{i:03d}.png")
    model = str(make_tiny_checkpoint("builtin", root / "model"))

    def spec(output: str) -> JobSpec:
        return JobSpec("caption", str(root / "imgs"), output, model=model, shard_size=SHARD_SIZE,
                       batch_size=8, options=OPTIONS)

    local = run_job(spec(str(root / "local")), progress=False)
    assert local.rows == N_IMAGES
    return {"root": root, "spec": spec, "reference": read_output(str(root / "local"))}


def assert_same_rows(got: pa.Table, want: pa.Table) -> None:
    """Row for row: the same images in the same order, the same captions, the same confidences."""
    assert got.num_rows == want.num_rows == N_IMAGES
    for column in ("key", "image", "caption", "error"):
        assert got.column(column).to_pylist() == want.column(column).to_pylist(), column
    np.testing.assert_allclose(got.column("confidence").to_numpy(), want.column("confidence").to_numpy(),
                               rtol=1e-6)
    keys = got.column("key").to_pylist()
    assert len(set(keys)) == len(keys)  # exact-once


def test_ray_output_equals_local_output(cluster: None, job: dict, tmp_path: Path) -> None:
    out = str(tmp_path / "ray")
    summary = run_job(job["spec"](out), engine="ray", workers=2)
    assert (summary.shards, summary.ran, summary.rows) == (N_IMAGES // SHARD_SIZE, 10, N_IMAGES)
    assert len({r.worker for r in summary.reports}) == 2  # both actors did work
    assert_same_rows(read_output(out), job["reference"])
    assert sorted(os.listdir(out))[:2] == ["_SUCCESS", "_job.json"]


def _children(pid: int) -> list[int]:
    """Every process descended from ``pid`` (this test's own Ray cluster is started by this process)."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _shard_actors() -> list[int]:
    pids = []
    for pid in _children(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"ShardActor" in f.read():
                    pids.append(pid)
        except OSError:
            continue
    return sorted(pids)


def test_killed_worker_is_restarted_and_no_row_is_lost_or_doubled(cluster: None, job: dict, tmp_path: Path,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    out = tmp_path / "killed"
    killed: dict[str, object] = {}
    working: list[int] = []  # workers that have finished a shard, so are busy with their next one

    class Reports(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if record.msg.startswith("ray: shard") and isinstance(record.args, tuple):
                working.append(int(record.args[1]))

    def kill_a_busy_worker() -> None:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            actors = _shard_actors()
            busy = [pid for pid in working if pid in actors]
            if busy and len(actors) == 2:
                parts = [n for n in os.listdir(out) if n.startswith("part-")]
                killed["pid"], killed["actors"], killed["parts"] = busy[0], actors, len(parts)
                os.kill(busy[0], signal.SIGKILL)
                return
            time.sleep(0.02)

    handler = Reports()
    logging.getLogger("blipkit.jobs").addHandler(handler)
    watcher = threading.Thread(target=kill_a_busy_worker, daemon=True)
    watcher.start()
    try:
        with caplog.at_level(logging.INFO, logger="blipkit.jobs"):
            summary = run_job(job["spec"](str(out)), engine="ray", workers=2)
    finally:
        logging.getLogger("blipkit.jobs").removeHandler(handler)
    watcher.join(timeout=5)
    assert "pid" in killed, "no worker was killed"
    assert killed["parts"] < N_IMAGES // SHARD_SIZE, "the job was over before the kill"
    assert not os.path.exists(f"/proc/{killed['pid']}")
    # The killed actor was restarted (a new process) and ran the shard it had been running, again.
    workers = {r.worker for r in summary.reports}
    assert workers - set(killed["actors"]), f"no restarted worker reported: {workers} vs {killed['actors']}"
    assert summary.rows == N_IMAGES and summary.ran == N_IMAGES // SHARD_SIZE
    assert_same_rows(read_output(str(out)), job["reference"])
    assert "img/s" in caplog.text  # progress and throughput in the log


def test_half_finished_job_is_completed_by_a_rerun(cluster: None, job: dict, tmp_path: Path) -> None:
    out = tmp_path / "half"
    shutil.copytree(job["root"] / "local", out)
    # What a crash leaves: some parts, a writer's temporary file, no _SUCCESS.
    for index in range(1, 10, 2):
        (out / f"part-{index:05d}.parquet").unlink()
    (out / "_SUCCESS").unlink()
    (out / ".part-00003.parquet.0123456789ab.tmp").write_bytes(b"cut short")
    kept = {n: (out / n).stat().st_mtime_ns for n in os.listdir(out) if n.startswith("part-")}

    summary = run_job(job["spec"](str(out)), engine="ray", workers=1)  # one actor: one model load
    assert (summary.skipped, summary.ran, summary.rows) == (5, 5, N_IMAGES)
    assert sorted(r.index for r in summary.reports) == [1, 3, 5, 7, 9]
    assert all((out / n).stat().st_mtime_ns == t for n, t in kept.items())  # done shards were not redone
    assert (out / "_SUCCESS").exists() and not list(out.glob(".part-*"))
    assert_same_rows(read_output(str(out)), job["reference"])
