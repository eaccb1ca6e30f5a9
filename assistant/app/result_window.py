"""The result window: everything the assistant said, as text a screen reader can read and copy, and a
field to ask about the last image.

It never takes the focus by itself: a window popping up on every description would pull the screen
reader away from what the user was doing. The tray's Ask action (and Show result) bring it forward,
with the focus on the newest text or on the question field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtGui import (
    QDragEnterEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QShortcut,
    QTextCursor,
)
from PySide6.QtWidgets import (
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QVBoxLayout,
)

from assistant.app.announce import announce
from assistant.app.question_field import QuestionField
from assistant.app.tray import app_icon

# Keys for moving through read text while this window has the focus (the action descriptions in
# assistant.actions name them too). Alt+arrows: the arrows alone still move the caret for a screen reader.
READING_KEYS = {
    "reading-pause": "Alt+Home",
    "reading-next-line": "Alt+Down",
    "reading-previous-line": "Alt+Up",
    "reading-next-paragraph": "Alt+PgDown",
    "reading-previous-paragraph": "Alt+PgUp",
}


class ResultWindow(QDialog):
    def __init__(self, ask: Callable[[str], None], run: Callable[[str], None] | None = None,
                 open_file: Callable[[str], None] | None = None,
                 open_image: Callable[[Any, str], None] | None = None,
                 last_caption: Callable[[], str | None] | None = None,
                 save_correction: Callable[[str], None] | None = None) -> None:
        super().__init__()
        self._ask = ask
        # Correcting (issue #24): the controller says which caption can be corrected and keeps its image.
        self._last_caption, self._save_correction = last_caption, save_correction
        # Drag and drop: an image file (or an image from a browser) dropped here is described.
        self._open_file, self._open_image = open_file, open_image
        self.setAcceptDrops(open_file is not None)
        self.setWindowTitle("Results")  # Qt appends the app name
        self.setWindowIcon(app_icon())
        self.setAccessibleName("Results")
        layout = QVBoxLayout(self)

        label = QLabel("&Results:", self)
        self.transcript = QPlainTextEdit(self)
        self.transcript.setReadOnly(True)
        # A read-only text field keeps a caret, so a screen reader reads it line by line.
        self.transcript.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                                | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.transcript.setAccessibleName("Results")
        self.transcript.setAccessibleDescription(
            "Every description and answer, newest last. For read text: Alt+Down and Alt+Up move by line, "
            "Alt+Page Down and Alt+Page Up by paragraph, Alt+Home pauses or resumes.")
        label.setBuddy(self.transcript)
        layout.addWidget(label)
        layout.addWidget(self.transcript)

        question_label = QLabel("&Question about the last image:", self)
        self.question = QuestionField(self)
        self.question.setAccessibleName("Question about the last image")
        self.question.setAccessibleDescription("Type a question and press Enter. Up and Down recall earlier "
                                               "questions; Escape closes the window.")
        self.question.setPlaceholderText("for example: is there a dog?")
        self.question.returnPressed.connect(self._ask_typed)
        question_label.setBuddy(self.question)
        layout.addWidget(question_label)
        layout.addWidget(self.question)

        self.correction_label = QLabel("Your &caption for the last image:", self)
        self.correction = QLineEdit(self)
        self.correction.setAccessibleName("Your caption for the last image")
        self.correction.setAccessibleDescription("Edit the caption. Enter saves it as a correction the "
                                                 "assistant learns from; Escape cancels.")
        self.correction_label.setBuddy(self.correction)
        self.correction.returnPressed.connect(self._save_typed_correction)
        layout.addWidget(self.correction_label)
        layout.addWidget(self.correction)
        self.correction_label.hide()
        self.correction.hide()

        buttons = QHBoxLayout()
        self.correct_button = QPushButton("Co&rrect the caption (F2)", self)
        self.correct_button.setAccessibleName("Correct the caption")
        self.correct_button.clicked.connect(self.start_correction)
        self.correct_button.setEnabled(save_correction is not None)
        self.correct_button.setAutoDefault(False)  # Enter in the caption field saves; it must not click this
        buttons.addWidget(self.correct_button)
        self.copy_button = QPushButton("&Copy last result", self)
        self.copy_button.setAccessibleName("Copy last result")
        self.copy_button.clicked.connect(self.copy_last)
        self.close_button = QPushButton("C&lose", self)
        self.close_button.setAccessibleName("Close")
        self.close_button.clicked.connect(self.close)
        buttons.addWidget(self.copy_button)
        buttons.addWidget(self.close_button)
        layout.addLayout(buttons)
        QShortcut(QKeySequence(QKeySequence.StandardKey.Copy), self.question, self.copy_last,
                  context=Qt.ShortcutContext.WidgetShortcut)
        if run is not None:
            for action_id, key in READING_KEYS.items():
                QShortcut(QKeySequence(key), self, lambda a=action_id: run(a),
                          context=Qt.ShortcutContext.WindowShortcut)
        self._last = ""
        self.resize(560, 360)

    def add(self, text: str, who: str = "") -> None:
        self._last = text
        line = f"{who}: {text}" if who else text
        if "\n" in line and self.transcript.document().characterCount() > 1:
            self.transcript.appendPlainText("")  # read text keeps its paragraphs: set it apart
        document = self.transcript.document()
        first_block = document.blockCount() if document.characterCount() > 1 else 0
        self.transcript.appendPlainText(line)
        # The caret on the newest entry's first line: a screen reader reads on from there.
        self.transcript.setTextCursor(QTextCursor(document.findBlockByNumber(first_block)))
        announce(self.transcript, line)  # read by the screen reader too, while this window has the focus

    def start_correction(self) -> None:
        """Show the last caption in an edit field, focused, for the user to correct."""
        caption = self._last_caption() if self._last_caption is not None else None
        if self._save_correction is None:
            return
        if not caption:
            self.add("There is no caption to correct yet: describe something first.")
            return
        self.show_for("text")
        self.correction_label.show()
        self.correction.show()
        self.correction.setText(caption)
        self.correction.selectAll()
        self.correction.setFocus()

    def cancel_correction(self) -> None:
        self.correction.hide()
        self.correction_label.hide()
        self.transcript.setFocus()

    def _save_typed_correction(self) -> None:
        text = self.correction.text().strip()
        if not text or self._save_correction is None:
            return
        self.cancel_correction()
        self._save_correction(text)

    def copy_last(self) -> None:
        QGuiApplication.clipboard().setText(self._last)

    def _ask_typed(self) -> None:
        question = self.question.text().strip()
        if question:
            self.add(question, "You asked")
            self.question.remember(question)
            self.question.clear()
            self._ask(question)

    def show_for(self, focus: str) -> None:
        """Bring the window forward with the focus on ``"question"`` or on the newest ``"text"``."""
        self.show()
        self.raise_()
        self.activateWindow()
        (self.question if focus == "question" else self.transcript).setFocus()

    def reject(self) -> None:
        """Escape: in the caption field it cancels the correction; elsewhere it closes the window."""
        if self.correction.isVisible() and self.focusWidget() is self.correction:
            self.cancel_correction()
            return
        super().reject()

    def keyPressEvent(self, event: QKeyEvent) -> None:
        # F2 (the usual "rename/edit" key) from anywhere in the window: the text and question fields
        # leave it unhandled, so it reaches the window
        if event.key() == Qt.Key.Key_F2 and event.modifiers() == Qt.KeyboardModifier.NoModifier:
            self.start_correction()
            return
        super().keyPressEvent(event)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        mime = event.mimeData()
        from assistant.app.images import has_image

        if any(u.isLocalFile() for u in mime.urls()) or (has_image(mime) and self._open_image is not None):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        from assistant.app.images import image_from_mime

        mime = event.mimeData()
        files = [u.toLocalFile() for u in mime.urls() if u.isLocalFile()]
        if files and self._open_file is not None:
            self._open_file(files[0])  # one at a time; next-image goes on through its folder
        elif self._open_image is not None and (image := image_from_mime(mime)) is not None:
            self._open_image(image, "dropped image")  # bytes or a PIL image, in memory only
        else:
            return
        event.acceptProposedAction()
