"""Nothing leaves the machine: the whole app flow, and the headless commands, run with every network
attempt recorded (Python audit events, in every process the app starts), and none is made."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from desktop import app_env, running_app
from xserver import require, xvfb

ROOT = Path(__file__).resolve().parents[1]
HOOK = Path(__file__).resolve().parent / "privacy_hook"
COMMAND = Path(sys.executable).parent / "blip-assistant"


def _watched(env: dict[str, str], log: Path) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(HOOK), env.get("PYTHONPATH")])),
            "NETWORK_ATTEMPTS_LOG": str(log)}


def test_the_hook_sees_a_network_attempt(tmp_path: Path) -> None:
    """The check itself can fail: a process that does reach for the network is recorded."""
    log = tmp_path / "attempts.log"
    code = ("import socket\ntry:\n    socket.create_connection(('127.0.0.1', 9), timeout=0.2)\n"
            "except OSError:\n    pass")
    subprocess.run([sys.executable, "-c", code], env=_watched(dict(os.environ), log), check=True, timeout=30)
    assert "socket.connect" in log.read_text()


def test_headless_describe_and_ask_make_no_network_attempt(tmp_path: Path) -> None:
    log = tmp_path / "attempts.log"
    env = _watched({**os.environ, "OMP_NUM_THREADS": "1", "BLIP_ASSISTANT_HOME": str(tmp_path / "home")}, log)
    env.pop("HF_HUB_OFFLINE", None)  # the assistant must not need this switch to stay off the network
    photo = str(ROOT / "resources" / "images" / "coffee.jpg")
    for args in (["describe", photo, "--json"], ["ask", photo, "is there a cup?", "--json"]):
        result = subprocess.run([str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    assert not log.exists() or log.read_text() == "", log.read_text()


@pytest.mark.desktop
def test_the_app_flow_makes_no_network_attempt(tmp_path: Path) -> None:
    require("Xvfb", "openbox", "xdotool")
    log = tmp_path / "attempts.log"
    with xvfb(1280, 800, wm=True) as server:
        from PIL import Image

        photo = tmp_path / "coffee.png"  # Tk shows PNG, not JPEG
        Image.open(ROOT / "resources" / "images" / "coffee.jpg").save(photo)
        server.show_image(photo, "coffee", 100, 100)
        time.sleep(0.3)
        env = _watched(app_env(server, tmp_path), log)
        env.pop("HF_HUB_OFFLINE", None)
        with running_app(server, tmp_path, env=env) as app:  # the built-in model, the default
            for key, action in (("ctrl+alt+d", "describe-screen"), ("ctrl+alt+w", "describe-window")):
                before = len(app.utterances())
                server.xdotool("key", key)
                app.wait_said(lambda u, a=action: u["action"] == a, 60, action, after=before)
            assert app.trigger("repeat").returncode == 0
            assert app.quit() == 0
    assert not log.exists() or log.read_text() == "", log.read_text()
