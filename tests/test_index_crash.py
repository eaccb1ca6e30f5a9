"""kill -9 an indexing run at random moments, several times: the index must always open, never hold a
duplicate, and once resumed equal an index built without interruption."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from blipkit.index import ImageIndex, add_images, open_for
from blipkit.index.schema import META_FILE
from blipkit.tasks.generation import GenerationSettings
from test_index_helpers import blip, make_images, tiny_builtin  # noqa: F401

# The worker and the reference build must decode and batch alike, so that their floats agree exactly.
SETTINGS = {"decoding": "greedy", "max_new_tokens": 5, "min_new_tokens": 1}
BATCH, COMMIT = 2, 2
IMAGES = 32

# A zygote: imports torch and loads the model once, then forks one indexing child per "go" line, so that
# each run that gets killed costs no interpreter start-up. LanceDB is only imported in the children.
ZYGOTE = f"""
import os
import sys
import blipkit
from blipkit.tasks.generation import GenerationSettings

blip = blipkit.load(sys.argv[1])
print("ready", flush=True)
for line in sys.stdin:
    if line.strip() != "go":
        break
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            from blipkit.index import add_images, open_for
            add_images(open_for(blip, sys.argv[2]), blip, [sys.argv[3]],
                       settings=GenerationSettings(**{SETTINGS!r}), batch_size={BATCH}, commit_every={COMMIT})
            code = 0
        finally:
            os._exit(code)
    print(pid, flush=True)
    _, status = os.waitpid(pid, 0)
    print(status, flush=True)
"""


def _commits(db: Path) -> int:
    """Commits so far to the images table (one manifest file each)."""
    versions = db / "images.lance" / "_versions"
    return len(list(versions.iterdir())) if versions.is_dir() else 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _snapshot(db: Path) -> dict[str, dict]:
    """Every row of the index at ``db``, by path; fails on duplicates."""
    if not (db / META_FILE).exists():
        return {}  # killed before it created anything
    index = ImageIndex.open(db)
    table = index.images()
    if table is None:
        return {}
    columns = ["path", "hash", "size", "width", "height", "caption", "vector", "tags"]
    rows = ImageIndex.read(table, columns).to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), f"duplicate rows: {len(paths) - len(set(paths))}"
    return {r["path"]: r for r in rows}


def test_sigkill_then_resume_equals_an_uninterrupted_build(blip, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    photos = tmp_path / "photos"
    make_images(photos, IMAGES)
    reference_db = tmp_path / "reference"
    add_images(open_for(blip, str(reference_db)), blip, [str(photos)],
               settings=GenerationSettings(**SETTINGS), batch_size=BATCH, commit_every=COMMIT)
    reference = _snapshot(reference_db)
    assert len(reference) == IMAGES

    db = tmp_path / "db"
    rng = random.Random(int(os.environ.get("BLIPKIT_CRASH_SEED", "5")))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    zygote = subprocess.Popen([sys.executable, "-c", ZYGOTE, str(tiny_builtin), str(db), str(photos)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    assert zygote.stdin is not None and zygote.stdout is not None
    kills, progress = 0, []
    try:
        assert zygote.stdout.readline().strip() == "ready"
        for _ in range(4):
            zygote.stdin.write("go\n")
            zygote.stdin.flush()
            child = int(zygote.stdout.readline())
            # Kill at a random moment of the run: after a random number of further commits, plus a
            # random extra delay that lands in the work or the write that follows. The number is drawn
            # from the first third of what is left, so that on a fast machine the kill still lands
            # mid-build rather than after the child has finished.
            left = (IMAGES - (progress[-1] if progress else 0)) // COMMIT
            target = _commits(db) + rng.randint(1, max(1, left // 3))
            while _commits(db) < target and _alive(child):
                time.sleep(0.005)
            time.sleep(rng.uniform(0.0, 0.05))
            try:
                os.kill(child, signal.SIGKILL)
                kills += 1
            except ProcessLookupError:
                pass  # it finished first: the resume below then has nothing left to do
            zygote.stdout.readline()  # reaped
            partial = _snapshot(db)  # opens after every kill, no duplicates
            progress.append(len(partial))
            for path, row in partial.items():  # and whatever is there is complete and right
                assert row["hash"] == reference[path]["hash"] and row["caption"] == reference[path]["caption"]
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=30)
    assert kills >= 2, progress
    assert any(0 < n < IMAGES for n in progress), progress  # some kills did land mid-build

    add_images(open_for(blip, str(db)), blip, [str(photos)], settings=GenerationSettings(**SETTINGS),
               batch_size=BATCH, commit_every=COMMIT)
    resumed = _snapshot(db)
    assert sorted(resumed) == sorted(reference)
    for path, row in reference.items():
        got = resumed[path]
        assert {k: got[k] for k in ("hash", "size", "width", "height", "caption", "tags")} == \
               {k: row[k] for k in ("hash", "size", "width", "height", "caption", "tags")}
        assert np.allclose(got["vector"], row["vector"], atol=1e-6)
    assert ImageIndex.open(db).failures() is None or ImageIndex.open(db).failures().count_rows() == 0
