"""A hotkey field that records a key combination by pressing it, instead of asking the user to spell it.

Focus the field and press the combination: it shows "Ctrl+Alt+D", says "Control+Alt+D", and reports
clashes in words (from ``assistant.hotkeys.check``). Tab and Shift+Tab still move on and Escape still
closes the window, so the field never traps the keyboard; Backspace or Delete alone clears the hotkey.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtGui import QKeyEvent, QKeySequence
from PySide6.QtWidgets import QLineEdit, QWidget

from assistant.hotkeys import KEYS, parse

_MODIFIER_KEYS = {Qt.Key.Key_Control, Qt.Key.Key_Alt, Qt.Key.Key_Shift, Qt.Key.Key_Meta, Qt.Key.Key_AltGr,
                  Qt.Key.Key_Super_L, Qt.Key.Key_Super_R, Qt.Key.Key_Hyper_L, Qt.Key.Key_Hyper_R}
_PASS_ALONE = {Qt.Key.Key_Tab, Qt.Key.Key_Backtab, Qt.Key.Key_Escape}
_CLEAR_ALONE = {Qt.Key.Key_Backspace, Qt.Key.Key_Delete}
_QT_MODIFIERS = ((Qt.KeyboardModifier.ControlModifier, "Ctrl"), (Qt.KeyboardModifier.AltModifier, "Alt"),
                 (Qt.KeyboardModifier.ShiftModifier, "Shift"), (Qt.KeyboardModifier.MetaModifier, "Meta"))

HELP = ("Press the key combination you want, for example Control+Alt+D. Backspace clears it. Tab moves on. "
        "The global hotkeys are paused while the settings are open.")


def combination(event: QKeyEvent) -> str | None:
    """The pressed combination as "Ctrl+Alt+D", or None for a lone modifier."""
    key = Qt.Key(event.key())
    if key in _MODIFIER_KEYS or key == Qt.Key.Key_unknown:
        return None
    modifiers = [name for flag, name in _QT_MODIFIERS if event.modifiers() & flag]
    # Shift+1 arrives as "!": name the key, not the character, where Qt offers the native key's name.
    name = QKeySequence(key).toString(QKeySequence.SequenceFormat.PortableText)
    if key == Qt.Key.Key_Backtab:
        name = "Tab"
    return "+".join([*modifiers, name])


class HotkeyEdit(QLineEdit):
    """``changed(text)`` fires with the new hotkey ("" when cleared) or with the refused text's reason."""

    changed = Signal(str)
    refused = Signal(str)

    def __init__(self, value: str, parent: QWidget | None = None) -> None:
        super().__init__(value or "", parent)
        self.setReadOnly(True)  # typed text is never the value: the pressed keys are
        self.setPlaceholderText("none: press a key combination")
        self._value = value or ""

    def hotkey(self) -> str:
        return self._value

    def set_hotkey(self, value: str) -> None:
        self._value = value
        self.setText(value)
        self.changed.emit(value)

    def keyPressEvent(self, event: QKeyEvent) -> None:
        key = Qt.Key(event.key())
        plain = not event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier
        shift_only = event.modifiers() == Qt.KeyboardModifier.ShiftModifier
        if key in _PASS_ALONE and (plain or (shift_only and key in (Qt.Key.Key_Tab, Qt.Key.Key_Backtab))):
            event.ignore()  # focus moves on, Escape reaches the dialog
            super().keyPressEvent(event)
            return
        if plain and key in _CLEAR_ALONE:
            self.set_hotkey("")
            return
        text = combination(event)
        if text is None:
            return
        try:
            hotkey = parse(text)
        except ValueError as exc:
            self.refused.emit(str(exc))
            return
        if KEYS[hotkey.key].typing and set(hotkey.modifiers) <= {"Shift"}:
            # A letter alone (or with Shift) would be taken from every program the user types in.
            self.refused.emit(f"{hotkey.words} alone types text, so it cannot be a hotkey; hold Control or "
                              "Alt with it, as in Control+Alt+D.")
            return
        self.set_hotkey(str(hotkey))
