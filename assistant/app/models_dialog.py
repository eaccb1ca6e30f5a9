"""The Models dialog (Settings > Models...): choose the built-in model, a Salesforce BLIP model, or a folder;
download a model on request, with its size said before it starts, progress in words, cancel and resume.

The download itself is :mod:`assistant.model_download` (Qt-free); :class:`DownloadJob` runs it in a thread
and turns its callbacks into signals. Every control has a mnemonic and an accessible name; what happens is
shown in the status line, spoken through the speech route and announced to the screen reader.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import (
    QDialog,
    QFileDialog,
    QGridLayout,
    QLabel,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
)

from assistant import model_store
from assistant.app.announce import announce
from assistant.app.live_settings import text_sized
from assistant.app.tray import app_icon
from assistant.model_download import (
    DownloadCancelled,
    Downloader,
    DownloadError,
    Plan,
    ProgressWords,
    fetch_plan,
)
from assistant.model_store import size_words

# Jobs whose thread still runs after their dialog closed: kept alive until their last signal.
_RUNNING: set[DownloadJob] = set()


class DownloadJob(QObject):
    """One model's size query or download on a thread; results come back as queued signals."""

    planned = Signal(object)  # a Plan
    progressed = Signal(object, object)  # bytes done, bytes in all (Python ints: past 2 GB)
    finished = Signal(str)  # the installed folder
    failed = Signal(str)  # words for the user
    cancelled = Signal(str)

    def __init__(self, endpoint: str | None = None) -> None:
        super().__init__()
        self.endpoint = endpoint
        self._cancel = threading.Event()
        self.running = False

    def ask_size(self, name: str) -> None:
        self._spawn(lambda: (self.planned, fetch_plan(name, endpoint_url=self.endpoint)))

    def start(self, plan: Plan) -> None:
        self._cancel.clear()

        def download() -> tuple[Any, Any]:
            downloader = Downloader(plan, cancel=self._cancel,
                                    progress=lambda done, total, _file: self.progressed.emit(done, total))
            return self.finished, str(downloader.run())

        self._spawn(download)

    def cancel(self) -> None:
        self._cancel.set()

    def _spawn(self, work: Callable[[], tuple[Any, Any]]) -> None:
        self.running = True
        _RUNNING.add(self)

        def run() -> None:
            try:
                signal, value = work()
            except DownloadCancelled as exc:
                signal, value = self.cancelled, str(exc)
            except DownloadError as exc:
                signal, value = self.failed, _capital(str(exc)) + "."
            except Exception as exc:  # a bug must still end in words, never a silent dead thread
                signal, value = self.failed, f"The download failed: {exc}."
            self.running = False  # before the signal: its slot sees the job done
            signal.emit(value)
            _RUNNING.discard(self)

        threading.Thread(target=run, name="model-download", daemon=True).start()


def _capital(text: str) -> str:
    text = text.rstrip(".")
    return text[:1].upper() + text[1:]


