"""The tray icon and its menu, and the small window that stands in for it where a desktop has no tray.

Both are built from the action registry, with each action's hotkey shown beside it, so the menu, the
window and the hotkeys cannot drift apart.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtGui import QAction, QIcon, QKeySequence
from PySide6.QtWidgets import QMenu, QPushButton, QSystemTrayIcon, QVBoxLayout, QWidget

from assistant import actions, resources

APP_NAME = "BLIP Assistant"


def app_icon() -> QIcon:
    icon = QIcon()
    for size in (16, 32, 48, 64, 128, 256):
        path = resources.path("icons", f"blip-assistant-{size}.png")
        if path.exists():
            icon.addFile(str(path))
    return icon


def build_menu(parent: QWidget | None, hotkeys: dict[str, str], run: Callable[[str], None]) -> QMenu:
    menu = QMenu(APP_NAME, parent)
    category = None
    for action in actions.ACTIONS:
        if category is not None and action.category != category:
            menu.addSeparator()
        category = action.category
        item = QAction(action.label, menu)
        key = hotkeys.get(action.id)
        if key:
            # Shown as the menu's shortcut column; global hotkeys are registered elsewhere, not by Qt.
            item.setShortcut(QKeySequence(key))
            item.setShortcutContext(item.shortcutContext().WidgetShortcut)
        item.setToolTip(action.description)
        item.setStatusTip(action.description)
        item.triggered.connect(lambda _checked=False, a=action.id: run(a))
        item.setObjectName(action.id)
        menu.addAction(item)
    menu.setToolTipsVisible(True)
    return menu


class Tray(QSystemTrayIcon):
    def __init__(self, hotkeys: dict[str, str], run: Callable[[str], None]) -> None:
        super().__init__(app_icon())
        self.menu = build_menu(None, hotkeys, run)
        self.setContextMenu(self.menu)
        self.setToolTip(f"{APP_NAME}: starting")
        self._run = run
        self.activated.connect(self._activated)

    def _activated(self, reason: QSystemTrayIcon.ActivationReason) -> None:
        if reason == QSystemTrayIcon.ActivationReason.Trigger:
            self._run("describe-screen")

    def set_status(self, text: str) -> None:
        self.setToolTip(f"{APP_NAME}: {text}")

    def set_hotkeys(self, hotkeys: dict[str, str]) -> None:
        """Show changed hotkeys in the menu (the settings apply without a restart)."""
        self.menu = build_menu(None, hotkeys, self._run)
        self.setContextMenu(self.menu)


class ActionsWindow(QWidget):
    """Every action as a button, for desktops without a tray (and for anyone who prefers a window)."""

    def __init__(self, hotkeys: dict[str, str], run: Callable[[str], None]) -> None:
        super().__init__()
        self.setWindowTitle("Actions")  # Qt appends the app name
        self.setWindowIcon(app_icon())
        self.setAccessibleName(APP_NAME)
        self.setAccessibleDescription("The assistant's actions. Each button also has a global hotkey.")
        layout = QVBoxLayout(self)
        self.buttons: dict[str, QPushButton] = {}
        for action in actions.ACTIONS:
            key = hotkeys.get(action.id)
            text = action.label + (f"  ({key})" if key else "")
            button = QPushButton(text, self)
            button.setObjectName(action.id)
            button.setAccessibleName(action.plain_label)
            button.setAccessibleDescription(action.description + (f" Hotkey: {key}." if key else ""))
            button.setToolTip(action.description)
            button.clicked.connect(lambda _checked=False, a=action.id: run(a))
            layout.addWidget(button)
            self.buttons[action.id] = button

    def set_hotkeys(self, hotkeys: dict[str, str]) -> None:
        for action in actions.ACTIONS:
            key = hotkeys.get(action.id)
            button = self.buttons[action.id]
            button.setText(action.label + (f"  ({key})" if key else ""))
            button.setAccessibleDescription(action.description + (f" Hotkey: {key}." if key else ""))

    def set_status(self, text: str) -> None:
        self.setWindowTitle(f"Actions: {text}")
