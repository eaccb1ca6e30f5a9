"""The history window: earlier descriptions and answers, newest first, browsable by keyboard.

Enter says the selected one again, Ctrl+C copies it, Delete removes it; "Delete all" empties it. It lists
what the controller keeps (the setting "History length" bounds it; 0 keeps none); the history keeper saves
it on disk unless "Keep no history" is on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QKeyEvent, QKeySequence
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
)

from assistant.app.live_settings import text_sized
from assistant.app.tray import app_icon


class HistoryList(QListWidget):
    def __init__(self, window: HistoryWindow) -> None:
        super().__init__(window)
        self._window = window

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._window.speak_selected()
        elif event.key() == Qt.Key.Key_Delete:
            self._window.delete_selected()
        elif event.matches(QKeySequence.StandardKey.Copy):
            self._window.copy_selected()
        else:
            super().keyPressEvent(event)


class HistoryWindow(QDialog):
    def __init__(self, history: Callable[[], list[Any]], forget: Callable[[Any], None],
                 say: Callable[[str], None], forget_all: Callable[[], None] | None = None,
                 confirm: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self._forget_all, self._confirm = forget_all, confirm or self._ask
        self._history, self._forget, self._say = history, forget, say
        self.setWindowTitle("History")
        self.setWindowIcon(app_icon())
        self.setAccessibleName("History")
        layout = QVBoxLayout(self)
        label = QLabel("&Earlier results, newest first "
                       "(Enter: say again, Ctrl+C: copy, Delete: remove):", self)
        label.setWordWrap(True)
        self.list = HistoryList(self)
        # Long results wrap instead of running off the side, at any text size.
        self.list.setWordWrap(True)
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.list.setAccessibleName("Earlier results")
        self.list.setAccessibleDescription(
            "Enter says the result again, Control C copies it, Delete removes it.")
        label.setBuddy(self.list)
        layout.addWidget(label)
        layout.addWidget(self.list)
        # The keys above are quicker; the buttons make them discoverable by Tab.
        buttons = QHBoxLayout()
        choices = [("&Say again", self.speak_selected), ("Cop&y", self.copy_selected),
                   ("&Delete", self.delete_selected)]
        if forget_all is not None:
            choices.append(("Delete &all", self.delete_all))
        for text, slot in (*choices, ("C&lose", self.close)):
            button = QPushButton(text, self)
            button.setAccessibleName(text.replace("&", ""))
            button.clicked.connect(slot)
            buttons.addWidget(button)
        layout.addLayout(buttons)
        self.resize(*text_sized(self, 64, 22))

    def refresh(self) -> None:
        self.list.clear()
        for result in reversed(self._history()):
            when = time.strftime("%H:%M", time.localtime(result.at))
            item = QListWidgetItem(f"{when}, {result.label or result.action}: {result.text}")
            item.setData(Qt.ItemDataRole.UserRole, result)
            self.list.addItem(item)
        if self.list.count():
            self.list.setCurrentRow(0)

    def _selected(self) -> Any:
        item = self.list.currentItem()
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def speak_selected(self) -> None:
        result = self._selected()
        if result is not None:
            self._say(result.text)

    def copy_selected(self) -> None:
        result = self._selected()
        if result is not None:
            QGuiApplication.clipboard().setText(result.text)

    def delete_all(self) -> None:
        """Delete every entry, in memory and on disk, after a question whose default answer is No."""
        if self._forget_all is None or not self.list.count():
            return
        if self._confirm(f"Delete all {self.list.count()} entries of the history? This cannot be undone."):
            self._forget_all()
            self.refresh()
            self._say("The history is deleted.")
        self.list.setFocus()

    def _ask(self, question: str) -> bool:
        from PySide6.QtWidgets import QMessageBox

        box = QMessageBox(QMessageBox.Icon.Question, "Delete all history", question,
                          QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
        box.setDefaultButton(QMessageBox.StandardButton.No)
        box.setAccessibleName("Delete all history")
        return box.exec() == QMessageBox.StandardButton.Yes

    def delete_selected(self) -> None:
        result = self._selected()
        if result is not None:
            self._forget(result)
            row = self.list.currentRow()
            self.refresh()
            self.list.setCurrentRow(min(row, self.list.count() - 1))

    def show_now(self) -> None:
        self.refresh()
        self.show()
        self.raise_()
        self.activateWindow()
        self.list.setFocus()
