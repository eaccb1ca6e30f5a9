"""The first-run welcome: short, spoken and written, keyboard operable, and never in the way.

It opens beside the tray at the first start (setting "app.show_welcome"), says its text, and lets the
user try the main hotkey at once (or the Try it button). It is not modal and does not hold up loading:
a key pressed while it is open works like any other time. Escape or Close dismisses it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QPushButton, QTextBrowser, QVBoxLayout

from assistant.app.tray import APP_NAME, app_icon
from assistant.first_run import SHOW_WELCOME, TRY_ACTION, welcome_lines
from assistant.settings import Settings


class WelcomeWindow(QDialog):
    def __init__(self, settings: Settings, hotkeys: Mapping[str, str], run: Callable[[str], None],
                 environ: Mapping[str, str] | None = None, platform: str | None = None) -> None:
        super().__init__()
        self.settings, self._run = settings, run
        self.lines = welcome_lines(hotkeys, environ, platform)
        self.setWindowTitle(f"Welcome to {APP_NAME}")
        self.setWindowIcon(app_icon())
        self.setAccessibleName(f"Welcome to {APP_NAME}")
        layout = QVBoxLayout(self)
        self.text = QTextBrowser(self)
        self.text.setAccessibleName("Welcome")
        self.text.setOpenExternalLinks(False)
        self.text.setPlainText("\n\n".join(self.lines))
        layout.addWidget(self.text)
        self.again = QCheckBox("&Show this welcome at the next start", self)
        self.again.setAccessibleName("Show this welcome at the next start")
        layout.addWidget(self.again)
        buttons = QDialogButtonBox(self)
        self.try_button = QPushButton("&Try it: describe the screen", self)
        self.try_button.setAccessibleName("Try it: describe the screen")
        self.try_button.setAccessibleDescription("Describes the screen now, as the hotkey does.")
        self.try_button.clicked.connect(lambda: self._run(TRY_ACTION))
        guide = QPushButton("Open the user &guide", self)
        guide.setAccessibleName("Open the user guide")
        guide.clicked.connect(lambda: self._run("guide"))
        close = QPushButton("&Close", self)
        close.setAccessibleName("Close")
        close.setDefault(True)
        close.clicked.connect(self.accept)
        for button, role in ((self.try_button, QDialogButtonBox.ButtonRole.ActionRole),
                             (guide, QDialogButtonBox.ButtonRole.HelpRole),
                             (close, QDialogButtonBox.ButtonRole.AcceptRole)):
            buttons.addButton(button, role)
        layout.addWidget(buttons)
        self.finished.connect(self._remember)
        self.resize(600, 420)

    def spoken_text(self) -> str:
        return " ".join(self.lines)

    def show_now(self) -> None:
        # Shown once: a crash or a kill while it is open must not bring it back every start.
        self._remember()
        self.show()
        self.raise_()
        self.activateWindow()
        self.text.setFocus()

    def _remember(self, _result: int = 0) -> None:
        wanted = self.again.isChecked()
        if self.settings[SHOW_WELCOME] != wanted:
            with contextlib.suppress(OSError):  # a read-only home: the welcome comes again, harmlessly
                self.settings.update({SHOW_WELCOME: wanted})
