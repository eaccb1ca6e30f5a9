"""The app as a screen reader sees it: its accessibility tree read over AT-SPI from outside its process.

A real X server, a private session bus with the accessibility bus, the app started by its command with
``QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1``, and the system Python's pyatspi (what Orca uses) listing the
app's windows and controls and pressing a button through AT-SPI's action interface.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from a11y_bus import AccessibilityBus, accessibility_bus
from desktop import app_env, running_app, wait_for
from xserver import require, xvfb

pytestmark = pytest.mark.desktop
APP = "BLIP Assistant"


@pytest.fixture(scope="module")
def desktop(tmp_path_factory: pytest.TempPathFactory):
    require("Xvfb", "openbox", "xdotool", "espeak-ng")
    # No tray host on purpose: the app then shows its actions window, whose buttons are in the tree.
    with xvfb(1280, 800, wm=True) as server, \
            accessibility_bus(server.env, tmp_path_factory.mktemp("a11y-run")) as bus:
        yield server, bus


def _nodes(bus: AccessibilityBus) -> list[dict[str, Any]]:
    return bus.probe("dump", APP)["nodes"]


def _named(nodes: list[dict[str, Any]], role: str, name: str) -> dict[str, Any] | None:
    return next((n for n in nodes if n["role"] == role and n["name"] == name), None)


def _window(nodes: list[dict[str, Any]], title_part: str) -> list[dict[str, Any]]:
    """The nodes inside the first top-level window whose name contains ``title_part``."""
    tops = [n for n in nodes if n["depth"] == 1 and title_part in n["name"]]
    if not tops:
        return []
    prefix = tops[0]["path"]
    return [n for n in nodes if n["path"][:len(prefix)] == prefix]


def test_a_screen_reader_finds_every_window_and_control_by_name(desktop, tmp_path: Path,
                                                                  tiny_models) -> None:
    server, bus = desktop
    env = app_env(server, tmp_path, **bus.env)
    with running_app(server, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
        # The actions window (no tray here): every action a named push button with a description.
        nodes = wait_for(lambda: (n := _nodes(bus)) and _named(n, "push button", "Describe screen") and n,
                         20, "the actions window in the AT-SPI tree")
        actions_window = _window(nodes, APP)  # the window's accessible name
        buttons = [n for n in actions_window if n["role"] == "push button"]
        assert len(buttons) >= 10, [n["name"] for n in actions_window]
        assert all(b["name"] and b["description"] for b in buttons), buttons
        assert "Press" in _named(nodes, "push button", "Describe screen")["actions"]

        # Settings, opened as a user would from a terminal: its controls carry the spec's labels and help.
        assert app.trigger("settings").returncode == 0
        nodes = wait_for(lambda: (n := _nodes(bus)) and _window(n, "Settings") and n, 20,
                         "the settings window in the AT-SPI tree")
        settings = _window(nodes, "Settings")
        rate = next((n for n in settings if n["name"] == "Speech rate" and n["role"] == "spin button"), None)
        assert rate is not None, sorted({(n["role"], n["name"]) for n in settings})
        assert rate["description"].startswith("Words per minute")
        # What Orca says for a control: its name, or (Qt's combo boxes on Linux) the label linked to it.
        focusable = [n for n in settings if n["focusable"] and n["showing"]]
        unnamed = [n for n in focusable if not n["name"] and not n["labelled_by"]]
        assert not unnamed, unnamed
        route = next(n for n in settings if n["role"] == "combo box" and n["name"] == "auto")
        assert any(label.startswith("Speech output") for label in route["labelled_by"]), route
        for label in ("Text size", "Keep no history", "OK", "Cancel"):
            assert any(n["name"] == label for n in settings), (label, {n["name"] for n in settings})

        # Cancel pressed through AT-SPI's action interface, as Orca does on Enter: the window goes away.
        pressed = bus.probe("press", APP, "Cancel", "Settings")
        assert pressed["pressed"] == "Cancel", pressed
        wait_for(lambda: not (_window(_nodes(bus), "Settings") or [{"showing": False}])[0]["showing"], 10,
                 "the settings window to close")
        visible = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", "^Settings"],
                                 env=server.env, capture_output=True, text=True, timeout=10, check=False)
        assert not visible.stdout.strip(), visible.stdout  # gone from the screen too, not only from the tree
        assert app.quit() == 0


def test_a_hotkey_recorded_by_pressing_it_works_at_once(desktop, tmp_path: Path, tiny_models) -> None:
    """Settings by keyboard and AT-SPI only: focus the hotkey field, press the new combination, hear it in
    words, press OK; the new hotkey describes the screen without a restart, and the old one is free."""
    import json

    server, bus = desktop
    env = app_env(server, tmp_path, **bus.env)
    with running_app(server, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
        assert app.trigger("settings").returncode == 0
        wait_for(lambda: _window(_nodes(bus), "Settings"), 20, "the settings window")
        focused = bus.probe("focus", APP, "Hotkey: Describe screen", "Settings")
        assert focused["focused"] and focused["role"] == "text", focused
        # The global hotkeys pause while recording: pressing the current key records it, runs nothing.
        before, pressed = len(app.utterances()), time.time()
        server.xdotool("key", "ctrl+alt+d")
        said = app.wait_said(lambda u: u["action"] == "settings", 10, "the key in words", after=before)
        assert said["text"].startswith("Control+Alt+D.") and "is used by the desktop" in said["text"], said
        before = len(app.utterances())
        server.xdotool("key", "ctrl+alt+shift+d")
        said = app.wait_said(lambda u: u["action"] == "settings", 10, "the recorded hotkey in words",
                             after=before)
        assert said["text"].startswith("Control+Alt+Shift+D."), said
        assert not [u for u in app.utterances() if u["action"] == "describe-screen"
                    and u["requested_at"] >= pressed]
        assert bus.probe("press", APP, "OK", "Settings")["pressed"] == "OK"
        stored = app.home / "settings.json"
        wait_for(lambda: stored.exists() and "Ctrl+Alt+Shift+D" in stored.read_text(), 10, "the saved hotkey")
        assert json.loads(stored.read_text())["settings"]["hotkey.describe-screen"] == "Ctrl+Alt+Shift+D"

        # The actions window's button now names the new key, as a screen reader reads it.
        wait_for(lambda: "Ctrl+Alt+Shift+D" in (_named(_nodes(bus), "push button", "Describe screen") or {})
                 .get("description", ""), 10, "the new hotkey in the button's description")
        before = len(app.utterances())
        server.xdotool("key", "ctrl+alt+shift+d")
        app.wait_said(lambda u: u["action"] == "describe-screen", 30, "a description from the new hotkey",
                      after=before)
        pressed = time.time()
        server.xdotool("key", "ctrl+alt+d")  # the old key is no longer bound
        time.sleep(2.0)
        # (a description may add its text reading later: only a request made after the press counts)
        assert not [u for u in app.utterances() if u["action"] == "describe-screen"
                    and u["requested_at"] >= pressed]
        assert app.quit() == 0


def test_the_first_run_welcome_is_said_shown_tried_and_not_repeated(desktop, tmp_path: Path,
                                                                    tiny_models) -> None:
    import json

    server, bus = desktop
    env = app_env(server, tmp_path, first_run_done=False, **bus.env)
    model = str(tiny_models["builtin"])
    with running_app(server, tmp_path, "--model", model, env=env) as app:
        welcome = app.wait_said(lambda u: u["text"].startswith("Welcome to BLIP"), 10, "the welcome")
        assert "Control+Alt+D: describe screen" in welcome["text"]
        assert "Try one now: press Control+Alt+D" in welcome["text"]
        nodes = wait_for(lambda: (n := _nodes(bus)) and _window(n, "Welcome to BLIP Assistant") and n, 20,
                         "the welcome window in the AT-SPI tree")
        window = _window(nodes, "Welcome to BLIP Assistant")
        assert window[0]["role"] == "dialog"
        assert any(n["name"] == "Welcome" for n in window), [(n["role"], n["name"][:30]) for n in window]
        before = len(app.utterances())
        assert bus.probe("press", APP, "Try it: describe the screen", "Welcome to BLIP Assistant")["pressed"]
        app.wait_said(lambda u: u["action"] == "describe-screen", 30, "the tried description", after=before)
        assert bus.probe("press", APP, "Close", "Welcome to BLIP Assistant")["pressed"] == "Close"
        stored = json.loads((app.home / "settings.json").read_text())
        assert stored["settings"]["app.show_welcome"] is False
        assert app.quit() == 0
    second = tmp_path / "second"  # a fresh speech log, the same home
    second.mkdir()
    with running_app(server, second, "--model", model, env=env) as again:
        time.sleep(0.5)
        assert not [u for u in again.utterances() if u["text"].startswith("Welcome")]
        assert not _window(_nodes(bus), "Welcome to BLIP Assistant")
        assert again.quit() == 0


def test_history_lasts_across_starts_and_keep_none_leaves_nothing_on_disk(desktop, tmp_path: Path,
                                                                          tiny_models) -> None:
    import json
    import sqlite3

    server, bus = desktop
    env = app_env(server, tmp_path, **bus.env)
    model = str(tiny_models["builtin"])
    history = Path(env["BLIP_ASSISTANT_HOME"]) / "history.sqlite3"
    with running_app(server, tmp_path, "--model", model, env=env) as app:
        before = len(app.utterances())
        assert app.trigger("describe-window").returncode == 0
        said = app.wait_said(lambda u: u["action"] == "describe-window", 30, "a description", after=before)
        wait_for(history.exists, 10, "the history file")
        assert app.quit() == 0
    with sqlite3.connect(history) as db:
        rows = db.execute("SELECT text, action FROM entries").fetchall()
    assert (said["text"], "describe-window") in rows, rows

    # The next start lists it in the history window, where a screen reader finds it.
    second = tmp_path / "second"
    second.mkdir()
    with running_app(server, second, "--model", model, env=env) as app:
        assert app.trigger("history").returncode == 0
        items = wait_for(lambda: [n for n in _window(_nodes(bus), "History") if said["text"] in n["name"]],
                         20, "the earlier description in the history window")
        assert items[0]["role"] in ("list item", "table cell"), items
        assert app.quit() == 0

    # "Keep no history": the old file is erased at start and a new description leaves nothing on disk.
    settings = Path(env["BLIP_ASSISTANT_HOME"]) / "settings.json"
    stored = json.loads(settings.read_text())
    stored["settings"]["history.keep_none"] = True
    settings.write_text(json.dumps(stored))
    third = tmp_path / "third"
    third.mkdir()
    with running_app(server, third, "--model", model, env=env) as app:
        assert not history.exists()
        before = len(app.utterances())
        assert app.trigger("describe-window").returncode == 0
        app.wait_said(lambda u: u["action"] == "describe-window", 30, "a description", after=before)
        assert app.quit() == 0
    left = sorted(p.name for p in Path(env["BLIP_ASSISTANT_HOME"]).rglob("*") if p.is_file())
    assert not [name for name in left if "history" in name], left
