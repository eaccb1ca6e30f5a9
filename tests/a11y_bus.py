"""A private session bus with the accessibility bus on it, and the screen reader's view through AT-SPI.

What a desktop session gives a screen reader: ``dbus-launch`` starts a session bus, ``at-spi-bus-launcher``
the accessibility bus it announces there, and an app started with ``QT_LINUX_ACCESSIBILITY_ALWAYS_ON=1``
registers its tree on it. ``atspi_probe.py`` then reads that tree with the system Python's pyatspi, from
outside the app's process. Everything started here is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

PROBE = Path(__file__).with_name("atspi_probe.py")
SYSTEM_PYTHON = "/usr/bin/python3"
BUS_LAUNCHER = "/usr/libexec/at-spi-bus-launcher"


@dataclass
class AccessibilityBus:
    env: dict[str, str]  # the session bus address and the accessibility switches, to add to an app's env

    def probe(self, *args: str, timeout: float = 30) -> dict[str, Any]:
        """Run atspi_probe.py with the system Python on this bus; its JSON answer."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(self.env)
        env["PATH"] = "/usr/bin:/bin"
        done = subprocess.run([SYSTEM_PYTHON, str(PROBE), *args], env=env, capture_output=True, text=True,
                              timeout=timeout, check=False)
        if done.returncode != 0:
            raise AssertionError(f"atspi_probe failed ({done.returncode}):\n{done.stderr[-3000:]}")
        return json.loads(done.stdout)


def _can_run() -> str | None:
    """What the accessibility bus needs beyond the session bus (:func:`session_bus` checks dbus-launch)."""
    if not os.path.exists(BUS_LAUNCHER):
        return "needs at-spi2-core (at-spi-bus-launcher)"
    if not os.path.exists(SYSTEM_PYTHON) or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import pyatspi"], capture_output=True).returncode != 0:
        return "needs python3-pyatspi for the system Python"
    return None


@contextlib.contextmanager
def session_bus(display_env: dict[str, str], runtime_dir: Path) -> Iterator[str]:
    """A session bus, as every login session has; its address. Without one, Qt's first accessibility
    update has libdbus try to start one (``dbus-launch --autolaunch``), which stalls the app for seconds."""
    if subprocess.run(["which", "dbus-launch"], capture_output=True).returncode != 0:
        pytest.skip("needs dbus-x11 (dbus-launch)")
    runtime_dir.mkdir(parents=True, exist_ok=True)
    env = {**display_env, "XDG_RUNTIME_DIR": str(runtime_dir)}
    out = subprocess.run(["dbus-launch", "--sh-syntax"], env=env, capture_output=True, text=True, timeout=20,
                         check=True).stdout
    address = re.search(r"DBUS_SESSION_BUS_ADDRESS='([^']+)'", out)
    pid = re.search(r"DBUS_SESSION_BUS_PID=(\d+)", out)
    assert address and pid, out
    try:
        yield address.group(1)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(pid.group(1)), signal.SIGTERM)


@contextlib.contextmanager
def accessibility_bus(display_env: dict[str, str], runtime_dir: Path) -> Iterator[AccessibilityBus]:
    reason = _can_run()
    if reason:
        pytest.skip(reason)
    with session_bus(display_env, runtime_dir) as address:
        env = {**display_env, "XDG_RUNTIME_DIR": str(runtime_dir), "DBUS_SESSION_BUS_ADDRESS": address}
        launcher = subprocess.Popen([BUS_LAUNCHER, "--launch-immediately"], env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
        try:
            yield AccessibilityBus({"DBUS_SESSION_BUS_ADDRESS": address,
                                    "QT_LINUX_ACCESSIBILITY_ALWAYS_ON": "1", "QT_ACCESSIBILITY": "1",
                                    "NO_AT_BRIDGE": "0"})
        finally:
            _stop_launcher(launcher)


def _stop_launcher(launcher: subprocess.Popen) -> None:
    # The launcher starts dbus-daemon for the accessibility bus in its own session: end that group.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(launcher.pid, signal.SIGTERM)
    try:
        launcher.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(launcher.pid, signal.SIGKILL)
        launcher.wait(5)
