"""Nothing lost: kill -9 in the middle of saving corrections, personalizing and changing settings, then
check what a restart finds, again and again (issue #28, item 4).

Each round starts up to three processes on one data folder, the way the app's parts write it:

- a corrections writer: the app's save path (``CorrectionStore.add``, what F2 + Enter calls), in a loop;
  it prints each id only once ``add`` has returned, which is when the app says "Correction saved";
- a personalization run: ``trainer.personalize`` on a tiny model (what "Personalize now" runs in its own
  process), which goes on from the run a previous kill left, and saves and activates a new version when
  it finishes;
- a settings writer: ``Settings.update`` (what the settings window's OK calls) with a new value each time,
  printed once saved;

and kills them with SIGKILL at a random moment. One round in three runs the personalization alone, with a
longer window: beside the writers it is mostly killed while it reads the growing corrections; alone it
is killed while training, checking or saving too, and goes on from the run the previous kill left.

The restart then checks, as the app's start does:
the corrections database is intact and holds every confirmed correction exactly once; the settings
file loads without a "damaged" notice and holds the last confirmed value (or the one in flight); no
personal version is half there, and the active personal model loads (``Describer.load``, in a fresh
process) as the version ``active.json`` names.

    python tests/reliability/kill_restart.py --rounds 20 --seed 0
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CORRECTIONS = textwrap.dedent("""
    import random, sys, time
    from PIL import Image
    from assistant.personal.corrections import CorrectionStore
    store = CorrectionStore()
    n = int(sys.argv[1])
    while True:
        caption = f"round correction {n}"
        cid = store.add(Image.new("RGB", (96, 64), (n % 256, 40, 200)), caption)
        print(cid, caption, flush=True)  # only once add() returned: saved
        n += 1
        # a burst, then a few a second: kills land inside add(), and the corrections a personalization
        # run reads (all of them, every round) stay in the hundreds
        time.sleep(random.uniform(0, 0.02) if n % 40 < 10 else random.uniform(0.2, 0.6))
""")

PERSONALIZE = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from assistant.personal import trainer
    # accepts whatever it learns (a random tiny model cannot really learn): a finished run saves a version
    recipe = trainer.Recipe(steps=6, lr=0.05, min_gain=-0.99, max_general_loss=1e6, checkpoint_every=2)
    outcome = trainer.personalize(sys.argv[1], recipe=recipe, progress=lambda t, f: print(t, flush=True))
    print("VERSION", outcome.version, flush=True)
""")

SETTINGS = textwrap.dedent("""
    import random, sys, time
    from assistant.settings import Settings
    settings = Settings()
    n = int(sys.argv[1])
    while True:
        rate = 100 + n % 300
        print("TRY", rate, flush=True)
        settings.update({"speech.rate": rate, "describe.detail": "detailed" if n % 2 else "brief"})
        print("SAVED", rate, flush=True)
        n += 1
        time.sleep(random.uniform(0, 0.02))
""")

CHECK_MODEL = textwrap.dedent("""
    import json, sys
    from assistant.describe import Describer
    from assistant.personal import versions
    versions.clean_temporary()  # what a personalization run does first; the app's start leaves them
    describer = Describer(sys.argv[1])
    describer.load()
    from PIL import Image
    ok = describer.describe(Image.new("RGB", (40, 40), (20, 120, 200))).ok
    print(json.dumps({"active": versions.active_choice(), "loaded": getattr(describer.personal_version,
                      "number", None), "notices": describer.notices, "described": ok}))
""")


@dataclass
class Figures:
    rounds: int = 0
    corrections_confirmed: int = 0
    corrections_lost: int = 0
    corrections_duplicated: int = 0
    unconfirmed_in_flight_kept: int = 0  # the one add() that had committed but not yet printed
    settings_confirmed: int = 0
    settings_damaged: int = 0
    settings_wrong_value: int = 0
    personal_runs_killed: int = 0
    personal_versions_saved: int = 0
    personal_kill_phases: dict[str, int] = field(default_factory=dict)
    active_model_failed_to_load: int = 0
    half_written_versions: int = 0
    integrity_failures: int = 0
    seconds: float = 0.0
    kill_after_s: list[float] = field(default_factory=list)
    scenarios: dict[str, int] = field(default_factory=dict)


