"""The Qt side of the assistant: the tray, its windows, and the worker thread that owns the model.

Importing this package is cheap and Qt-free; the Qt modules are imported by :mod:`assistant.app.main`.
"""

from __future__ import annotations

import os
import sys


def display_available() -> str | None:
    """None when there is a desktop to show windows on, else why not (in words)."""
    if sys.platform in ("win32", "darwin"):
        return None
    if os.environ.get("QT_QPA_PLATFORM", "").startswith("offscreen"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return "neither DISPLAY nor WAYLAND_DISPLAY is set"
