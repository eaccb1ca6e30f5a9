"""The user guide, readable inside the app (the same Markdown file as ``resources/guide/user-guide.md``)."""

from __future__ import annotations

from PySide6.QtWidgets import QDialog, QPushButton, QTextBrowser, QVBoxLayout

from assistant import guide
from assistant.app.tray import app_icon


class GuideWindow(QDialog):
    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("User guide")
        self.setWindowIcon(app_icon())
        self.setAccessibleName("User guide")
        layout = QVBoxLayout(self)
        self.text = QTextBrowser(self)
        self.text.setAccessibleName("User guide")
        self.text.setOpenExternalLinks(False)  # the guide opens nothing on the network
        self.text.setMarkdown(guide.read())
        layout.addWidget(self.text)
        close = QPushButton("C&lose", self)
        close.setAccessibleName("Close")
        close.clicked.connect(self.close)
        layout.addWidget(close)
        self.resize(720, 640)

    def show_now(self) -> None:
        self.show()
        self.raise_()
        self.activateWindow()
        self.text.setFocus()
