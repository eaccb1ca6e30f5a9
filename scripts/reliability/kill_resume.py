#!/usr/bin/env python
"""SIGKILL a blipkit command at random moments, resume it, and compare with an uninterrupted run.

Targets, each run through the real CLI (``blipkit.cli.main``) in its own process:

- ``index``:   ``blipkit index add PHOTOS --db DB`` (LanceDB upserts every ``--commit-every`` images)
- ``job``:     ``blipkit job caption --engine local -i PHOTOS -o OUT`` (one Parquet part per shard)
- ``caption``: ``blipkit caption PHOTOS --out OUT.jsonl --resume`` (one JSON line per image)

The photos are small random PNGs plus two broken files (error rows / failure records). First one run goes
through uninterrupted: the reference. Then the same command is started again and again on a second output
and killed with SIGKILL, ``--kills`` times: some kills land during start-up, most after a random number of
further commits plus a random delay, so they hit the model work and the writes alike. After every kill the
output must open and hold no duplicate and no row that differs from the reference. Finally one run goes to
completion, and the output must equal the reference: the same rows, once each.

``--spawn exec`` (the default) starts every run as a fresh interpreter; ``--spawn fork`` forks each run
from a zygote that has imported torch and transformers once (the same CLI code, a much shorter start-up;
the tests use it).

    python scripts/reliability/kill_resume.py --target index --kills 20
    python scripts/reliability/kill_resume.py --target job --kills 20 --json

Exit status 1 when a check fails.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import contextlib
import json
import math
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

TARGETS = ("index", "job", "caption")
# Every target decodes alike: greedy, 5 tokens, 2 images per batch and per commit (index), shard (job).
GENERATION = ["--decoding", "greedy", "--max-new-tokens", "5"]
BAD_FILES = {"broken.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, "empty.jpg": b""}
_CLI = "from blipkit.cli.main import app; app(prog_name='blipkit')"


# --- launching runs ----------------------------------------------------------------------------------


class Run(Protocol):
    pid: int

    def done(self) -> bool: ...

    def returncode(self) -> int | None: ...

    def kill(self) -> None: ...

    def wait(self, timeout: float) -> int | None: ...


class Launcher(Protocol):
    def start(self, argv: Sequence[str], log: Path) -> Run: ...

    def close(self) -> None: ...


class _ExecRun:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc, self.pid = proc, proc.pid

    def done(self) -> bool:
        return self.proc.poll() is not None

    def returncode(self) -> int | None:
        return self.proc.poll()

    def kill(self) -> None:
        # start_new_session made the run a process group: a helper process it started dies with it.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        return self.proc.wait(timeout)


class ExecLauncher:
    """Each run is ``python -c 'blipkit CLI' ARGV``: a fresh interpreter, as a user would start it."""

    def __init__(self, python: str = sys.executable) -> None:
        self.python = python

    def start(self, argv: Sequence[str], log: Path) -> Run:
        with log.open("ab") as out:
            proc = subprocess.Popen([self.python, "-c", _CLI, *argv], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True, env=dict(os.environ))
        return _ExecRun(proc)

    def close(self) -> None:
        pass


_ZYGOTE = r"""
import json, os, sys
# What every run needs and is safe to carry across fork: no thread pool has started yet. LanceDB and
# pyarrow, which start threads, are imported by each run itself.
import torch, transformers.models.blip  # noqa: F401
import blipkit.blip, blipkit.cli.main  # noqa: F401
from blipkit.cli.main import app
torch.set_num_threads(1)
print("ready", flush=True)
for line in sys.stdin:
    request = json.loads(line)
    sys.stdout.flush(); sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1); os.dup2(fd, 2)
            try:
                app(args=request["argv"], prog_name="blipkit")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.stdout.flush(); sys.stderr.flush()
            os._exit(code)
    print(f"pid {pid}", flush=True)
    _, status = os.waitpid(pid, 0)
    print(f"exit {pid} {os.waitstatus_to_exitcode(status)}", flush=True)
