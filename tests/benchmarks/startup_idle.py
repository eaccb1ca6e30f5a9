"""Start-up and idle cost of the running app, on a real X server with a tray host.

Launch to tray (the tray icon or actions window shown), launch to "Ready." (the model loaded and said so),
then CPU and resident memory over ``--idle`` seconds with the model loaded and nothing asked for. The
baselines, measured in the same run: for the tray, a bare PySide6 tray app (a QSystemTrayIcon and nothing
else), so the ratio says what the assistant adds to Qt's own start; for "Ready.", a bare Python process
that imports the engine and loads the same model and does nothing else (what the app did after its tray
until the engine's imports began at launch).

    python tests/benchmarks/startup_idle.py                 # built-in model, 60 s idle
    python tests/benchmarks/startup_idle.py --model base    # BLIP-base (seeded random weights)
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "benchmarks")]

SHOWN = re.compile(r"startup shown_at=([\d.]+) tray=(\w+)")
TARGETS = {"tray_s": 1.5, "ready_s": 4.0, "idle_cpu_percent": 0.5, "rss_mb": {"builtin": 600, "base": 1200}}

BARE_TRAY = r"""
import sys, time
from PySide6.QtWidgets import QApplication, QSystemTrayIcon
from PySide6.QtGui import QIcon, QPixmap
app = QApplication(sys.argv)
pixmap = QPixmap(16, 16); pixmap.fill()
tray = QSystemTrayIcon(QIcon(pixmap)); tray.show()
print(f"shown_at={time.time():.3f}", flush=True)
"""


def bare_tray_seconds(env: dict[str, str]) -> float:
    started = time.time()
    out = subprocess.run([sys.executable, "-c", BARE_TRAY], env=env, capture_output=True, text=True,
                         timeout=60, check=True).stdout
    return float(out.split("shown_at=")[1]) - started


ENGINE_ALONE = r"""
import sys, time
started = float(sys.argv[2])
from assistant.describe import Describer
Describer(sys.argv[1], threads=1).load()
print(f"loaded_in={time.time() - started:.3f}", flush=True)
"""


def engine_alone_seconds(model: str, env: dict[str, str]) -> float:
    """A bare Python process that imports the engine and loads ``model``, nothing else: what the app's
    worker did, alone, after the tray was up, before its imports began at launch."""
    started = time.time()
    out = subprocess.run([sys.executable, "-c", ENGINE_ALONE, model, repr(started)], env=env,
                         capture_output=True, text=True, timeout=300, check=True).stdout
    return float(out.split("loaded_in=")[1])


def main(argv: list[str] | None = None) -> int:
    import psutil

    from desktop import COMMAND, app_env, start_tray_host, wait_for
    from xserver import xvfb

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="builtin")
    p.add_argument("--idle", type=float, default=60.0)
    args = p.parse_args(argv)
    model = args.model
    if model not in ("builtin",) and not Path(model).exists():
        from checkpoints import build_checkpoint

        model = str(build_checkpoint("caption", Path(tempfile.gettempdir()) / "blip-assistant-bench" /
                                     f"caption-{args.model}", size=args.model))
    with tempfile.TemporaryDirectory(prefix="startup-") as tmp, xvfb(1280, 800, wm=True) as server:
        work = Path(tmp)
        start_tray_host(server)
        env = app_env(server, work, BLIP_ASSISTANT_LOG_LEVEL="INFO")
        baseline = min(bare_tray_seconds(env) for _ in range(3))
        engine_alone = min(engine_alone_seconds(model, env) for _ in range(2))
        log_path, speech = work / "app.log", work / "speech.jsonl"
        with open(log_path, "wb") as out:
            launched = time.time()
            proc = subprocess.Popen([str(COMMAND), "--model", model, "--speech-log", str(speech)], env=env,
                                    stdout=out, stderr=subprocess.STDOUT)
        try:
            shown = wait_for(lambda: SHOWN.search(log_path.read_text()), 60, "the tray")
            wait_for(lambda: speech.exists() and '"Ready."' in speech.read_text(), 300, "Ready")
            said = next(json.loads(line) for line in speech.read_text().splitlines() if '"Ready."' in line)
            tray_s, ready_s = float(shown.group(1)) - launched, said["started_at"] - launched
            asked_s = said["requested_at"] - launched  # the model loaded; the rest is speech
            process = psutil.Process(proc.pid)
            time.sleep(2.0)  # let the last start-up work settle
            before = process.cpu_times()
            time.sleep(args.idle)
            after = process.cpu_times()
            # max: the float sum of the clock-tick times can come out a hair below zero ("-0.00 %")
            cpu = max(0.0, (after.user + after.system - before.user - before.system) / args.idle * 100)
            rss_mb = process.memory_info().rss / 2**20
            threads = process.num_threads()
        finally:
            proc.terminate()
            proc.wait(10)
    rss_target = TARGETS["rss_mb"].get(args.model)
    print(f"model {args.model}; tray shown: {shown.group(2) == 'True'}")
    print(f"  launch to tray   {tray_s:6.2f} s  (target {TARGETS['tray_s']} s; bare PySide6 tray "
          f"{baseline:.2f} s, ratio {tray_s / baseline:.2f})")
    print(f"  launch to ready  {ready_s:6.2f} s  (target {TARGETS['ready_s']} s; model loaded at "
          f"{asked_s:.2f} s, speech started {ready_s - asked_s:.2f} s later; the engine alone, imported "
          f"and loaded in a bare process: {engine_alone:.2f} s, ratio {ready_s / engine_alone:.2f})")
    print(f"  idle CPU         {cpu:6.2f} % of one core over {args.idle:.0f} s "
          f"(target {TARGETS['idle_cpu_percent']} %)")
    print(f"  resident memory  {rss_mb:6.0f} MB" + (f"  (target {rss_target} MB)" if rss_target else "")
          + f"; {threads} threads")
    return 0


if __name__ == "__main__":
    sys.exit(main())
