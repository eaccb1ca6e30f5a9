"""A storm of hotkeys on the real app (Xvfb, openbox, a tray host, the built-in model): 100 presses in 10 s
with real xdotool key events, mixed actions (describe screen, window, pointer; repeat; stop; ask). Region is
left out: it opens a picker that holds the keyboard until the user picks or presses Escape.

What the design promises (assistant/app/worker.py, controller.py): a hotkey never waits on the model; the
worker runs one request at a time and keeps at most one waiting, so a newer request supersedes the waiting
one, which is never answered; stop cuts speech; repeat says the last result again. So during the storm:

- the GUI thread keeps answering: an X11 _NET_WM_PING sent to the app's window is answered by Qt's event
  loop (not by a helper thread) within 1 s, every time, sampled all through the storm;
- fewer descriptions are spoken than requested (superseded), at least one, and none twice: no
  (action, request time) pair appears twice in the speech log, except "repeat", whose job it is;
- afterwards the app still answers a hotkey, its resident memory returns to within 10% (plus 20 MB of
  allocator slack) of its level before the storm, and it has no more threads than before.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from desktop import app_env, running_app
from xserver import XServer

pytestmark = [pytest.mark.desktop, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]
KEYS = {"ctrl+alt+d": "describe-screen", "ctrl+alt+w": "describe-window", "ctrl+alt+m": "describe-pointer",
        "ctrl+alt+l": "repeat", "ctrl+alt+s": "stop", "ctrl+alt+q": "ask"}
# Each key comes back after 0.4 s at the soonest: the hotkeys drop a second press of the same action within
# 0.35 s (a held key must not flood the app), and this storm is about mixed presses, not held keys.
ORDER = ("ctrl+alt+d", "ctrl+alt+w", "ctrl+alt+m", "ctrl+alt+s", "ctrl+alt+l", "ctrl+alt+d", "ctrl+alt+q",
         "ctrl+alt+w", "ctrl+alt+m", "ctrl+alt+l")



def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(field)


def _rss_mb(pid: int) -> float:
    return _status(pid, "VmRSS") / 1024


def _threads(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/task").iterdir()))


def _app_log(app) -> str:  # type: ignore[no-untyped-def]
    """What the app logged: its log file in the data folder where it keeps one, else its output."""
    kept = app.home / "logs" / "assistant.log"
    text = kept.read_text(errors="replace") if kept.exists() else ""
    return text if "controller: action" in text else app.output.read_text(errors="replace")


class Pinger:
    """_NET_WM_PING to one of the app's top-level windows: Qt answers it from its GUI thread's event loop,
    so the round trip is how long a user's key or a screen reader's question would wait."""

    def __init__(self, server: XServer, pid: int) -> None:
        from Xlib import X, display

        self.d = display.Display(server.display)
        self.root = self.d.screen().root
        # Qt sends its answer to the root window with StructureNotify | SubstructureRedirect
        self.root.change_attributes(event_mask=X.StructureNotifyMask)
        self.protocols = self.d.intern_atom("WM_PROTOCOLS")
        self.ping = self.d.intern_atom("_NET_WM_PING")
        self.window = self._find(pid)
        self.stamp = 1000

    def _find(self, pid: int):  # type: ignore[no-untyped-def]
        pid_atom = self.d.intern_atom("_NET_WM_PID")
        stack = [self.root]
        while stack:
            window = stack.pop()
            try:
                prop = window.get_full_property(pid_atom, 0)
                protocols = window.get_wm_protocols() or []
                if prop is not None and int(prop.value[0]) == pid and self.ping in protocols:
                    return window
                stack.extend(window.query_tree().children)
            except Exception:  # a window that went away while walking
                continue
        raise AssertionError("no window of the app takes _NET_WM_PING")

    def round_trip(self, timeout: float = 5.0) -> float:
        from Xlib import X
        from Xlib.protocol import event

        self.stamp += 1
        message = event.ClientMessage(window=self.window, client_type=self.protocols,
                                      data=(32, [self.ping, self.stamp, self.window.id, 0, 0]))
        started = time.monotonic()
        self.window.send_event(message, event_mask=X.NoEventMask)
        self.d.flush()
        while time.monotonic() - started < timeout:
            while self.d.pending_events():
                got = self.d.next_event()
                if (got.type == X.ClientMessage and got.client_type == self.protocols
                        and got.data[1][0] == self.ping and got.data[1][1] == self.stamp):
                    return time.monotonic() - started
            time.sleep(0.002)
        return float("inf")

    def close(self) -> None:
        self.d.close()


def test_a_hundred_hotkeys_in_ten_seconds(desktop, tmp_path: Path) -> None:
    from PIL import Image

    photo = tmp_path / "chelsea.png"
    Image.open(ROOT / "resources" / "images" / "chelsea.jpg").save(photo)
    viewer, _ = desktop.show_image(photo, "A photo", 60, 40)
    # INFO logs each action id as it reaches the controller (ids and timings only, never screen text)
    env = app_env(desktop, tmp_path, BLIP_ASSISTANT_LOG_LEVEL="INFO")
    with running_app(desktop, tmp_path, env=env) as app:
        pid = app.proc.pid
        # warm up every path once (first capture, first caption, the result window), then the baseline
        for key in ("ctrl+alt+d", "ctrl+alt+w", "ctrl+alt+m"):
            before = len(app.utterances())
            desktop.xdotool("key", key)
            app.wait_said(lambda u, a=KEYS[key]: u["action"] == a, 60, f"the warm-up {key}", after=before)
            time.sleep(0.5)
        time.sleep(3)
        rss_before, threads_before = _rss_mb(pid), _threads(pid)
        pinger = Pinger(desktop, pid)
        pings: list[float] = []
        rss_peak = [rss_before]
        storming = threading.Event()
        storming.set()

        def sample() -> None:
            while storming.is_set() and app.proc.poll() is None:
                pings.append(pinger.round_trip())
                with contextlib.suppress(OSError, AssertionError):  # the app ended: the test says so
                    rss_peak.append(_rss_mb(pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        first = len(app.utterances())
        log_start = len(_app_log(app))
        presses = [ORDER[i % len(ORDER)] for i in range(100)]
        started = time.monotonic()
        sampler.start()
        # 100 presses, one every 100 ms, each a real X key event (as pynput's global hotkeys see them), one
        # xdotool after the other: two at once would mix their Ctrl and Alt into other chords
        for i, key in enumerate(presses):
            time.sleep(max(0.0, started + i * 0.1 - time.monotonic()))
            subprocess.run(["xdotool", "key", key], env=desktop.env, check=True, timeout=30)
        storm_s = time.monotonic() - started
        time.sleep(15)  # the last requests finish and are said
        storming.clear()
        sampler.join(10)
        # the probe can fail: an app that does not run does not answer
        os.kill(pid, signal.SIGSTOP)
        try:
            stopped_ping = pinger.round_trip(timeout=1.0)
        finally:
            os.kill(pid, signal.SIGCONT)
        pinger.close()

        said = app.utterances()[first:]
        storm_log = _app_log(app)[log_start:]
        received = Counter(re.findall(r"controller: action ([\w-]+)", storm_log))
        timed = Counter(re.findall(r"timing action=(describe-\w+) ", storm_log))
        asked = Counter(KEYS[k] for k in presses)
        spoken = Counter(u["action"] for u in said)
        describes = ("describe-screen", "describe-window", "describe-pointer")
        answered = sum(1 for u in said if u["action"] in describes and "still loading" not in u["text"]
                       and not u["text"].startswith("Text: "))
        pairs = Counter((u["action"], u.get("requested_at"), u["text"]) for u in said
                        if u["action"] != "repeat")
        twice = [p for p, n in pairs.items() if n > 1]

        # the app still answers a hotkey normally
        viewer.terminate()
        time.sleep(0.5)
        after_count = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+d")
        final = app.wait_said(lambda u: u["action"] == "describe-screen", 60, "the describe after the storm",
                              after=after_count)
        time.sleep(10)
        rss_after, threads_after = _rss_mb(pid), _threads(pid)
        app.check_alive()
        log = app.log_text()
        assert app.quit() == 0

    print(f"storm: {len(presses)} presses in {storm_s:.1f} s; asked {dict(asked)}")
    print(f"received by the app: {dict(received)}")
    print(f"spoken during and after: {dict(spoken)}; descriptions answered {answered} "
          f"(model runs that finished and were said: {dict(timed)}) of {sum(received[a] for a in describes)} "
          f"requested (the rest superseded)")
    finite = sorted(p for p in pings if p != float("inf"))
    print(f"event loop: {len(pings)} pings, {len(pings) - len(finite)} unanswered, "
          f"max {max(pings) * 1000:.0f} ms" + (f", median {finite[len(finite) // 2] * 1000:.0f} ms"
                                               if finite else ""))
    print(f"RSS before {rss_before:.0f} MB, peak {max(rss_peak):.0f} MB, after {rss_after:.0f} MB; "
          f"threads before {threads_before}, after {threads_after}")
    print(f"after the storm: {final['text']!r}")

    assert storm_s < 12, storm_s
    assert len(pings) >= 20 and max(pings) < 1.0, pings
    assert stopped_ping == float("inf"), stopped_ping
    assert sum(received.values()) >= 95, received  # the presses reached the app (a few may fall in the guard)
    assert 1 <= answered == sum(timed.values()) < sum(received[a] for a in describes) / 4, (answered, timed)
    assert not twice, twice
    assert not final["text"].startswith("Could not"), final
    assert rss_after <= rss_before * 1.10 + 20, (rss_before, rss_after)
    assert threads_after <= threads_before, (threads_before, threads_after)
    assert "Traceback" not in log, log
