"""macOS, best effort: the frontmost window through Quartz (pyobjc), when it is installed.

Untested here. Window titles need the Screen Recording permission; without it Quartz leaves them out and
only the application name is known.
"""

from __future__ import annotations

from typing import Any

from assistant.capture.desktop import WindowInfo
from assistant.capture.errors import CaptureError
from assistant.capture.geometry import Rect

_NO_QUARTZ = (
    "Describing the active window or the pointer area is not supported on this Mac: it needs the Quartz "
    "module (pip install pyobjc-framework-Quartz). Describing the whole screen works without it."
)


def _quartz() -> Any:
    try:
        import Quartz  # type: ignore[import-not-found]
    except ImportError as exc:
        raise CaptureError(_NO_QUARTZ) from exc
    return Quartz


class MacDesktop:
    def close(self) -> None:
        pass

    def pointer(self) -> tuple[int, int]:
        q = _quartz()
        location = q.CGEventGetLocation(q.CGEventCreate(None))
        return int(location.x), int(location.y)

    def active_window(self) -> WindowInfo:
        q = _quartz()
        options = q.kCGWindowListOptionOnScreenOnly | q.kCGWindowListExcludeDesktopElements
        # The list comes front to back; layer 0 holds ordinary windows (menus, the Dock and overlays
        # sit on other layers), so the first layer-0 window belongs to the frontmost application.
        for info in q.CGWindowListCopyWindowInfo(options, q.kCGNullWindowID) or ():
            if int(info.get("kCGWindowLayer", -1)) != 0:
                continue
            bounds = info.get("kCGWindowBounds") or {}
            rect = Rect(int(bounds.get("X", 0)), int(bounds.get("Y", 0)),
                        int(bounds.get("Width", 0)), int(bounds.get("Height", 0)))
            if rect.empty:
                continue
            title = str(info.get("kCGWindowName") or "").strip() or None
            app = str(info.get("kCGWindowOwnerName") or "").strip() or None
            return WindowInfo(rect, title, app, int(info.get("kCGWindowNumber", 0)) or None)
        raise CaptureError("No window has the keyboard focus, so there is no active window to capture.")
