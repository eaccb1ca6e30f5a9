"""Choosing and downloading a model in the real app, by keyboard, on a real X server: Settings, Alt+M
(Models...), Down to BLIP base, Alt+D (the size is said), Alt+S (start), Alt+U (use), Enter (OK), and the
next description comes from the downloaded model. The "hub" is a local server (tests/hub_server.py); every
network attempt the app makes is recorded (tests/privacy_hook) and must go to it alone, and only after the
user asked."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from desktop import app_env, running_app, wait_for
from hub_server import fake_hub, files_of
from xserver import require, xvfb

pytestmark = pytest.mark.desktop
HOOK = Path(__file__).resolve().parent / "privacy_hook"
BASE = "Salesforce/blip-image-captioning-base"


def test_a_model_is_downloaded_and_used_by_keyboard(tmp_path: Path, tiny_models) -> None:
    require("Xvfb", "openbox", "xdotool")
    attempts = tmp_path / "attempts.log"
    with xvfb(1280, 800, wm=True) as server, fake_hub({BASE: files_of(tiny_models["caption"])}) as hub:
        home = tmp_path / "home"
        home.mkdir(mode=0o700)
        (home / "settings.json").write_text(json.dumps({"version": 1, "settings": {
            "app.show_welcome": False, "model.name": str(tiny_models["builtin"])}}))
        env = app_env(server, tmp_path, HF_ENDPOINT=hub.url, NETWORK_ATTEMPTS_LOG=str(attempts),
                      PYTHONPATH=os.pathsep.join(filter(None, [str(HOOK), os.environ.get("PYTHONPATH")])))
        env.pop("HF_HUB_OFFLINE")  # downloads are on, as for a user; the app must not need the switch
        with running_app(server, tmp_path, env=env) as app:
            assert not attempts.exists(), attempts.read_text()  # nothing before the user asks

            def active() -> str:
                return server.active_window_name()

            def said(text: str, timeout: float = 30) -> dict:
                try:
                    return app.wait_said(lambda u: text in u["text"], timeout, repr(text), after=before)
                except AssertionError as exc:
                    heard = [u["text"] for u in app.utterances()]
                    raise AssertionError(f"{exc}; said: {heard}; {app.log_text()[-2000:]}") from None

            assert app.trigger("settings").returncode == 0
            wait_for(lambda: "Settings" in active(), 20, "the settings window")
            time.sleep(0.5)
            server.xdotool("key", "alt+m")  # Models...
            wait_for(lambda: "Models" in active(), 20, "the Models window")
            time.sleep(0.5)  # the window manager maps it first; Qt gives it the keyboard focus just after
            before = len(app.utterances())
            server.xdotool("key", "Home", "Down", "alt+d")  # BLIP base, Download...: the size comes first
            size = said("Press Start download")["text"]
            total = sum(p.stat().st_size for p in tiny_models["caption"].iterdir() if p.suffix in
                        (".json", ".txt", ".safetensors"))
            assert f"{total:,} bytes" in size, size
            assert not any("/resolve/" in s.path for s in hub.log)
            server.xdotool("key", "alt+s")  # Start download
            said("downloaded and verified")
            assert (home / "models" / "base" / "blip-assistant-model.json").is_file()
            server.xdotool("key", "alt+u")  # Use this model
            said("Salesforce BLIP base chosen")
            wait_for(lambda: "Settings" in active(), 20, "the settings window again")
            server.xdotool("key", "Return")  # OK
            said("Settings saved.")
            said("Salesforce BLIP base is ready.", 60)
            before = len(app.utterances())
            server.xdotool("key", "ctrl+alt+d")
            app.wait_said(lambda u: u["action"] == "describe-screen", 60, "a description", after=before)
            assert app.quit() == 0
        assert json.loads((home / "settings.json").read_text())["settings"]["model.name"] == "base"
    port = hub.url.rsplit(":", 1)[1]
    records = attempts.read_text().splitlines()
    assert records and all(f"'127.0.0.1', {port})" in r or "getaddrinfo '127.0.0.1'" in r for r in records), \
        records
