"""What the OS says about the desktop: where the pointer is and which window is active.

One small class per platform behind ``open_desktop()``. Coordinates are in the space mss grabs in:
physical pixels on X11 and on Windows (mss makes the process DPI-aware), points on macOS.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Protocol

from assistant.capture.geometry import Rect


@dataclass(frozen=True)
class WindowInfo:
    rect: Rect  # including the title bar and borders the window manager draws
    title: str | None = None
    app: str | None = None
    handle: int | None = None  # X window id, HWND or CGWindowID: for logs and tests only


class Desktop(Protocol):
    def pointer(self) -> tuple[int, int]: ...

    def active_window(self) -> WindowInfo: ...

    def close(self) -> None: ...


def open_desktop() -> Desktop:
    """The desktop of this session; CaptureError when there is none to ask (Wayland, no DISPLAY)."""
    if sys.platform == "win32":
        from assistant.capture._windows import WindowsDesktop

        return WindowsDesktop()
    if sys.platform == "darwin":
        from assistant.capture._macos import MacDesktop

        return MacDesktop()
    from assistant.capture._x11 import X11Desktop

    return X11Desktop()
