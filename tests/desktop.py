"""A real desktop for the app's end-to-end tests: Xvfb with a window manager and a tray host, a private
session bus with the accessibility bus, and the assistant started as a user starts it (the installed
``blip-assistant`` command), speaking into WAV files and a JSONL speech log."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from xserver import XServer, require

COMMAND = Path(sys.executable).parent / "blip-assistant"


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def start_tray_host(server: XServer) -> subprocess.Popen:
    """trayer: without a window manager and a tray host, Qt reports no system tray."""
    require("trayer")
    proc = subprocess.Popen(["trayer", "--edge", "top", "--align", "right", "--widthtype", "request",
                             "--height", "24", "--transparent", "false"],
                            env=server.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server.procs.append(proc)
    time.sleep(0.3)
    return proc


@dataclass
class RunningApp:
    proc: subprocess.Popen
    home: Path
    speech_log: Path
    wav_dir: Path
    env: dict[str, str]
    output: Path

    def utterances(self) -> list[dict[str, Any]]:
        if not self.speech_log.exists():
            return []
        rows = []
        for line in self.speech_log.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                rows.append(json.loads(line))
        return rows

    def wav_index(self) -> list[dict[str, Any]]:
        index = self.wav_dir / "index.jsonl"
        if not index.exists():
            return []
        return [json.loads(line) for line in index.read_text(encoding="utf-8").splitlines() if line.strip()]

    def wait_said(self, match: Callable[[dict[str, Any]], bool], timeout: float, what: str,
                  after: int = 0) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            self.check_alive()
            return next((u for u in self.utterances()[after:] if match(u)), None)

        return wait_for(found, timeout, what)

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"the app exited with {self.proc.returncode}:\n{self.log_text()}")

    def log_text(self) -> str:
        """The app's output, and where it was if it crashed (``logs/crash.log``, written by the app)."""
        text = self.output.read_text(errors="replace")[-6000:] if self.output.exists() else ""
        crash = self.home / "logs" / "crash.log"
        if crash.exists() and crash.stat().st_size:
            text += "\n--- logs/crash.log ---\n" + crash.read_text(errors="replace")[:6000]
        return text

    def trigger(self, action: str, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(COMMAND), "trigger", action, *args], env=self.env, capture_output=True,
                              text=True, timeout=30, check=False)

    def quit(self, timeout: float = 20) -> int:
        """Quit by the trigger command; the exit status (a crash before it: printed with where it was)."""
        if self.proc.poll() is not None and self.proc.returncode < 0:
            print(f"the app had died by signal {-self.proc.returncode}:\n{self.log_text()}")
        if self.proc.poll() is None:
            self.trigger("quit")
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.send_signal(signal.SIGKILL)
                self.proc.wait(5)
                raise AssertionError(f"the app did not quit:\n{self.log_text()}") from None
        return self.proc.returncode


def app_env(server: XServer, tmp: Path, first_run_done: bool = True, **extra: str) -> dict[str, str]:
    import atexit
    import shutil
    import tempfile

    # A short folder: a Unix socket's path is limited to about 100 bytes, and pytest's are long.
    runtime = Path(tempfile.mkdtemp(prefix="ba-", dir="/tmp"))
    atexit.register(shutil.rmtree, runtime, True)  # not left in /tmp by every test run
    alsa = tmp / "asound.conf"
    alsa.write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    env = {**server.env, "BLIP_ASSISTANT_HOME": str(tmp / "home"), "XDG_RUNTIME_DIR": str(runtime),
           "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "QT_QPA_PLATFORM": "xcb",
           "ALSA_CONFIG_PATH": str(alsa), "PYTHONUNBUFFERED": "1", **extra}
    env.pop("QT_QPA_PLATFORM_PLUGIN_PATH", None)
    if first_run_done:
        # A user who has met the welcome already: tests that are not about it start on a quiet app.
        home = tmp / "home"
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        settings = home / "settings.json"
        if not settings.exists():
            settings.write_text(json.dumps({"version": 1, "settings": {"app.show_welcome": False}}))
    return env


@contextlib.contextmanager
def running_app(server: XServer, tmp: Path, *args: str, env: dict[str, str] | None = None,
                ready_timeout: float | None = 120, wav: bool = True,
                ready: Callable[[dict[str, Any]], bool] | None = None) -> Iterator[RunningApp]:
    """The app, started by its command; ``wav=False`` speaks with its own voice (to the ALSA device that
    ``app_env`` makes silent) instead of into WAV files. ``ready``: the utterance that means it is up
    ("Ready." unless given: a test of a model that cannot load waits for the words saying so)."""
    if not COMMAND.exists():
        pytest.skip("no blip-assistant console script next to this Python")
    env = env or app_env(server, tmp)
    speech_log, wav_dir, output = tmp / "speech.jsonl", tmp / "wav", tmp / "app.log"
    with open(output, "wb") as out:
        command = [str(COMMAND), "--speech-log", str(speech_log),
                   *(["--speech-to-wav", str(wav_dir)] if wav else []), *args]
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    app = RunningApp(proc, Path(env["BLIP_ASSISTANT_HOME"]), speech_log, wav_dir, env, output)
    try:
        if ready_timeout is not None:  # None: yielded at once (a start that hands it a file says other words)
            app.wait_said(ready or (lambda u: u["text"] == "Ready."), ready_timeout, "the app to say Ready")
        yield app
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


def sox_seconds(path: Path) -> float:
    if shutil.which("soxi"):
        return float(subprocess.run(["soxi", "-D", str(path)], capture_output=True, text=True,
                                    check=True).stdout)
    import wave

    with wave.open(str(path)) as w:
        return w.getnframes() / w.getframerate()


def free_env_of_display() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
