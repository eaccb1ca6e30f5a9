"""The conversation as a screen reader reads it: a question typed in the result window (xdotool), the
answer spoken, and the transcript read over AT-SPI from outside the app, line by line."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from a11y_bus import SYSTEM_PYTHON, accessibility_bus
from desktop import app_env, running_app, wait_for
from xserver import require, xvfb

pytestmark = pytest.mark.desktop
APP = "BLIP Assistant"
PROBE = Path(__file__).with_name("atspi_text_probe.py")


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory):
    require("Xvfb", "openbox", "xdotool", "espeak-ng")
    with xvfb(1280, 800, wm=True) as server, \
            accessibility_bus(server.env, tmp_path_factory.mktemp("a11y-ask")) as bus:
        yield server, bus


def _transcript(bus) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env.update(bus.env)
    env["PATH"] = "/usr/bin:/bin"
    done = subprocess.run([SYSTEM_PYTHON, str(PROBE), APP, "Results"], env=env, capture_output=True,
                          text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def test_questions_and_answers_are_read_line_by_line(desktop, tmp_path: Path, tiny_models) -> None:
    server, bus = desktop
    photo = tmp_path / "garden.png"
    Image.effect_noise((320, 240), 50).convert("RGB").save(photo)
    env = app_env(server, tmp_path, **bus.env)
    with running_app(server, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
        before = len(app.utterances())
        assert app.trigger("open-image", str(photo)).returncode == 0
        described = app.wait_said(lambda u: u["action"] == "open-image", 60, "the description", after=before)
        before = len(app.utterances())
        server.xdotool("key", "ctrl+alt+q")
        wait_for(lambda: _transcript(bus).get("found"), 20, "the result window's transcript over AT-SPI")
        time.sleep(0.5)
        server.xdotool("type", "--delay", "20", "is it a cat or a dog")
        server.xdotool("key", "Return")
        answer = app.wait_said(lambda u: u["action"] == "ask", 60, "the answer", after=before)
        assert answer["text"].lower().rstrip(".").endswith(("a cat", "a dog")), answer
        read = wait_for(lambda: (lambda t: t if f"Answer: {answer['text']}" in t.get("text", "") else None)(
            _transcript(bus)), 20, "the answer in the transcript")
        lines = read["text"].splitlines()
        asked = "You asked: is it a cat or a dog"
        assert lines[-3:] == [described["text"], asked, f"Answer: {answer['text']}"], lines
        assert app.quit() == 0
