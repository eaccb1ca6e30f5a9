"""The settings window, generated from the settings spec (``assistant.settings.SPEC``).

Each setting becomes the control its type calls for, labelled with its name and described with its help
text, so a screen reader says what it is and what it does. OK saves all changes at once (a value that
does not fit is refused with its reason, spoken and shown); Escape cancels.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QScrollBar,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from assistant import model_store
from assistant.app.announce import announce
from assistant.app.hotkey_edit import HELP as HOTKEY_HELP
from assistant.app.hotkey_edit import HotkeyEdit
from assistant.app.live_settings import text_sized
from assistant.app.models_dialog import ModelsDialog
from assistant.app.tray import app_icon
from assistant.hotkeys import ERROR, check, parse
from assistant.settings import SPEC, Setting, Settings

HOTKEY_PREFIX = "hotkey."
MODEL_SETTING = "model.name"


def _model_problem(value: str | None) -> str | None:
    """Why a typed model folder cannot be used; a model's name or a hub id is checked when it loads."""
    if not value or model_store.choice_for(value) is not None or value == model_store.BUILTIN:
        return None
    if value.startswith((".", "/", "~", "\\")) or Path(value).expanduser().exists() or ":" in value:
        return model_store.folder_problem(value)
    return None


def _control(spec: Setting, value: Any, parent: QWidget) -> QWidget:
    if spec.name.startswith(HOTKEY_PREFIX):
        return HotkeyEdit(str(value or ""), parent)
    if spec.kind is bool:
        box = QCheckBox(parent)
        box.setChecked(bool(value))
        return box
    if spec.choices is not None:
        combo = QComboBox(parent)
        combo.addItems([str(c) for c in spec.choices])
        combo.setCurrentText(str(value))
        return combo
    if spec.kind is int:
        spin = QSpinBox(parent)
        spin.setRange(int(spec.minimum or 0), int(spec.maximum or 10**6))
        spin.setValue(int(value))
        return spin
    if spec.kind is float:
        dspin = QDoubleSpinBox(parent)
        dspin.setRange(float(spec.minimum or 0.0), float(spec.maximum or 10**6))
        dspin.setSingleStep(0.05)
        dspin.setValue(float(value))
        return dspin
    edit = QLineEdit(str(value or ""), parent)
    return edit


def _outside_bar(scroll: QScrollArea, parent: QWidget) -> QScrollBar:
    """The scroll area's vertical bar, outside it. Qt's accessible QScrollArea lists its bars only while
    they are shown and hands out a child by index unchecked (Qt 6.12): a screen reader that counted three
    children as Settings closed asked for the third and the app died of a segmentation fault (a core dump,
    2026-12-07). The area's own bars stay hidden, so it always has the one child; this bar, a plain child
    of the dialog, scrolls it."""
    scroll.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # rows wrap instead
    inner = scroll.verticalScrollBar()
    bar = QScrollBar(Qt.Orientation.Vertical, parent)
    bar.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the settings, and the area follows focus
    bar.setAccessibleName("Scroll the settings")

    def follow_range(low: int, high: int) -> None:
        bar.setRange(low, high)
        bar.setPageStep(inner.pageStep())
        bar.setSingleStep(inner.singleStep())
        bar.setVisible(high > low)

    inner.rangeChanged.connect(follow_range)
    inner.valueChanged.connect(bar.setValue)
    bar.valueChanged.connect(inner.setValue)
    follow_range(inner.minimum(), inner.maximum())
    return bar


def _value(spec: Setting, control: QWidget) -> Any:
    if isinstance(control, HotkeyEdit):
        return control.hotkey()
    if isinstance(control, QCheckBox):
        return control.isChecked()
    if isinstance(control, QComboBox):
        return control.currentText()
    if isinstance(control, QSpinBox | QDoubleSpinBox):
        return control.value()
    assert isinstance(control, QLineEdit)
    return control.text().strip()