"""


class _ForkRun:
    def __init__(self, launcher: ForkLauncher, pid: int) -> None:
        self.launcher, self.pid = launcher, pid

    def done(self) -> bool:
        return self.returncode() is not None

    def returncode(self) -> int | None:
        self.launcher._drain()
        return self.launcher.exits.get(self.pid)

    def kill(self) -> None:
        if not self.done():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while not self.done():
            if time.monotonic() > deadline:
                raise TimeoutError(f"run {self.pid} did not end in {timeout:g} s")
            time.sleep(0.01)
        return self.returncode()


class ForkLauncher:
    """Runs are forked from one zygote that imported torch, transformers and the CLI once."""

    def __init__(self, python: str = sys.executable) -> None:
        self.proc = subprocess.Popen([python, "-c", _ZYGOTE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=dict(os.environ))
        self.lines: queue.Queue[str] = queue.Queue()
        self.exits: dict[int, int] = {}
        self._pending: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=600)
        if first != "ready":
            raise RuntimeError(f"the zygote did not start: {first!r}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("eof")

    def _drain(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line.startswith("exit "):
                _, pid, code = line.split()
                self.exits[int(pid)] = int(code)
            elif line == "eof":
                raise RuntimeError("the zygote died")
            else:
                self._pending.append(line)

    def start(self, argv: Sequence[str], log: Path) -> Run:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"argv": list(argv), "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + 60
        while True:
            self._drain()
            for line in list(self._pending):
                if line.startswith("pid "):
                    self._pending.remove(line)
                    return _ForkRun(self, int(line.split()[1]))
            if time.monotonic() > deadline:
                raise RuntimeError("the zygote did not fork")
            time.sleep(0.005)

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- targets ----------------------------------------------------------------------------------------


class Target(Protocol):
    name: str

    def argv(self, output: Path) -> list[str]: ...

    def progress(self, output: Path) -> int:
        """A number that grows with every commit the run makes."""

    def snapshot(self, output: Path) -> dict[str, dict[str, Any]]:
        """Every row of ``output`` by key; raises when it does not open or holds a duplicate."""

    def complete(self, output: Path) -> list[str]:
        """Problems with a finished output beyond its rows (markers, temporary files)."""


class CheckFailed(AssertionError):
    pass


@dataclass
class IndexTarget:
    photos: Path
    model: Path
    name: str = "index"

    def argv(self, output: Path) -> list[str]:
        return ["index", "add", str(self.photos), "--db", str(output), "--model", str(self.model),
                "--commit-every", "2", "--batch-size", "2", *GENERATION, "--json"]

    def progress(self, output: Path) -> int:
        versions = output / "images.lance" / "_versions"
        try:
            return len(os.listdir(versions))
        except OSError:
            return 0

    def snapshot(self, output: Path) -> dict[str, dict[str, Any]]:
        from blipkit.index import ImageIndex
        from blipkit.index.schema import META_FILE

        if not (output / META_FILE).exists():
            return {}  # killed before it created anything
        index = ImageIndex.open(output)
        rows: dict[str, dict[str, Any]] = {}
        table = index.images()
        if table is not None:
            columns = ["path", "hash", "size", "width", "height", "caption", "caption_confidence", "vector",
                       "tags"]
            _collect(rows, ImageIndex.read(table, columns).to_pylist(), "path", "image row")
            if len(rows) != index.count():
                raise CheckFailed(f"count_rows {index.count()} != {len(rows)} rows read")
        failures = index.failures()
        if failures is not None:
            failed = ImageIndex.read(failures, ["path", "error_code"]).to_pylist()
            _collect(rows, [{**r, "path": "failed:" + r["path"]} for r in failed], "path", "failure row")
        return rows

    def complete(self, output: Path) -> list[str]:
        from blipkit.index import ImageIndex

        stats = ImageIndex.open(output).stats()
        indexes = " ".join(stats.get("indexes", []))
        return [] if "caption_idx" in indexes else [f"no full-text index after the final run: {indexes!r}"]


@dataclass
class JobTarget:
    photos: Path
    model: Path
    name: str = "job"

    def argv(self, output: Path) -> list[str]:
        return ["job", "caption", "--engine", "local", "-i", str(self.photos), "-o", str(output),
                "--model", str(self.model), "--shard-size", "2", "--batch-size", "2", *GENERATION, "--json"]

    def progress(self, output: Path) -> int:
        try:
            return sum(1 for n in os.listdir(output) if n.startswith("part-") and n.endswith(".parquet"))
        except OSError:
            return 0

    def snapshot(self, output: Path) -> dict[str, dict[str, Any]]:
        from blipkit.jobs.writers import read_output

        if not output.exists():
            return {}
        rows: dict[str, dict[str, Any]] = {}
        table = read_output(str(output))
        wanted = ["key", "image", "caption", "confidence", "error_code"]
        _collect(rows, [{k: r.get(k) for k in wanted} for r in table.to_pylist()], "image", "row")
        return rows

    def complete(self, output: Path) -> list[str]:
        problems = []
        if not (output / "_SUCCESS").exists():
            problems.append("no _SUCCESS marker after the final run")
        leftovers = [n for n in os.listdir(output) if n.startswith(".") or n.endswith((".tmp", ".partial"))]
        if leftovers:
            problems.append(f"temporary files left behind: {leftovers}")
        return problems


@dataclass
class CaptionTarget:
    photos: Path
    model: Path
    name: str = "caption"
    # Batches of one: a resumed run starts wherever the last one stopped, and a batch of another
    # composition may round differently. The contract under test is exactly-once, not bit-equality.
    batch_size: int = 1
    unparsable: Counter[str] = field(default_factory=Counter)

    def argv(self, output: Path) -> list[str]:
        return ["caption", str(self.photos), "--model", str(self.model), "--out", str(output), "--resume",
                "--batch-size", str(self.batch_size), *GENERATION]

    def progress(self, output: Path) -> int:
        # Caption rows only: a resumed run first rewrites the error rows of the images that failed.
        try:
            with output.open("rb") as f:
                return sum(1 for line in f if line.endswith(b"\n") and b'"error"' not in line)
        except OSError:
            return 0

    def snapshot(self, output: Path) -> dict[str, dict[str, Any]]:
        if not output.exists():
            return {}
        rows: dict[str, dict[str, Any]] = {}
        lines = output.read_text(encoding="utf-8").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        parsed = []
        for number, line in enumerate(lines, 1):
            try:
                parsed.append(json.loads(line))
            except json.JSONDecodeError as exc:
                # A complete line that does not parse loses its row; only a trailing partial line may.
                if number < len(lines):
                    raise CheckFailed(f"line {number} of {output.name} is not JSON ({exc}): "
                                      f"{line[:120]!r}") from exc
                self.unparsable[str(output)] += 1
        ok = [{k: r.get(k) for k in ("image", "caption", "confidence")} for r in parsed if not r.get("error")]
        _collect(rows, ok, "image", "caption row")
        # An image that failed is tried again by a resumed run, which appends another error row.
        failed = Counter(r["image"] for r in parsed if r.get("error"))
        for image, count in failed.items():
            rows["failed:" + image] = {"image": image, "error_rows": count}
        return rows

    def complete(self, output: Path) -> list[str]:
        return []


def _collect(rows: dict[str, dict[str, Any]], found: list[dict[str, Any]], key: str, what: str) -> None:
    for row in found:
        if row[key] in rows:
            raise CheckFailed(f"duplicate {what} for {row[key]}")
        rows[row[key]] = row


def _same(a: Any, b: Any, tol: float = 1e-5) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=tol, abs_tol=tol)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b, strict=True))
    return a == b


def compare(got: dict[str, dict[str, Any]], reference: dict[str, dict[str, Any]], *, partial: bool,
            ignore: Sequence[str] = ()) -> list[str]:
    """Differences between an output's rows and the reference's (a partial output may lack rows)."""
    problems = []
    extra = sorted(set(got) - set(reference))
    if extra:
        problems.append(f"{len(extra)} rows not in the reference, e.g. {extra[:3]}")
    if not partial:
        missing = sorted(set(reference) - set(got))
        if missing:
            problems.append(f"{len(missing)} rows lost, e.g. {missing[:3]}")
    for key in sorted(set(got) & set(reference)):
        for column, value in reference[key].items():
            if column in ignore:
                continue
            if not _same(got[key].get(column), value):
                problems.append(f"{key}: {column} is {str(got[key].get(column))[:60]!r}, "
                                f"uninterrupted run has {str(value)[:60]!r}")
    return problems


# --- the experiment ---------------------------------------------------------------------------------


@dataclass
class KillRecord:
    moment: str  # "start-up", or "N commits in" (then a random part of one more commit's time)
    at_s: float  # seconds after the run started
    rows_after: int


@dataclass
class Outcome:
    target: str
    images: int
    kills: int = 0
    runs: int = 0
    finished_before_kill: int = 0
    killed_in_startup: int = 0
    reference_s: float = 0.0
    total_s: float = 0.0
    kill_log: list[KillRecord] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def make_photos(folder: Path, n: int) -> None:
    """``n`` small random PNGs (different sizes) plus the BAD_FILES."""
    import numpy as np
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        rng = np.random.default_rng(i)
        size = (32 + 8 * (i % 4), 24 + 8 * (i % 3))
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(
            folder / f"img{i:04d}.png")
    for name, data in BAD_FILES.items():
        (folder / name).write_bytes(data)


def make_target(name: str, photos: Path, model: Path) -> Target:
    cls = {"index": IndexTarget, "job": JobTarget, "caption": CaptionTarget}[name]
    return cls(photos, model)  # type: ignore[return-value]


def _finish(run: Run, limit_s: float) -> int:
    code = run.wait(limit_s)
    assert code is not None
    return code


def run_experiment(target: Target, launcher: Launcher, work: Path, *, kills: int, images: int, seed: int,
                   startup_share: float = 0.2, run_limit_s: float = 600.0,
                   say: Callable[[str], object] = lambda _: None) -> Outcome:
    """Reference run, ``kills`` killed runs, one final run; the checks' problems land in the outcome."""
    rng = random.Random(seed)
    outcome = Outcome(target.name, images)
    started = time.monotonic()
    suffix = ".jsonl" if target.name == "caption" else ""
    reference_out, out = work / f"reference{suffix}", work / f"resumed{suffix}"
    log = work / f"{target.name}.log"

    t0 = time.monotonic()
    run = launcher.start(target.argv(reference_out), log)
    first_commit = None
    while not run.done():
        if first_commit is None and target.progress(reference_out) > 0:
            first_commit = time.monotonic() - t0
        time.sleep(0.01)
    code = run.returncode()
    outcome.reference_s = time.monotonic() - t0
    startup_s = first_commit if first_commit is not None else outcome.reference_s / 2
    if code not in (0, 2):  # 2: some inputs failed (the broken files), by design
        outcome.problems.append(f"the reference run exited with {code}; see {log}")
        return outcome
    reference = target.snapshot(reference_out)
    expected = images + len(BAD_FILES)
    if len(reference) != expected:
        outcome.problems.append(f"the reference holds {len(reference)} rows, not {expected}")
    say(f"{target.name}: reference run {outcome.reference_s:.1f} s, first commit after {startup_s:.1f} s, "
        f"{len(reference)} rows")

    ignore = ("error_rows",)  # checked on its own below
    # One commit's share of the reference run's work: a kill lands up to this long after a commit.
    commit_s = max(outcome.reference_s - startup_s, 0.05) / max(target.progress(reference_out), 1)
    while outcome.kills < kills:
        before = target.progress(out)
        run = launcher.start(target.argv(out), log)
        outcome.runs += 1
        t_start = time.monotonic()
        if rng.random() < startup_share:
            moment = "start-up"
            # A random moment of the start-up (as long as the reference run's), or the first commit if that
            # comes sooner: start-ups vary with the load, and a kill that waits past one is no start-up kill.
            deadline = t_start + rng.uniform(0.0, startup_s)
            while time.monotonic() < deadline and not run.done() and target.progress(out) == before:
                time.sleep(0.005)
        else:
            commits = rng.randint(1, 2)
            moment = f"{commits} commit{'s' if commits != 1 else ''} in"
            deadline = t_start + run_limit_s
            while target.progress(out) < before + commits and not run.done() and time.monotonic() < deadline:
                time.sleep(0.005)
            pause_until = time.monotonic() + rng.uniform(0.0, commit_s)
            while time.monotonic() < pause_until and not run.done():
                time.sleep(0.005)
        if run.done():
            outcome.finished_before_kill += 1
            outcome.problems.append(f"run {outcome.runs} finished before its kill ({moment}): only "
                                    f"{outcome.kills} of {kills} kills landed; give more --images")
            break
        run.kill()
        at = time.monotonic() - t_start
        code = _finish(run, 60)
        outcome.kills += 1
        outcome.killed_in_startup += moment == "start-up"
        try:
            partial = target.snapshot(out)
        except Exception as exc:  # the output must open after every kill
            outcome.problems.append(f"after kill {outcome.kills} ({moment}, {at:.2f} s): {exc!r}")
            break
        outcome.kill_log.append(KillRecord(moment, round(at, 3), len(partial)))
        for problem in compare(partial, reference, partial=True, ignore=ignore):
            outcome.problems.append(f"after kill {outcome.kills}: {problem}")
        say(f"{target.name}: kill {outcome.kills} ({moment}, {at:.2f} s into the run, exit {code}): "
            f"{len(partial)} rows")

    run = launcher.start(target.argv(out), log)
    outcome.runs += 1
    code = _finish(run, run_limit_s)
    if code not in (0, 2):
        outcome.problems.append(f"the final run exited with {code}; see {log}")
    try:
        final = target.snapshot(out)
    except Exception as exc:
        outcome.problems.append(f"the final output does not open: {exc!r}")
        final = {}
    outcome.problems += compare(final, reference, partial=False, ignore=ignore)
    outcome.problems += target.complete(out)
    for row in final.values():
        if "error_rows" in row and row["error_rows"] != 1:
            outcome.notes.append(f"{row['image']} has {row['error_rows']} error rows (one per run that "
                                 "tried it)")
    outcome.total_s = time.monotonic() - started
    say(f"{target.name}: final run exit {code}, {len(final)} rows; {'OK' if outcome.ok else 'FAILED'}")
    return outcome


