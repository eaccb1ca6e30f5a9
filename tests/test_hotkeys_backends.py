"""Hotkey backends on a real X server: pynput hears xdotool, keyboard says why it cannot work here, and the
picker chooses accordingly."""

from __future__ import annotations

import os
import statistics
import sys
import threading
import time
from collections.abc import Iterator

import pytest

import xserver
from assistant import actions
from assistant.hotkeys import KeyboardBackend, NoBackend, PynputBackend, pick_backend

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Xvfb")


@pytest.fixture(scope="module")
def x() -> Iterator[xserver.XServer]:
    xserver.require("xdotool")
    with xserver.xvfb(640, 480) as server, server.active():
        yield server


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, float]] = []
        self.event = threading.Event()

    def __call__(self, action_id: str) -> None:
        self.calls.append((action_id, time.perf_counter()))
        self.event.set()

    def press(self, x: xserver.XServer, keys: str, timeout: float = 1.0) -> tuple[str, float] | None:
        """Type ``keys`` and wait for a callback: (action id, latency in ms), or None after ``timeout``."""
        self.event.clear()
        before = len(self.calls)
        started = time.perf_counter()
        x.xdotool("key", keys)
        if not self.event.wait(timeout) or len(self.calls) == before:
            return None
        action_id, when = self.calls[-1]
        return action_id, (when - started) * 1000


@pytest.fixture()
def pynput_backend(x: xserver.XServer) -> Iterator[PynputBackend]:
    backend = PynputBackend()
    yield backend
    backend.stop()


def test_pynput_is_available_under_xvfb(x: xserver.XServer) -> None:
    availability = PynputBackend().available()
    assert availability.ok, availability.reason
    assert "RECORD" in availability.reason


def test_pynput_fires_the_action_within_a_second(x: xserver.XServer, pynput_backend: PynputBackend) -> None:
    recorder = Recorder()
    assert pynput_backend.start(actions.default_hotkeys(), recorder) == []
    latencies = []
    for _ in range(5):
        hit = recorder.press(x, "ctrl+alt+d")
        assert hit is not None, "Ctrl+Alt+D did not reach the callback within 1 s"
        assert hit[0] == "describe-screen"
        latencies.append(hit[1])
        time.sleep(0.4)  # past the auto-repeat guard
    hit = recorder.press(x, "ctrl+alt+w")
    assert hit is not None and hit[0] == "describe-window"
    print(f"\npynput hotkey latency (xdotool key -> callback): median {statistics.median(latencies):.1f} ms, "
          f"max {max(latencies):.1f} ms")
    assert max(latencies) < 1000


def test_unbound_keys_and_a_stopped_backend_are_silent(x: xserver.XServer,
                                                       pynput_backend: PynputBackend) -> None:
    recorder = Recorder()
    pynput_backend.start({"describe-screen": "Ctrl+Alt+D"}, recorder)
    assert recorder.press(x, "ctrl+alt+z", timeout=0.4) is None
    assert recorder.press(x, "d", timeout=0.4) is None  # the letter alone is not the hotkey
    started = time.perf_counter()
    pynput_backend.stop()
    assert time.perf_counter() - started < 1.0  # the listener ends at once, not at the next key event
    assert recorder.press(x, "ctrl+alt+d", timeout=0.4) is None


def test_restart_replaces_bindings(x: xserver.XServer, pynput_backend: PynputBackend) -> None:
    recorder = Recorder()
    pynput_backend.start({"describe-screen": "Ctrl+Alt+D"}, recorder)
    problems = pynput_backend.start({"stop": "Ctrl+Alt+S", "quit": "Ctrl+Nope"}, recorder)
    assert len(problems) == 1 and "unknown key 'Nope'" in problems[0]
    assert recorder.press(x, "ctrl+alt+d", timeout=0.4) is None
    hit = recorder.press(x, "ctrl+alt+s")
    assert hit is not None and hit[0] == "stop"


def test_failing_callback_keeps_listening(x: xserver.XServer, pynput_backend: PynputBackend) -> None:
    seen: list[str] = []
    done = threading.Event()

    def callback(action_id: str) -> None:
        seen.append(action_id)
        if len(seen) == 1:
            raise RuntimeError("the app's handler failed")
        done.set()

    pynput_backend.start({"describe-screen": "Ctrl+Alt+D"}, callback)
    x.xdotool("key", "ctrl+alt+d")
    time.sleep(0.5)
    x.xdotool("key", "ctrl+alt+d")
    assert done.wait(1.0), seen
    assert seen == ["describe-screen", "describe-screen"]


NO_INPUT_DEVICES = not (os.geteuid() == 0 and os.path.isdir("/dev/input"))
needs_no_input = pytest.mark.skipif(
    not NO_INPUT_DEVICES, reason="root with /dev/input: the keyboard package might really work here")


@needs_no_input
def test_keyboard_backend_is_unavailable_here_with_a_reason() -> None:
    availability = KeyboardBackend().available()
    assert not availability.ok
    assert "keyboard" in availability.reason and len(availability.reason) > 30
    print(f"\nkeyboard backend: {availability.reason}")


def test_picker_chooses_pynput_under_xvfb(x: xserver.XServer) -> None:
    choice = pick_backend()
    assert choice.backend.name == "pynput", choice.explain()
    assert choice.skipped == []  # pynput comes first on Linux
    choice = pick_backend(("keyboard", "pynput"))
    assert choice.backend.name == "pynput"
    assert [name for name, _ in choice.skipped] == ["keyboard"]
    assert "Not keyboard:" in choice.explain()


@needs_no_input
def test_picker_chooses_none_without_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    choice = pick_backend()
    assert isinstance(choice.backend, NoBackend)
    assert [name for name, _ in choice.skipped] == ["pynput", "keyboard"]
    assert "DISPLAY is not set" in dict(choice.skipped)["pynput"]
    advice = choice.backend.advice
    assert "blip-assistant trigger describe-screen" in advice and "keyboard settings" in advice
    # The none backend still accepts bindings, so the settings window can show them.
    assert choice.backend.start({"describe-screen": "Ctrl+Alt+D"}, print) == []
    assert "describe-screen" in choice.backend.bindings


def test_picker_says_wayland(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    choice = pick_backend(("pynput",))
    assert choice.backend.name == "none"
    assert "Wayland" in choice.reason