class SettingsWindow(QDialog):
    def __init__(self, settings: Settings, say: Callable[[str], None]) -> None:
        super().__init__()
        self.settings, self._say = settings, say
        self.setWindowTitle("Settings")
        self.setWindowIcon(app_icon())
        self.setAccessibleName("Settings")
        outer = QVBoxLayout(self)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Tab goes to the settings; the area follows focus
        inner = QWidget(scroll)
        form = QFormLayout(inner)
        # With large text a label goes above its control instead of pushing it out of the window.
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
        self.controls: dict[str, QWidget] = {}
        for spec in SPEC:
            control = _control(spec, settings[spec.name], inner)
            control.setObjectName(spec.name)
            control.setAccessibleName(spec.label)
            help_text = f"{spec.help} {HOTKEY_HELP}" if isinstance(control, HotkeyEdit) else spec.help
            control.setAccessibleDescription(help_text)
            control.setToolTip(help_text)
            if isinstance(control, HotkeyEdit):
                action_id = spec.name.removeprefix(HOTKEY_PREFIX)
                control.changed.connect(lambda text, a=action_id: self._hotkey_changed(a, text))
                control.refused.connect(self._tell)
            label = QLabel(spec.label + ":", inner)
            label.setBuddy(control)
            form.addRow(label, control)
            self.controls[spec.name] = control
            if spec.name == MODEL_SETTING:  # choosing, downloading and checking models: its own dialog
                form.addRow("", self._models_button(inner))
        scroll.setWidget(inner)
        row = QHBoxLayout()
        row.addWidget(scroll)
        row.addWidget(_outside_bar(scroll, self))
        outer.addLayout(row)
        self.error = QLabel("", self)
        self.error.setWordWrap(True)
        self.error.setAccessibleName("Problem")
        outer.addWidget(self.error)
        ok_cancel = QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        buttons = QDialogButtonBox(ok_cancel, self)
        buttons.accepted.connect(self.save)
        buttons.rejected.connect(self.reject)
        outer.addWidget(buttons)
        self.resize(*text_sized(self, 64, 34))

    def _tell(self, message: str) -> None:
        self.error.setText(message)
        self._say(message)
        announce(self.error, message)

    def _models_button(self, parent: QWidget) -> QPushButton:
        button = QPushButton("&Models...", parent)
        button.setObjectName("models")
        button.setAccessibleName("Models")
        button.setAccessibleDescription("Choose the built-in model, download Salesforce BLIP base or large "
                                        "(the size is said first), or use a model folder.")
        button.setAutoDefault(False)
        button.clicked.connect(self.open_models)
        return button

    def _back_to(self, field: QWidget) -> None:
        self.activateWindow()
        field.setFocus()  # the model field, with what the dialog chose, is read next

    def open_models(self) -> ModelsDialog:
        field = self.controls[MODEL_SETTING]
        assert isinstance(field, QLineEdit)
        dialog = ModelsDialog(field.text().strip() or "builtin", self._say, parent=self)
        dialog.chosen.connect(field.setText)
        dialog.finished.connect(lambda _result: self._back_to(field))
        self.models_dialog = dialog
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.show()
        return dialog

    def _hotkeys(self) -> dict[str, str]:
        return {name.removeprefix(HOTKEY_PREFIX): control.hotkey() for name, control in self.controls.items()
                if isinstance(control, HotkeyEdit)}

    def _hotkey_changed(self, action_id: str, text: str) -> None:
        """Say the recorded combination in words, with any clash it causes, as soon as it is pressed."""
        if not text:
            self._tell("No hotkey.")
            return
        problems = [c.message for c in check(self._hotkeys()) if action_id in c.actions]
        self._tell(" ".join([f"{parse(text).words}.", *problems]))

    def save(self) -> None:
        changes = {}
        for spec in SPEC:
            value = _value(spec, self.controls[spec.name])
            if value != self.settings[spec.name]:
                changes[spec.name] = value
        errors = [c.message for c in check(self._hotkeys()) if c.level == ERROR]
        if errors:
            self._tell("The settings were not saved: " + " ".join(errors))
            return
        problem = _model_problem(changes.get(MODEL_SETTING))
        if problem:
            self._tell(f"The settings were not saved: {problem}")
            return
        try:
            self.settings.update(changes)
        except (ValueError, KeyError, OSError) as exc:
            message = f"The settings were not saved: {exc}"
            self.error.setText(message)
            self._say(message)
            return
        self._say("Settings saved.")
        announce(self, "Settings saved.")
        self.accept()
