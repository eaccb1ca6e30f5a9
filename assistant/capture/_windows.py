"""Windows: pointer and foreground window through user32/dwmapi (ctypes, nothing to install).

Untested here (written against the Win32 documentation). Coordinates are physical pixels because mss and
Qt both make the process per-monitor DPI-aware before anything asks.
"""

from __future__ import annotations

import ctypes
from ctypes import wintypes
from pathlib import PureWindowsPath

from assistant.capture.desktop import WindowInfo
from assistant.capture.errors import CaptureError
from assistant.capture.geometry import Rect

_DWMWA_EXTENDED_FRAME_BOUNDS = 9
_PROCESS_QUERY_LIMITED_INFORMATION = 0x1000


class WindowsDesktop:
    def __init__(self) -> None:
        self._user32 = ctypes.WinDLL("user32", use_last_error=True)  # type: ignore[attr-defined]
        self._kernel32 = ctypes.WinDLL("kernel32", use_last_error=True)  # type: ignore[attr-defined]
        try:
            self._dwmapi = ctypes.WinDLL("dwmapi")  # type: ignore[attr-defined]
        except OSError:
            self._dwmapi = None
        self._user32.GetForegroundWindow.restype = wintypes.HWND

    def close(self) -> None:
        pass

    def pointer(self) -> tuple[int, int]:
        point = wintypes.POINT()
        if not self._user32.GetCursorPos(ctypes.byref(point)):
            raise CaptureError("Windows did not say where the pointer is (the desktop may be locked).")
        return int(point.x), int(point.y)

    def active_window(self) -> WindowInfo:
        hwnd = self._user32.GetForegroundWindow()
        if not hwnd:
            raise CaptureError("No window has the keyboard focus, so there is no active window to capture.")
        rect = wintypes.RECT()
        # The extended frame bounds exclude the invisible resize borders that GetWindowRect includes
        # on Windows 10 and 11 (several pixels of whatever lies behind the window).
        ok = self._dwmapi is not None and self._dwmapi.DwmGetWindowAttribute(
            wintypes.HWND(hwnd), _DWMWA_EXTENDED_FRAME_BOUNDS, ctypes.byref(rect), ctypes.sizeof(rect)) == 0
        if not ok and not self._user32.GetWindowRect(wintypes.HWND(hwnd), ctypes.byref(rect)):
            raise CaptureError("The active window closed before it could be captured.")
        bounds = Rect(rect.left, rect.top, rect.right - rect.left, rect.bottom - rect.top)
        return WindowInfo(bounds, self._title(hwnd), self._app(hwnd), int(hwnd))

    def _title(self, hwnd: int) -> str | None:
        length = self._user32.GetWindowTextLengthW(wintypes.HWND(hwnd))
        if length <= 0:
            return None
        buffer = ctypes.create_unicode_buffer(length + 1)
        self._user32.GetWindowTextW(wintypes.HWND(hwnd), buffer, length + 1)
        return buffer.value.strip() or None

    def _app(self, hwnd: int) -> str | None:
        pid = wintypes.DWORD()
        self._user32.GetWindowThreadProcessId(wintypes.HWND(hwnd), ctypes.byref(pid))
        if not pid.value:
            return None
        self._kernel32.OpenProcess.restype = wintypes.HANDLE
        process = self._kernel32.OpenProcess(_PROCESS_QUERY_LIMITED_INFORMATION, False, pid.value)
        if not process:
            return None  # an elevated process: its name is not ours to read
        try:
            size = wintypes.DWORD(1024)
            buffer = ctypes.create_unicode_buffer(size.value)
            if not self._kernel32.QueryFullProcessImageNameW(process, 0, buffer, ctypes.byref(size)):
                return None
            return PureWindowsPath(buffer.value).stem or None
        finally:
            self._kernel32.CloseHandle(process)
