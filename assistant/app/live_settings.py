"""Settings that take effect the moment they are saved, without a restart: the hotkeys and the text size.

Qt follows the system's palette (and so its high-contrast theme) by itself as long as no window sets
colours of its own, which none does except the region picker's high-visibility frame; the text size
scales the application font, which every window without a font of its own inherits at once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtGui import QFont
from PySide6.QtWidgets import QApplication, QWidget

from assistant.settings import Settings

log = logging.getLogger(__name__)

FONT_SCALE = "display.font_scale"


class FontScaler:
    """Scales the application font from the size the system gave it (so the system's own scaling stays)."""

    def __init__(self, app: QApplication) -> None:
        self.app = app
        self.base = QFont(app.font())

    def apply(self, scale: float) -> None:
        font = QFont(self.base)
        if self.base.pointSizeF() > 0:
            font.setPointSizeF(self.base.pointSizeF() * scale)
        elif self.base.pixelSize() > 0:
            font.setPixelSize(max(1, round(self.base.pixelSize() * scale)))
        self.app.setFont(font)


def text_sized(widget: QWidget, columns: int, lines: int) -> tuple[int, int]:
    """A window size in characters and lines of its font, so larger text gets a larger window; never
    more than nine tenths of the screen."""
    metrics = widget.fontMetrics()
    width, height = metrics.averageCharWidth() * columns, metrics.lineSpacing() * lines
    screen = widget.screen() or QApplication.primaryScreen()
    if screen is not None:
        area = screen.availableGeometry()
        width, height = min(width, int(area.width() * 0.9)), min(height, int(area.height() * 0.9))
    return width, height


class HotkeyService:
    """Owns the running hotkey backend and restarts it when a hotkey setting changes.

    ``start(hotkeys)`` starts listening and returns the backend (main.py's ``_start_hotkeys``, which also
    says every problem in words); ``on_restarted(hotkeys)`` lets the tray menu show the new keys.
    """

    def __init__(self, settings: Settings, start: Callable[[dict[str, str]], Any],
                 on_restarted: Callable[[dict[str, str]], None] | None = None) -> None:
        self.settings, self._start, self._on_restarted = settings, start, on_restarted
        self.backend = start(settings.hotkeys())
        self._pending = False
        self._paused = False

    def pause(self) -> None:
        """Stop listening while hotkeys are being recorded, so that pressing one does not run its action."""
        if not self._paused:
            self._paused = True
            self.stop()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.restart()

    def setting_changed(self, name: str, _value: Any) -> None:
        # One save may change several hotkeys, each a separate notice: restart once, after all of them.
        # While paused, resume() starts the new ones.
        if name.startswith("hotkey.") and not self._pending and not self._paused:
            self._pending = True
            QTimer.singleShot(0, self.restart)

    def restart(self) -> None:
        self._pending = False
        if self._paused:
            return
        self.stop()
        hotkeys = self.settings.hotkeys()
        self.backend = self._start(hotkeys)
        log.info("hotkeys restarted")
        if self._on_restarted is not None:
            self._on_restarted(hotkeys)

    def stop(self) -> None:
        if self.backend is not None:
            self.backend.stop()


def apply_live(app: QApplication, settings: Settings, hotkeys: HotkeyService) -> FontScaler:
    """Wire the live settings; returns the font scaler (already applied to the saved text size)."""
    scaler = FontScaler(app)
    scaler.apply(float(settings[FONT_SCALE]))

    def changed(name: str, value: Any) -> None:
        if name == FONT_SCALE:
            scaler.apply(float(value))
        hotkeys.setting_changed(name, value)

    settings.on_change(changed)
    return scaler
