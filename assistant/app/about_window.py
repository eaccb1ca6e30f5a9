"""The About box: the version (the one number from pyproject.toml), where the user's data lives, and the
model in use, as plain text a screen reader reads from top to bottom."""

from __future__ import annotations

import platform
import sys

from PySide6.QtWidgets import QDialog, QLabel, QPushButton, QTextBrowser, QVBoxLayout

from assistant import __version__, home
from assistant.app.tray import APP_NAME, app_icon


def about_text(model_name: str | None = None) -> str:
    """The box's text, also usable without Qt (one fact a line)."""
    bundled = " (installed application)" if getattr(sys, "frozen", False) else ""
    lines = [
        f"{APP_NAME}, version {__version__}{bundled}.",
        "Describes your screen and images aloud, on your own computer. Nothing you capture is sent anywhere.",
        f"Model: {model_name}." if model_name else "",
        f"Your settings and history are kept in {home.home()}.",
        f"Python {platform.python_version()} on {platform.system() or sys.platform}.",
        "Licence: Apache-2.0.",
    ]
    return "\n".join(line for line in lines if line)


class AboutWindow(QDialog):
    def __init__(self, model_name: str | None = None) -> None:
        super().__init__()
        self.setWindowTitle(f"About {APP_NAME}")
        self.setWindowIcon(app_icon())
        self.setAccessibleName(f"About {APP_NAME}")
        layout = QVBoxLayout(self)
        title = QLabel(f"{APP_NAME} {__version__}", self)
        font = title.font()
        font.setPointSizeF(font.pointSizeF() * 1.4)
        font.setBold(True)
        title.setFont(font)
        layout.addWidget(title)
        # A read-only text browser, not labels: a screen reader can move through it line by line and
        # the user can select and copy the version for a bug report.
        self.text = QTextBrowser(self)
        self.text.setAccessibleName("About")
        self.text.setPlainText(about_text(model_name))
        layout.addWidget(self.text)
        close = QPushButton("C&lose", self)
        close.setAccessibleName("Close")
        close.setDefault(True)
        close.clicked.connect(self.close)
        layout.addWidget(close)
        self.resize(560, 300)

    def show_now(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
        self.text.setFocus()
