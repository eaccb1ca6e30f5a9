"""The corrections window: the captions the user corrected, to edit, delete, export, import, and to
personalize the model on.

Everything is reachable by keyboard (every button has a mnemonic; in the list, F2 edits and Delete
removes) and named for a screen reader. Personalizing runs in another process; its progress is shown
here in words and spoken now and then by the controller.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGridLayout,
    QInputDialog,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QMessageBox,
    QPushButton,
    QVBoxLayout,
)

from assistant.app.tray import app_icon
from assistant.personal.corrections import CorrectionError, CorrectionStore


class CorrectionList(QListWidget):
    def __init__(self, window: CorrectionsWindow) -> None:
        super().__init__(window)
        self._window = window

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() == Qt.Key.Key_Delete:
            self._window.delete_selected()
        elif event.key() in (Qt.Key.Key_F2, Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._window.edit_selected()
        else:
            super().keyPressEvent(event)


class CorrectionsWindow(QDialog):
    def __init__(self, say: Callable[[str], None], personalize: Callable[[], None] | None = None,
                 stop: Callable[[], None] | None = None,
                 ask_file: Callable[[str, bool], str | None] | None = None,
                 confirm: Callable[[str], bool] | None = None) -> None:
        super().__init__()
        self._say = say
        # Dialogs are injected so that tests (and a future portal-based file picker) can answer them.
        self._ask_file = ask_file or self._file_dialog
        self._confirm = confirm or self._confirm_dialog
        self.setWindowTitle("Corrections")
        self.setWindowIcon(app_icon())
        self.setAccessibleName("Corrections")
        layout = QVBoxLayout(self)
        label = QLabel("&Your corrected captions, oldest first (F2 or Enter: edit, Delete: remove):", self)
        label.setWordWrap(True)
        self.list = CorrectionList(self)
        self.list.setAccessibleName("Your corrected captions")
        self.list.setAccessibleDescription("F2 or Enter edits the selected caption, Delete removes it.")
        label.setBuddy(self.list)
        layout.addWidget(label)
        layout.addWidget(self.list)

        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Personalizing")
        self.status.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                            | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.status.setFocusPolicy(Qt.FocusPolicy.TabFocus)
        layout.addWidget(self.status)

        grid = QGridLayout()
        self.buttons: dict[str, QPushButton] = {}
        specs = [
            ("edit", "&Edit…", self.edit_selected), ("delete", "&Delete", self.delete_selected),
            ("delete-all", "Delete &all…", self.delete_all), ("export", "E&xport…", self.export),
            ("import", "&Import…", self.import_),
            ("personalize", "&Personalize now", personalize or (lambda: None)),
            ("stop", "&Stop personalizing", stop or (lambda: None)), ("close", "C&lose", self.close),
        ]
        for i, (key, text, slot) in enumerate(specs):
            button = QPushButton(text, self)
            button.setAccessibleName(text.replace("&", "").rstrip("…"))
            button.clicked.connect(slot)
            grid.addWidget(button, i // 4, i % 4)
            self.buttons[key] = button
        self.buttons["personalize"].setEnabled(personalize is not None)
        self.buttons["stop"].setEnabled(False)
        layout.addLayout(grid)
        self.resize(640, 420)

    # --- the list -------------------------------------------------------------------------------
    def refresh(self) -> None:
        keep = self._selected_id()
        self.list.clear()
        with CorrectionStore() as store:
            items = store.list()
        for c in items:
            text = f"{c.caption}  (was: {c.model_caption}; {c.when})" if c.model_caption else \
                f"{c.caption}  ({c.when})"
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, c.id)
            self.list.addItem(item)
            if c.id == keep:
                self.list.setCurrentItem(item)
        if self.list.count() and self.list.currentRow() < 0:
            self.list.setCurrentRow(0)
        for key in ("edit", "delete", "delete-all", "export"):
            self.buttons[key].setEnabled(bool(items))
        if not items:
            self.status.setText("No corrections yet. In the results window, F2 corrects the last caption.")

    def _selected_id(self) -> int | None:
        item = self.list.currentItem()
        return None if item is None else int(item.data(Qt.ItemDataRole.UserRole))

    def edit_selected(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        with CorrectionStore() as store:
            old = store.get(cid).caption
            text, ok = QInputDialog.getText(self, "Edit the caption", "&Caption:", text=old)
            if not ok or text.strip() == old:
                return
            try:
                store.edit(cid, text)
            except CorrectionError as exc:
                self._say(f"Not saved: {exc}.")
                return
        self.refresh()
        self._say("Caption saved.")

    def delete_selected(self) -> None:
        cid = self._selected_id()
        if cid is None:
            return
        row = self.list.currentRow()
        with CorrectionStore() as store:
            store.delete(cid)
        self.refresh()
        self.list.setCurrentRow(min(row, self.list.count() - 1))
        self._say("Correction deleted.")

    def delete_all(self) -> None:
        if not self.list.count() or not self._confirm(f"Delete all {self.list.count()} corrections?"):
            return
        with CorrectionStore() as store:
            n = store.delete_all()
        self.refresh()
        self._say(f"{n} corrections deleted.")

    def export(self) -> None:
        path = self._ask_file("Export the corrections to a CSV file", True)
        if not path:
            return
        with CorrectionStore() as store:
            try:
                n = store.export_csv(path)
            except OSError as exc:
                self._say(f"Could not export: {exc.strerror or exc}.")
                return
        self._say(f"{n} corrections exported to {Path(path).name}, with their images in a folder beside it.")

    def import_(self) -> None:
        path = self._ask_file("Import corrections from a CSV file", False)
        if not path:
            return
        with CorrectionStore() as store:
            try:
                added, refused = store.import_csv(path)
            except (CorrectionError, OSError) as exc:
                self._say(f"Could not import: {exc}.")
                return
        self.refresh()
        words = f"{added} corrections imported."
        if refused:
            words += f" {len(refused)} rows refused; the first: {refused[0]}."
        self._say(words)

    # --- personalizing --------------------------------------------------------------------------
    def set_progress(self, text: str, running: bool) -> None:
        self.status.setText(text)
        self.buttons["personalize"].setEnabled(not running)
        self.buttons["stop"].setEnabled(running)

    def show_now(self) -> None:
        self.refresh()
        self.show()
        self.raise_()
        self.activateWindow()
        self.list.setFocus()

    # --- dialogs ------------------------------------------------------------------------------
    def _file_dialog(self, title: str, save: bool) -> str | None:
        home = str(Path.home())
        if save:
            suggested = str(Path(home) / "corrections.csv")
            path, _ = QFileDialog.getSaveFileName(self, title, suggested, "CSV (*.csv)")
        else:
            path, _ = QFileDialog.getOpenFileName(self, title, home, "CSV (*.csv)")
        return path or None

    def _confirm_dialog(self, question: str) -> bool:
        answer = QMessageBox.question(self, "Corrections", question + " This cannot be undone.")
        return answer == QMessageBox.StandardButton.Yes
