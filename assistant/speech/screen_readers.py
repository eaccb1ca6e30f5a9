"""Which screen reader runs here, found the way a user would see it: by its process.

"auto" speaks through a screen reader only when one runs, so this must be cheap and never wrong the other
way: a Speech Dispatcher server alone (it is started on demand by many programs) is not a screen reader,
an Orca process is. On Windows the NVDA/JAWS check is the screen-reader library's own (see
``windows_reader.py``); on macOS VoiceOver is a process named "VoiceOver".
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# Process names (Linux /proc/PID/comm, at most 15 characters) of the screen readers Speech Dispatcher serves.
LINUX_READERS = {"orca": "Orca", "fenrir": "Fenrir", "speakup": "Speakup"}


def linux_process_names(proc: Path = Path("/proc")) -> set[str]:
    """The command names of every process this user can see."""
    names = set()
    try:
        entries = list(proc.iterdir())
    except OSError:
        return names
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            names.add((entry / "comm").read_text(encoding="utf-8", errors="replace").strip())
        except OSError:  # the process ended while we looked
            continue
    return names


def running_linux_reader(proc: Path = Path("/proc")) -> str | None:
    """The name of a running Linux screen reader ("Orca"), or None."""
    names = linux_process_names(proc)
    return next((label for comm, label in LINUX_READERS.items() if comm in names), None)


def voiceover_running() -> bool:
    if sys.platform != "darwin":
        return False
    try:
        done = subprocess.run(["pgrep", "-x", "VoiceOver"], capture_output=True, timeout=3, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def running_reader() -> str | None:
    """The running screen reader's name on this platform, if one is found without loading a library."""
    if sys.platform.startswith("linux"):
        return running_linux_reader()
    if sys.platform == "darwin":
        return "VoiceOver" if voiceover_running() else None
    if os.name == "nt":
        from assistant.speech.windows_reader import detect

        return detect()
    return None
