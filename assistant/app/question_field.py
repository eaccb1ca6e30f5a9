"""The question field: a line edit that remembers the questions asked, as a shell does.

Up recalls the question before, Down the one after, and Down past the newest gives back what was being
typed. The arrows are free for this: a one-line field has no lines for a screen reader to move through.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import QLineEdit, QWidget

HISTORY_LIMIT = 50


class QuestionField(QLineEdit):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.asked: list[str] = []
        self._at = 0  # position in ``asked``; len(asked) is the draft being typed
        self._draft = ""

    def remember(self, question: str) -> None:
        if not self.asked or self.asked[-1] != question:
            self.asked = [*self.asked, question][-HISTORY_LIMIT:]
        self._at, self._draft = len(self.asked), ""

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = event.key()
        plain = event.modifiers() in (Qt.KeyboardModifier.NoModifier, Qt.KeyboardModifier.KeypadModifier)
        if plain and key in (Qt.Key.Key_Up, Qt.Key.Key_Down) and self.asked:
            if self._at == len(self.asked):
                self._draft = self.text()
            self._at = max(0, self._at - 1) if key == Qt.Key.Key_Up else min(len(self.asked), self._at + 1)
            self.setText(self._draft if self._at == len(self.asked) else self.asked[self._at])
            return
        super().keyPressEvent(event)
