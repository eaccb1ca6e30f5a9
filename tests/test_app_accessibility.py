"""Accessibility of the app's own windows without a desktop (offscreen, pytest-qt): hotkeys recorded by
pressing them, with clashes in words; text size applied live; no colour of our own; the first-run words;
"Delete all" in the history. The same windows are read over AT-SPI in test_app_atspi.py."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication, QLabel

from assistant.first_run import platform_notes, welcome_lines
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
CTRL_ALT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.AltModifier


def test_a_hotkey_is_recorded_by_pressing_it(qtbot) -> None:
    from assistant.app.hotkey_edit import HotkeyEdit

    edit = HotkeyEdit("Ctrl+Alt+D")
    qtbot.addWidget(edit)
    changes: list[str] = []
    refused: list[str] = []
    edit.changed.connect(changes.append)
    edit.refused.connect(refused.append)
    qtbot.keyClick(edit, Qt.Key.Key_Control, Qt.KeyboardModifier.ControlModifier)  # a lone modifier: nothing
    qtbot.keyClick(edit, Qt.Key.Key_K, CTRL_ALT | Qt.KeyboardModifier.ShiftModifier)
    assert edit.hotkey() == "Ctrl+Alt+Shift+K" and edit.text() == "Ctrl+Alt+Shift+K"
    qtbot.keyClick(edit, Qt.Key.Key_F7, CTRL_ALT)
    assert edit.hotkey() == "Ctrl+Alt+F7"
    qtbot.keyClick(edit, Qt.Key.Key_PageUp, CTRL_ALT)
    assert edit.hotkey() == "Ctrl+Alt+PgUp"
    qtbot.keyClick(edit, Qt.Key.Key_Backspace)
    assert edit.hotkey() == "" and changes[-1] == ""
    qtbot.keyClick(edit, Qt.Key.Key_A)  # typing never becomes the value
    assert edit.hotkey() == "" and refused[-1].startswith("A alone types text")


def test_recording_says_the_keys_and_the_clash_and_refuses_to_save_a_duplicate(qtbot, tmp_path: Path) -> None:
    from assistant.app.settings_window import SettingsWindow

    settings = Settings(tmp_path / "settings.json")
    said: list[str] = []
    window = SettingsWindow(settings, said.append)
    qtbot.addWidget(window)
    window.show()
    field = window.controls["hotkey.describe-screen"]
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_J, CTRL_ALT | Qt.KeyboardModifier.ShiftModifier)
    assert said[-1] == "Control+Alt+Shift+J."
    qtbot.keyClick(field, Qt.Key.Key_S, CTRL_ALT)  # "Stop speaking" has it
    assert said[-1].startswith("Control+Alt+S.") and "is set for both" in said[-1], said[-1]
    assert "Stop speaking" in window.error.text() or "Stop" in window.error.text()
    window.save()
    assert window.isVisible() and "not saved" in said[-1]
    assert Settings(tmp_path / "settings.json")["hotkey.describe-screen"] == "Ctrl+Alt+D"
    qtbot.keyClick(field, Qt.Key.Key_J, CTRL_ALT | Qt.KeyboardModifier.ShiftModifier)
    window.save()
    assert Settings(tmp_path / "settings.json")["hotkey.describe-screen"] == "Ctrl+Alt+Shift+J"
    # Tab still moves on: the field never traps the keyboard.
    field.setFocus()
    qtbot.keyClick(field, Qt.Key.Key_Tab)
    assert QApplication.focusWidget() is not field


def test_text_size_applies_live_to_open_windows(qtbot, tmp_path: Path) -> None:
    from assistant.app.history_window import HistoryWindow
    from assistant.app.live_settings import FontScaler, HotkeyService, apply_live

    app = QApplication.instance()
    original = app.font()
    settings = Settings(tmp_path / "settings.json")

    class Stopped:
        def stop(self) -> None:
            pass

    try:
        scaler = apply_live(app, settings, HotkeyService(settings, lambda _keys: Stopped()))
        assert isinstance(scaler, FontScaler)
        window = HistoryWindow(list, lambda r: None, lambda t: None)
        qtbot.addWidget(window)
        window.show()
        label = window.findChild(QLabel)
        base = label.fontInfo().pixelSize()
        settings.update({"display.font_scale": 2.0})
        qtbot.waitUntil(lambda: label.fontInfo().pixelSize() >= 1.8 * base, timeout=2000)
        assert label.sizeHint().height() > base  # the layout grew with it, nothing clipped to the old size
        settings.update({"display.font_scale": 1.0})
        qtbot.waitUntil(lambda: label.fontInfo().pixelSize() == base, timeout=2000)
    finally:
        app.setFont(original)


def test_windows_use_the_system_palette_and_no_colour_of_their_own() -> None:
    """High contrast themes work only if no window paints its own colours; the region picker's
    high-visibility frame is the one exception (it draws over the screen, not in a window)."""
    pattern = re.compile(r"setStyleSheet|QColor\(|setPalette|Qt\.GlobalColor|#[0-9a-fA-F]{6}\b")
    offenders = []
    for path in sorted((ROOT / "assistant" / "app").glob("*.py")):
        if path.name == "region_picker.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                offenders.append(f"{path.name}:{number}: {line.strip()}")
    assert not offenders, offenders


def test_the_welcome_teaches_three_keys_and_the_platforms_limits() -> None:
    from assistant.settings import defaults

    keys = {k.removeprefix("hotkey."): v for k, v in defaults().items() if k.startswith("hotkey.") and v}
    x11 = welcome_lines(keys, {"XDG_SESSION_TYPE": "x11", "DISPLAY": ":0"}, "linux")
    text = " ".join(x11)
    assert "The 3 keys to remember: Control+Alt+D: describe screen" in text
    assert "Stop speaking".lower() in text and "Try one now: press Control+Alt+D" in text
    assert "Wayland" not in text and "permission" not in text
    wayland = " ".join(platform_notes({"XDG_SESSION_TYPE": "wayland"}, "linux"))
    assert "Wayland session" in wayland and "blip-assistant trigger describe-screen" in wayland
    assert "open an image" in wayland
    assert platform_notes({"WAYLAND_DISPLAY": "wayland-0"}, "linux")
    mac = " ".join(platform_notes({}, "darwin"))
    assert "Screen Recording" in mac and "permission" in mac
    assert platform_notes({}, "win32") == []


def test_the_welcome_window_is_named_tried_and_remembered(qtbot, tmp_path: Path) -> None:
    from assistant.app.welcome_window import WelcomeWindow

    settings = Settings(tmp_path / "settings.json")
    ran: list[str] = []
    window = WelcomeWindow(settings, settings.hotkeys(), ran.append, {"XDG_SESSION_TYPE": "wayland"}, "linux")
    qtbot.addWidget(window)
    window.show_now()
    assert window.accessibleName() == "Welcome to BLIP Assistant"
    assert "Wayland" in window.text.toPlainText()
    assert Settings(tmp_path / "settings.json")["app.show_welcome"] is False  # shown once
    qtbot.mouseClick(window.try_button, Qt.MouseButton.LeftButton)
    assert ran == ["describe-screen"]
    window.again.setChecked(True)
    qtbot.keyClick(window, Qt.Key.Key_Escape)
    assert not window.isVisible()
    assert Settings(tmp_path / "settings.json")["app.show_welcome"] is True  # asked for again


def test_delete_all_empties_the_history_after_a_question(qtbot) -> None:
    from assistant.app.controller import Result
    from assistant.app.history_window import HistoryWindow

    history = [Result(text=f"Entry {i}.", action="describe-screen", label="screen", at=float(i))
               for i in range(3)]
    said: list[str] = []
    answers = [False, True]
    questions: list[str] = []

    def confirm(question: str) -> bool:
        questions.append(question)
        return answers.pop(0)

    window = HistoryWindow(lambda: history, lambda r: None, said.append, forget_all=history.clear,
                           confirm=confirm)
    qtbot.addWidget(window)
    window.show_now()
    window.delete_all()
    assert len(history) == 3 and window.list.count() == 3  # "No" keeps everything
    window.delete_all()
    assert history == [] and window.list.count() == 0
    assert "Delete all 3 entries" in questions[0] and said[-1] == "The history is deleted."