class Reader:
    """Collects a child's stdout lines in a thread (a killed child's last lines included)."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(proc,), daemon=True)
        self._thread.start()

    def _read(self, proc: subprocess.Popen) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.endswith("\n"):  # a line cut by the kill was never fully said: not a confirmation
                self.lines.append(line.rstrip("\n"))

    def join(self) -> list[str]:
        self._thread.join(10)
        return self.lines


def _env(home: Path) -> dict[str, str]:
    return {**os.environ, "BLIP_ASSISTANT_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}


def _start(code: str, *args: str, home: Path) -> tuple[subprocess.Popen, Reader]:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], env=_env(home), cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return proc, Reader(proc)


def _phase(lines: list[str]) -> str:
    """Where the personalization run was when it was killed, from its last progress line."""
    if any(line.startswith("VERSION") for line in lines):
        return "finished"
    last = next((line for line in reversed(lines) if line.strip()), "")
    lowered = last.lower()
    if not last:
        return "starting (imports)"
    if "step" in lowered:
        return "training"
    if "check" in lowered or "kept aside" in lowered or "saving" in lowered or "measur" in lowered:
        return "checking or saving"
    return "preparing"


def tiny_model(folder: Path) -> Path:
    from assistant.vision.testing import make_tiny_checkpoint

    return make_tiny_checkpoint("builtin", folder / "tiny-builtin")


def prepare(home: Path, model: Path) -> None:
    """Six corrections and a first personal version, so that every round has an active one to keep."""
    setup = textwrap.dedent("""
        from PIL import Image
        from assistant.personal.corrections import CorrectionStore
        with CorrectionStore() as store:
            for i in range(6):
                store.add(Image.new("RGB", (40, 40), (i * 30, 90, 200)), "a zebra on a purple moon")
    """)
    subprocess.run([sys.executable, "-c", setup], env=_env(home), cwd=ROOT, check=True)
    done = subprocess.run([sys.executable, "-c", PERSONALIZE, str(model)], env=_env(home), cwd=ROOT,
                          capture_output=True, text=True, check=True)
    assert "VERSION 1" in done.stdout, done.stdout


def run(rounds: int, seed: int, home: Path, model: Path, max_kill_s: float = 18.0,
        log: bool = True) -> Figures:
    rng = random.Random(seed)
    figures = Figures()
    started = time.monotonic()
    confirmed: dict[int, str] = {}  # id -> caption, every correction any round was told is saved
    next_n = 0
    setting_n = 0
    expected_rate: int | None = None
    for round_no in range(1, rounds + 1):
        # All three at once, or a personalization run alone (it reads every correction first, so with
        # writers beside it the kill would mostly land in its preparation; alone it reaches training,
        # checking and saving, and goes on from the run the previous kill left).
        scenario = rng.choice(["all", "all", "personalize"])
        figures.scenarios[scenario] = figures.scenarios.get(scenario, 0) + 1
        personal, p_out = _start(PERSONALIZE, str(model), home=home)
        writers = scenario == "all"
        corrections, c_out = _start(CORRECTIONS, str(next_n), home=home) if writers else (None, None)
        settings, s_out = _start(SETTINGS, str(setting_n), home=home) if writers else (None, None)
        kill_after = rng.uniform(0.3, max_kill_s if writers else 1.6 * max_kill_s)
        time.sleep(kill_after)
        procs = [p for p in (corrections, personal, settings) if p is not None]
        for proc in procs:
            os.kill(proc.pid, signal.SIGKILL)
        for proc in procs:
            proc.wait(10)
        figures.kill_after_s.append(round(kill_after, 2))
        lines = c_out.join() if c_out else []
        for line in lines:
            cid, caption = line.split(" ", 1)
            confirmed[int(cid)] = caption
        next_n += len(lines) + 1
        p_lines = p_out.join()
        phase = _phase(p_lines)
        figures.personal_kill_phases[phase] = figures.personal_kill_phases.get(phase, 0) + 1
        figures.personal_runs_killed += phase != "finished"
        figures.personal_versions_saved += phase == "finished"
        s_lines = s_out.join() if s_out else []
        saved = [int(line.split()[1]) for line in s_lines if line.startswith("SAVED")]
        tried = [int(line.split()[1]) for line in s_lines if line.startswith("TRY")]
        figures.settings_confirmed += len(saved)
        setting_n += len(tried) + 1
        in_flight = tried[-1] if tried and (not saved or tried[-1] != saved[-1]) else None
        if saved:
            expected_rate = saved[-1]

        # --- the restart ---
        db = sqlite3.connect(home / "corrections.sqlite3")
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            figures.integrity_failures += 1
        rows = db.execute("SELECT id, caption FROM corrections").fetchall()
        db.close()
        by_id = dict(rows)
        captions = [c for _, c in rows]
        figures.corrections_lost += sum(by_id.get(cid) != caption for cid, caption in confirmed.items())
        figures.corrections_duplicated += sum(captions.count(c) - 1 for c in set(captions)
                                              if c.startswith("round correction") and captions.count(c) > 1)
        for cid, caption in rows:  # a correction committed in the instant before the kill: now confirmed
            if caption.startswith("round correction") and cid not in confirmed:
                confirmed[cid] = caption
                figures.unconfirmed_in_flight_kept += 1

        from assistant.settings import Settings

        loaded = Settings(home / "settings.json")
        if loaded.notice:
            figures.settings_damaged += 1
        elif expected_rate is not None and loaded["speech.rate"] not in (expected_rate, in_flight):
            figures.settings_wrong_value += 1
        if in_flight is not None and loaded["speech.rate"] == in_flight:
            expected_rate = in_flight  # it was saved, just not yet printed

        check = subprocess.run([sys.executable, "-c", CHECK_MODEL, str(model)], env=_env(home), cwd=ROOT,
                               capture_output=True, text=True, timeout=300)
        try:
            state = json.loads(check.stdout.strip().splitlines()[-1])
        except (IndexError, ValueError):
            state = {"active": "?", "loaded": None, "notices": [check.stderr[-500:]], "described": False}
        ok = (check.returncode == 0 and state["described"] and not state["notices"]
              and str(state["loaded"]) == state["active"])
        figures.active_model_failed_to_load += not ok
        problems = _version_problems(home)
        figures.half_written_versions += len(problems)
        figures.rounds = round_no
        if log:
            print(f"round {round_no:2d} ({scenario}): killed after {kill_after:4.2f} s; corrections "
                  f"confirmed {len(lines):3d} (total {len(confirmed)}, in db {len(rows)}); "
                  f"settings saved {len(saved)}; "
                  f"personalization {phase}; active personal model {state['active']} loaded "
                  f"{state['loaded']}{'' if ok else ' FAILED ' + json.dumps(state)}"
                  f"{'; ' + '; '.join(problems) if problems else ''}", flush=True)
    figures.corrections_confirmed = len(confirmed)
    figures.seconds = round(time.monotonic() - started, 1)
    return figures


def _version_problems(home: Path) -> list[str]:
    code = ("import json; from assistant.personal import versions; "
            "print(json.dumps(versions.versions()[1]))")
    out = subprocess.run([sys.executable, "-c", code], env=_env(home), cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else [out.stderr[-300:]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-kill-s", type=float, default=18.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="kill-restart-") as tmp:
        home = Path(tmp) / "home"
        model = tiny_model(Path(tmp))
        prepare(home, model)
        figures = run(args.rounds, args.seed, home, model, args.max_kill_s)
    print(json.dumps(asdict(figures), indent=2))
    return 1 if failures(figures) else 0


def failures(figures: Figures) -> int:
    return (figures.corrections_lost + figures.corrections_duplicated + figures.settings_damaged
            + figures.settings_wrong_value + figures.active_model_failed_to_load
            + figures.half_written_versions + figures.integrity_failures)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