def run(targets: Sequence[str], *, kills: int, images: int | None, seed: int, spawn: str,
        work: Path | None = None, say: Callable[[str], object] = print) -> list[Outcome]:
    """Run the experiment for each of ``targets`` with one tiny model and one set of photos."""
    from blipkit.testing import make_tiny_checkpoint

    n_images = images if images is not None else max(12, 4 * kills)
    with tempfile.TemporaryDirectory(prefix="kill_resume_") as tmp:
        root = work or Path(tmp)
        model = make_tiny_checkpoint("builtin", root / "model")
        photos = root / "photos"
        make_photos(photos, n_images)
        launcher: Launcher = ForkLauncher() if spawn == "fork" else ExecLauncher()
        try:
            outcomes = []
            for i, name in enumerate(targets):
                folder = root / name
                folder.mkdir()
                target = make_target(name, photos, model)
                outcomes.append(run_experiment(target, launcher, folder, kills=kills, images=n_images,
                                               seed=seed + i, say=say))
            return outcomes
        finally:
            launcher.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--images", type=int, help="photos to process (default: 4 per kill, at least 12)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--spawn", choices=("exec", "fork"), default="exec")
    parser.add_argument("--workdir", type=Path, help="keep the outputs here (default: a temporary folder)")
    parser.add_argument("--json", action="store_true", help="print the outcomes as JSON")
    args = parser.parse_args(argv)

    targets = TARGETS if args.target == "all" else (args.target,)
    say: Callable[[str], object] = (lambda m: print(m, file=sys.stderr)) if args.json else print
    outcomes = run(targets, kills=args.kills, images=args.images, seed=args.seed, spawn=args.spawn,
                   work=args.workdir, say=say)
    if args.json:
        print(json.dumps([{**asdict(o), "ok": o.ok} for o in outcomes], indent=2))
    else:
        for o in outcomes:
            moments = Counter(k.moment for k in o.kill_log)
            print(f"\n{o.target}: {o.kills} kills over {o.runs} runs ({dict(moments)}), "
                  f"{o.images} images + {len(BAD_FILES)} broken files; reference run {o.reference_s:.1f} s, "
                  f"whole experiment {o.total_s:.0f} s")
            print(f"  rows after each kill: {[k.rows_after for k in o.kill_log]}")
            for note in o.notes:
                print(f"  note: {note}")
            for problem in o.problems:
                print(f"  PROBLEM: {problem}")
            print("  OK: the final output equals the uninterrupted run" if o.ok else "  FAILED")
    return 0 if all(o.ok for o in outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
