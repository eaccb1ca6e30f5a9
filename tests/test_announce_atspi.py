"""Qt accessibility announcements as a screen reader receives them: the real app on a real X server, and an
AT-SPI ``object:announcement`` listener (the system Python's pyatspi, what Orca uses) outside its process.

While the result window has the focus, a new answer is announced; when the settings are saved, "Settings
saved." is. The speech route says the same (the announcement is an addition, never the only route).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from a11y_bus import SYSTEM_PYTHON, accessibility_bus
from desktop import app_env, running_app, wait_for
from xserver import require, xvfb

pytestmark = pytest.mark.desktop
LISTENER = Path(__file__).with_name("atspi_announce_listener.py")


@contextlib.contextmanager
def announcements(bus_env: dict[str, str], out: Path, seconds: float = 120):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(bus_env)
    env["PATH"] = "/usr/bin:/bin"
    proc = subprocess.Popen([SYSTEM_PYTHON, str(LISTENER), str(seconds), str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        wait_for(lambda: out.exists() and '"ready"' in out.read_text(), 20, "the AT-SPI listener")
        yield lambda: [json.loads(line) for line in out.read_text().splitlines()[1:] if line.strip()]
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def _heard(events: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    return next((e for e in events if text in e["text"]), None)


def test_a_screen_reader_hears_announcements_from_the_focused_window(tmp_path: Path, tiny_models) -> None:
    require("Xvfb", "openbox", "xdotool")
    with xvfb(1280, 800, wm=True) as server, accessibility_bus(server.env, tmp_path / "a11y") as bus, \
            announcements(bus.env, tmp_path / "announced.jsonl") as heard:
        env = app_env(server, tmp_path, **bus.env)
        # announcements are the user's choice (off by default: the speech output says the same)
        settings = Path(env["BLIP_ASSISTANT_HOME"]) / "settings.json"
        settings.write_text(json.dumps({"version": 1, "settings": {"app.show_welcome": False,
                                                                   "speech.announce": True}}))
        with running_app(server, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
            # The result window, brought forward with the focus in its question field (the Ask action).
            assert app.trigger("ask").returncode == 0
            wait_for(lambda: "Results" in server.active_window_name(), 20,
                     "the result window to have the focus")
            before = len(app.utterances())
            server.xdotool("type", "--delay", "20", "what is this?")
            server.xdotool("key", "Return")
            said = app.wait_said(lambda u: u["action"] == "ask", 60, "the answer", after=before)
            event = wait_for(lambda: _heard(heard(), said["text"]), 20, "the answer's announcement")
            assert event["type"].startswith("object:announcement") and event["app"] == "BLIP Assistant"

            # Settings: OK by keyboard; "Settings saved." is spoken and announced.
            assert app.trigger("settings").returncode == 0
            wait_for(lambda: "Settings" in server.active_window_name(), 20,
                     "the settings window to have the focus")
            time.sleep(0.3)
            before = len(app.utterances())
            server.xdotool("key", "Return")  # OK is the default button
            app.wait_said(lambda u: u["text"] == "Settings saved.", 20, "Settings saved", after=before)
            wait_for(lambda: _heard(heard(), "Settings saved."), 20, "the saved announcement")
            assert app.quit() == 0