class ModelsDialog(QDialog):
    chosen = Signal(str)  # the value for the model.name setting: a choice's name or a folder

    def __init__(self, current: str, say: Callable[[str], None], *, endpoint: str | None = None,
                 ask_folder: Callable[[], str | None] | None = None, parent: Any = None) -> None:
        super().__init__(parent)
        self.current, self._say = current, say
        self._ask_folder = ask_folder or self._folder_dialog
        self._plan: Plan | None = None
        self.progress_gap_s = 5.0  # progress is said every 10 percent, never twice within this
        self._words = ProgressWords()
        self.job = DownloadJob(endpoint)
        self.job.planned.connect(self._planned)
        self.job.progressed.connect(self._progressed)
        self.job.finished.connect(self._finished)
        self.job.failed.connect(self._failed)
        self.job.cancelled.connect(self._cancelled)
        self.setWindowTitle("Models")
        self.setWindowIcon(app_icon())
        self.setAccessibleName("Models")
        layout = QVBoxLayout(self)

        label = QLabel("&Models:", self)
        self.list = QListWidget(self)
        self.list.setAccessibleName("Models")
        self.list.setWordWrap(True)  # large text wraps rather than hiding the size behind a scroll bar
        self.list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        label.setBuddy(self.list)
        layout.addWidget(label)
        layout.addWidget(self.list)
        self.details = QLabel("", self)
        self.details.setWordWrap(True)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                             | Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setAccessibleName("About the model")
        layout.addWidget(self.details)

        self.bar = QProgressBar(self)
        self.bar.setRange(0, 1000)
        self.bar.setAccessibleName("Download progress")
        self.bar.hide()
        layout.addWidget(self.bar)
        self.status = QLabel("", self)
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Status")
        layout.addWidget(self.status)

        grid = QGridLayout()
        self.use_button = self._button("&Use this model", "Use the selected model for descriptions.",
                                       self.use_selected)
        self.download_button = self._button("&Download...", "Ask the model hub for the size, then download "
                                            "the selected model. Nothing is downloaded before you press "
                                            "Start download.", self.download_selected)
        self.cancel_button = self._button("Cance&l download", "Stop the download; what was downloaded is "
                                          "kept, and downloading again continues from there.", self.cancel)
        self.remove_button = self._button("&Remove", "Delete the selected model's downloaded files.",
                                          self.remove_selected)
        self.folder_button = self._button("Use a &folder...", "Use a model saved in a folder on this "
                                          "computer: it needs config.json and .safetensors weights.",
                                          self.choose_folder)
        self.close_button = self._button("&Close", "Close this window.", self.reject)
        buttons = (self.use_button, self.download_button, self.cancel_button, self.remove_button,
                   self.folder_button, self.close_button)
        for i, button in enumerate(buttons):
            grid.addWidget(button, i // 3, i % 3)
        layout.addLayout(grid)

        self.list.currentRowChanged.connect(lambda _row: self._show_selected())
        self._fill()
        self.resize(*text_sized(self, 96, 24))

    def _button(self, text: str, help_text: str, slot: Callable[[], None]) -> QPushButton:
        button = QPushButton(text, self)
        button.setAccessibleName(text.replace("&", "").rstrip("."))
        button.setAccessibleDescription(help_text)
        button.setToolTip(help_text)
        button.setAutoDefault(False)  # Enter in the list must not press whichever button had focus last
        button.clicked.connect(slot)
        return button

    # --- what the list shows ------------------------------------------------------------------
    def _state(self, choice: model_store.Choice) -> str:
        if choice.repo is None:
            return "on this computer"
        if model_store.installed(choice.name) is not None:
            return "downloaded"
        partial = model_store.partial_bytes(choice.name)
        if partial:
            return f"partly downloaded, {size_words(partial)} of about {size_words(choice.approx_bytes)}"
        return f"not downloaded, about {size_words(choice.approx_bytes)}"

    def _in_use(self, name: str) -> bool:
        choice = model_store.choice_for(self.current)
        return choice is not None and choice.name == name

    def _fill(self) -> None:
        row = max(self.list.currentRow(), 0)
        if self.list.count() == 0:
            row = next((i for i, c in enumerate(model_store.CHOICES) if self._in_use(c.name)), 0)
        self.list.clear()
        for choice in model_store.CHOICES:
            in_use = ", in use" if self._in_use(choice.name) else ""
            text = f"{choice.label}: {self._state(choice)}{in_use}"
            item = QListWidgetItem(text, self.list)
            item.setData(Qt.ItemDataRole.UserRole, choice.name)
        if model_store.choice_for(self.current) is None:
            item = QListWidgetItem(f"Folder {self.current}, in use", self.list)
            item.setData(Qt.ItemDataRole.UserRole, self.current)
            if self.list.count() == len(model_store.CHOICES) + 1 and row == 0:
                row = self.list.count() - 1
        self.list.setCurrentRow(row)
        self._show_selected()

    def selected(self) -> model_store.Choice | None:
        item = self.list.currentItem()
        return model_store.BY_NAME.get(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def _show_selected(self) -> None:
        choice = self.selected()
        downloading = self.job.running
        if choice is None:
            self.details.setText(f"A model in the folder {self.current}.")
            usable = can_download = removable = False
        else:
            installed = choice.repo is None or model_store.installed(choice.name) is not None
            usable = installed and choice.describes
            can_download = choice.repo is not None and not installed
            removable = choice.repo is not None and (model_store.installed(choice.name) is not None
                                                     or model_store.partial_bytes(choice.name) > 0)
            size = f"Size about {size_words(choice.approx_bytes)}." if choice.repo else ""
            self.details.setText(" ".join(filter(None, [choice.about, size,
                                                        f"From {choice.repo}." if choice.repo else ""])))
            if self._plan is not None and self._plan.name != choice.name:
                self._plan = None
                self.download_button.setText("&Download...")
        self.list.setAccessibleDescription(self.details.text())
        self.use_button.setEnabled(usable and not downloading)
        self.download_button.setEnabled(can_download and not downloading)
        self.remove_button.setEnabled(removable and not downloading)
        self.cancel_button.setEnabled(downloading)
        self.folder_button.setEnabled(not downloading)

    # --- telling the user ---------------------------------------------------------------------
    def _tell(self, message: str, *, assertive: bool = False, speak: bool = True) -> None:
        self.status.setText(message)
        if speak:
            self._say(message)
        announce(self.status, message, assertive=assertive)

    # --- actions ------------------------------------------------------------------------------
    def use_selected(self) -> None:
        choice = self.selected()
        if choice is None or not self.use_button.isEnabled():
            return
        self._choose(choice.name, f"{choice.label} chosen. Press OK in the settings to keep it.")

    def _choose(self, value: str, message: str) -> None:
        self.current = value
        self.chosen.emit(value)
        self._say(message)
        self.accept()

    def download_selected(self) -> None:
        choice = self.selected()
        if choice is None or choice.repo is None or self.job.running:
            return
        if self._plan is None or self._plan.name != choice.name:
            self._tell(f"Asking the model hub for the size of {choice.label}...")
            self.job.ask_size(choice.name)
            self._show_selected()
            self.list.setFocus()  # the disabled button would drop the focus somewhere unexpected
            return
        self._words = ProgressWords(min_gap_s=self.progress_gap_s)
        self.bar.setValue(0)
        self.bar.show()
        self._tell(f"Downloading {choice.label}.")
        self.job.start(self._plan)
        self._show_selected()
        self.cancel_button.setFocus()  # the one thing to do now

    def _planned(self, plan: Plan) -> None:
        self._plan = plan
        choice = model_store.BY_NAME[plan.name]
        have = model_store.partial_bytes(plan.name)
        kept = (f" {size_words(have)} from an earlier try are kept; {size_words(plan.total_bytes - have)} "
                "remain.") if 0 < have < plan.total_bytes else ""
        host = urlparse(plan.endpoint).netloc or plan.endpoint
        self.download_button.setText(f"&Start download, {size_words(plan.total_bytes)}")
        self.download_button.setAccessibleName(f"Start download, {size_words(plan.total_bytes)}")
        self._show_selected()
        self.download_button.setFocus()
        self._tell(f"{choice.label} is {size_words(plan.total_bytes)} ({plan.total_bytes:,} bytes in "
                   f"{len(plan.files)} files) from {host}.{kept} Press Start download to begin, or Escape.")

    def _progressed(self, done: int, total: int) -> None:
        self.bar.setValue(int(done * 1000 / total) if total else 0)
        words = self._words(done, total)
        text = f"{size_words(done)} of {size_words(total)} ({done * 100 // max(total, 1)} percent)."
        self.status.setText(text)
        if words:
            self._tell(words)

    def _finished(self, folder: str) -> None:
        self._plan = None
        self.bar.setValue(1000)
        self.download_button.setText("&Download...")
        self.download_button.setAccessibleName("Download")
        self._fill()
        choice = model_store.choice_for(Path(folder).name)
        label = choice.label if choice else folder
        hint = " Press Use this model to use it." if choice is not None and choice.describes else (
            " It answers questions beside BLIP base and large." if choice is not None else "")
        self._show_selected()
        (self.use_button if self.use_button.isEnabled() else self.list).setFocus()
        self._tell(f"{label} is downloaded and verified.{hint}")

    def _failed(self, message: str) -> None:
        if not self.isVisible():
            return  # closed meanwhile: the user has moved on
        self.bar.hide()
        self._fill()
        self._tell(message, assertive=True)

    def _cancelled(self, _message: str) -> None:
        if not self.isVisible():
            return  # closing cancelled it, and said so
        self.bar.hide()
        self._plan = None
        self.download_button.setText("&Download...")
        self.download_button.setAccessibleName("Download")
        self._fill()
        self._tell("Download cancelled. What was downloaded is kept: Download continues from there.")

    def cancel(self) -> None:
        if self.job.running:
            self.job.cancel()

    def remove_selected(self) -> None:
        choice = self.selected()
        if choice is None or choice.repo is None or self.job.running:
            return
        model_store.remove(choice.name)
        self._fill()
        self._tell(f"{choice.label} was removed from this computer.")

    def choose_folder(self) -> None:
        folder = self._ask_folder()
        if not folder:
            return
        problem = model_store.folder_problem(folder)
        if problem:
            self._tell(f"That folder cannot be used: {problem}", assertive=True)
            return
        self._choose(str(Path(folder).expanduser().resolve()), f"The model in {folder} chosen. Press OK in "
                     "the settings to keep it.")

    def _folder_dialog(self) -> str | None:
        return QFileDialog.getExistingDirectory(self, "Choose a model folder", str(Path.home())) or None

    def reject(self) -> None:
        """Escape or Close: a running download stops (kept, to resume) rather than run on unseen."""
        if self.job.running:
            self.job.cancel()
            self._say("Download cancelled. What was downloaded is kept: Download continues from there.")
        super().reject()
