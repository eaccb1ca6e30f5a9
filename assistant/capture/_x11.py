"""X11: pointer and active window through python-xlib (installed with pynput)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any

from assistant.capture.desktop import WindowInfo
from assistant.capture.errors import CaptureError, check_session, explain
from assistant.capture.geometry import Rect

_NO_WINDOW = "No window has the keyboard focus, so there is no active window to capture."


class X11Desktop:
    """One Xlib connection, opened on first use and reopened after an X error that broke it."""

    def __init__(self) -> None:
        self._display: Any = None
        # python-xlib serialises requests itself, but the reply-matching in get_full_property and
        # friends is not safe against a second thread interleaving on one connection.
        self._lock = threading.Lock()

    def _connection(self) -> Any:
        if self._display is None:
            check_session()
            try:
                from Xlib import display
            except ImportError as exc:  # pragma: no cover - python-xlib comes with pynput
                raise CaptureError("python-xlib is not installed; it is needed to find windows on X11.") \
                    from exc
            try:
                self._display = display.Display()
            except Exception as exc:
                raise explain(exc, "the desktop") from exc
        return self._display

    def close(self) -> None:
        with self._lock:
            if self._display is not None:
                with contextlib.suppress(Exception):
                    self._display.close()
                self._display = None

    def pointer(self) -> tuple[int, int]:
        with self._lock:
            try:
                reply = self._connection().screen().root.query_pointer()
            except CaptureError:
                raise
            except Exception as exc:
                self._drop()
                raise explain(exc, "the pointer position") from exc
            return int(reply.root_x), int(reply.root_y)

    def active_window(self) -> WindowInfo:
        from Xlib import error

        with self._lock:
            d = self._connection()
            try:
                window = self._active(d)
                if window is None:
                    raise CaptureError(_NO_WINDOW)
                return WindowInfo(self._outer_rect(d, window), _title(d, window), _app(d, window), window.id)
            except (error.BadWindow, error.BadDrawable) as exc:
                raise CaptureError("The active window closed before it could be captured.") from exc
            except CaptureError:
                raise
            except Exception as exc:
                self._drop()
                raise explain(exc, "the active window") from exc

    def _drop(self) -> None:
        with contextlib.suppress(Exception):
            self._display.close()
        self._display = None

    @staticmethod
    def _active(d: Any) -> Any:
        from Xlib import X

        root = d.screen().root
        prop = root.get_full_property(d.intern_atom("_NET_ACTIVE_WINDOW"), X.AnyPropertyType)
        if prop is not None and len(prop.value):
            # An EWMH window manager runs: its answer is authoritative, and 0 means "nothing active".
            wid = int(prop.value[0])
            return d.create_resource_object("window", wid) if wid else None
        # No window manager: the focus window, walked up to the top-level window that holds it.
        focus = d.get_input_focus().focus
        if isinstance(focus, int) or focus is None or focus.id == root.id:
            return None  # None or PointerRoot
        window = focus
        while True:
            parent = window.query_tree().parent
            if parent is None or parent.id in (0, root.id):
                return window
            window = parent

    @staticmethod
    def _outer_rect(d: Any, window: Any) -> Rect:
        from Xlib import X

        root = d.screen().root
        geometry = window.get_geometry()
        origin = root.translate_coords(window, 0, 0)
        rect = Rect(int(origin.x), int(origin.y), int(geometry.width), int(geometry.height))

        def extents(name: str) -> tuple[int, int, int, int] | None:
            prop = window.get_full_property(d.intern_atom(name), X.AnyPropertyType)
            if prop is None or len(prop.value) != 4:
                return None
            left, right, top, bottom = (int(v) for v in prop.value)
            return left, right, top, bottom

        # Client-side decorated (GTK) windows draw their own shadow inside the window: cut it off.
        gtk = extents("_GTK_FRAME_EXTENTS")
        if gtk:
            left, right, top, bottom = gtk
            rect = Rect(rect.left + left, rect.top + top, rect.width - left - right,
                        rect.height - top - bottom)
        # The window manager's title bar and borders lie outside the client window: add them.
        frame = extents("_NET_FRAME_EXTENTS")
        if frame:
            left, right, top, bottom = frame
            rect = Rect(rect.left - left, rect.top - top, rect.width + left + right,
                        rect.height + top + bottom)
        return rect


def _title(d: Any, window: Any) -> str | None:
    prop = window.get_full_property(d.intern_atom("_NET_WM_NAME"), d.intern_atom("UTF8_STRING"))
    if prop is not None and prop.value:
        return _text(prop.value)
    with contextlib.suppress(Exception):
        name = window.get_wm_name()
        if name:
            return _text(name)
    return None


def _app(d: Any, window: Any) -> str | None:
    with contextlib.suppress(Exception):
        wm_class = window.get_wm_class()
        if wm_class and wm_class[1]:
            return str(wm_class[1])  # the class ("Firefox"), not the instance ("Navigator")
    from Xlib import X

    prop = window.get_full_property(d.intern_atom("_NET_WM_PID"), X.AnyPropertyType)
    if prop is not None and len(prop.value):
        with contextlib.suppress(OSError):
            return Path(f"/proc/{int(prop.value[0])}/comm").read_text(encoding="utf-8").strip() or None
    return None


def _text(value: Any) -> str | None:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    return text or None
