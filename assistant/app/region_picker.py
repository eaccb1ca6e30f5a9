"""Picking a region of the screen, by keyboard as well as by mouse.

A full-screen overlay shows the rectangle. Arrows move it, Shift+arrows resize it (Ctrl for fine steps),
Enter takes it, Escape cancels; a mouse drag draws it. Its size and place are spoken as they change, so
the user knows what they are about to describe without seeing it.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QPoint, QRect, Qt, QTimer
from PySide6.QtGui import QColor, QGuiApplication, QKeyEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import QWidget

STEP = 20  # pixels per arrow press; Ctrl+arrow moves by 1
MIN_SIDE = 16


class RegionPicker(QWidget):
    def __init__(self, on_done: Callable[[tuple[int, int, int, int] | None], None],
                 say: Callable[[str], None]) -> None:
        super().__init__(None, Qt.WindowType.FramelessWindowHint | Qt.WindowType.WindowStaysOnTopHint
                         | Qt.WindowType.Tool)
        self._on_done, self._say = on_done, say
        self.setAccessibleName("Region picker")
        self.setAccessibleDescription(
            "Arrows move the region, Shift and arrows resize it, Control for small steps. "
            "Enter describes the region, Escape cancels.")
        self.setAttribute(Qt.WidgetAttribute.WA_TranslucentBackground)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        screen = QGuiApplication.screenAt(QGuiApplication.primaryScreen().geometry().center())
        self._screen_rect = (screen or QGuiApplication.primaryScreen()).geometry()
        self.setGeometry(self._screen_rect)
        w, h = self._screen_rect.width() // 3, self._screen_rect.height() // 3
        self.rect_ = QRect(w, h, w, h)  # the middle ninth of the screen, in this widget's coordinates
        self._drag_from: QPoint | None = None
        self._announce = QTimer(self, singleShot=True, interval=350)  # speak once the keys settle
        self._announce.timeout.connect(self._speak_rect)
        self._done = False

    def start(self) -> None:
        self.showFullScreen()
        self.raise_()
        self.activateWindow()
        self.setFocus()
        self._say("Pick a region. Arrows move it, Shift and arrows resize it, Enter describes it, "
                  "Escape cancels. " + self._describe_rect())

    def _describe_rect(self) -> str:
        r = self.rect_
        return f"Region {r.width()} by {r.height()} pixels, {r.x()} from the left, {r.y()} from the top."

    def _speak_rect(self) -> None:
        self._say(self._describe_rect())

    def _finish(self, rect: tuple[int, int, int, int] | None) -> None:
        if self._done:
            return
        self._done = True
        self.hide()
        # The overlay must be gone from the screen before the capture, or it would be captured too.
        QTimer.singleShot(120, lambda: (self._on_done(rect), self.deleteLater()))

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key, mods = event.key(), event.modifiers()
        step = 1 if mods & Qt.KeyboardModifier.ControlModifier else STEP
        dx = {Qt.Key.Key_Left: -step, Qt.Key.Key_Right: step}.get(key, 0)
        dy = {Qt.Key.Key_Up: -step, Qt.Key.Key_Down: step}.get(key, 0)
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            r = self.rect_.normalized()
            origin = self._screen_rect.topLeft()
            self._finish((r.x() + origin.x(), r.y() + origin.y(), r.width(), r.height()))
        elif key == Qt.Key.Key_Escape:
            self._finish(None)
        elif dx or dy:
            r = QRect(self.rect_)
            if mods & Qt.KeyboardModifier.ShiftModifier:
                r.setWidth(max(MIN_SIDE, r.width() + dx))
                r.setHeight(max(MIN_SIDE, r.height() + dy))
            else:
                r.translate(dx, dy)
            self.rect_ = r.intersected(QRect(QPoint(0, 0), self._screen_rect.size()))
            self.update()
            self._announce.start()
        else:
            super().keyPressEvent(event)

    def mousePressEvent(self, event: QMouseEvent) -> None:
        self._drag_from = event.position().toPoint()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None:
            self.rect_ = QRect(self._drag_from, event.position().toPoint()).normalized()
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self._drag_from is not None and self.rect_.width() >= MIN_SIDE and self.rect_.height() >= MIN_SIDE:
            self._drag_from = None
            self._speak_rect()

    def paintEvent(self, event: QPaintEvent) -> None:
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor(0, 0, 0, 110))
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_Clear)
        painter.fillRect(self.rect_, Qt.GlobalColor.transparent)
        painter.setCompositionMode(QPainter.CompositionMode.CompositionMode_SourceOver)
        # Yellow and black dashes: visible on light and dark screens alike.
        painter.setPen(QPen(QColor(255, 214, 0), 4))
        painter.drawRect(self.rect_)
        painter.setPen(QPen(QColor(0, 0, 0), 2, Qt.PenStyle.DashLine))
        painter.drawRect(self.rect_)
