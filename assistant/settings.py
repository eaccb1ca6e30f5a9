"""The settings spec as data, and the settings file.

Every setting is declared once here (name, type, default, allowed values, label, help). The settings
window, the file under ``BLIP_ASSISTANT_HOME``, the command-line overrides and the user guide read
this table. Hotkey settings come from the action registry, so a new action gets its setting for free.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import actions, home

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    label: str
    help: str
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    kind: type = field(default=str)

    def check(self, value: Any) -> Any:
        """The value, converted to this setting's type; ValueError (with words for the user) if it does not
        fit."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.label} must be on or off, not {value!r}")
            return value
        if self.kind in (int, float):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{self.label} must be a number, not {value!r}")
            value = self.kind(value)
            if self.minimum is not None and value < self.minimum:
                raise ValueError(f"{self.label} must be at least {self.minimum}")
            if self.maximum is not None and value > self.maximum:
                raise ValueError(f"{self.label} must be at most {self.maximum}")
            return value
        if value is None and self.default is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{self.label} must be text, not {value!r}")
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(map(str, self.choices))
            raise ValueError(f"{self.label} must be one of {allowed}, not {value!r}")
        return value


def hotkey_setting_name(action_id: str) -> str:
    return f"hotkey.{action_id}"


_HOTKEYS = tuple(
    Setting(hotkey_setting_name(a.id), a.hotkey or "", f"Hotkey: {a.plain_label}",
            f"Global hotkey for '{a.plain_label}'; empty for none.")
    for a in actions.ACTIONS
)

SPEC: tuple[Setting, ...] = (
    Setting("speech.route", "auto", "Speech output",
            "Who speaks: 'auto' picks a running screen reader, else the assistant's own voice.",
            choices=("auto", "own-voice", "screen-reader")),
    Setting("speech.voice", "", "Voice", "The own voice's voice id; empty for the system default."),
    Setting("speech.rate", 190, "Speech rate", "Words per minute of the own voice.", minimum=80, maximum=450,
            kind=int),
    Setting("speech.volume", 1.0, "Volume", "The own voice's volume, 0 to 1.", minimum=0.0, maximum=1.0,
            kind=float),
    Setting("speech.announce", False, "Announce to the screen reader",
            "While an assistant window has the focus, also send its new text to your screen reader as an "
            "announcement (it reaches a braille display too). Off by default: the speech output already "
            "says it, and the text would be heard twice.", kind=bool),
    Setting("speech.earcons", True, "Earcons", "Short sounds for 'captured' and 'working'.", kind=bool),
    Setting("describe.detail", "brief", "Detail level", "Brief or detailed descriptions.",
            choices=("brief", "detailed")),
    Setting("describe.read_text", True, "Read text in descriptions",
            "Descriptions also say the window's name and quote the text on it (after the picture).",
            kind=bool),
    Setting("read.area", "window", "Read text from", "What 'Read text' reads: the active window or the "
            "whole screen.", choices=("window", "screen")),
    Setting("ocr.engine", "auto", "Text reader (OCR)", "auto: Tesseract where installed, else RapidOCR.",
            choices=("auto", "tesseract", "rapidocr")),
    Setting("model.name", "builtin", "Model",
            "builtin (works offline), base or large (Salesforce BLIP, downloaded on request), or a folder. "
            "The Models button after this field chooses, downloads or checks one."),
    Setting("model.use_gpu", True, "Use the GPU", "Use an NVIDIA GPU when one is present.", kind=bool),
    Setting("app.start_at_login", False, "Start at login", "Start the assistant when you log in.", kind=bool),
    Setting("app.show_welcome", True, "Welcome at start",
            "Show and say the welcome with the main hotkeys at the next start (turned off once shown).",
            kind=bool),
    Setting("app.debug_log", False, "Debug logging",
            "Also write what was said and read (captions, screen text) into the log file, to report a "
            "problem. Off: the log holds only timings and errors.", kind=bool),
    Setting("history.length", 50, "History length", "How many results the history keeps.", minimum=0,
            maximum=1000, kind=int),
    Setting("history.keep_none", False, "Keep no history", "Keep nothing on disk.", kind=bool),
    Setting("display.font_scale", 1.0, "Text size", "Text size in the assistant's windows.", minimum=0.75,
            maximum=4.0, kind=float),
    *_HOTKEYS,
)

BY_NAME: dict[str, Setting] = {s.name: s for s in SPEC}


def defaults() -> dict[str, Any]:
    return {s.name: s.default for s in SPEC}


class Settings:
    """The user's settings: the defaults with the file's valid values over them.

    A value that fails its check is dropped (its default stands) and reported in ``problems``; a file
    that is not JSON at all is moved aside to ``settings.json.bad-<time>`` and replaced by defaults,
    and ``notice`` says so in words the app speaks.
    """

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or home.settings_file()
        self.values: dict[str, Any] = defaults()
        self.problems: list[str] = []
        self.notice: str | None = None
        self._listeners: list[Callable[[str, Any], None]] = []
        self._load()

    def __getitem__(self, name: str) -> Any:
        return self.values[name]

    def hotkeys(self) -> dict[str, str]:
        """Action id -> hotkey, for actions bound to one."""
        out = {}
        for a in actions.ACTIONS:
            key = self.values[hotkey_setting_name(a.id)]
            if key:
                out[a.id] = key
        return out

    def on_change(self, listener: Callable[[str, Any], None]) -> None:
        self._listeners.append(listener)

    def update(self, changes: Mapping[str, Any]) -> None:
        """Check every change first, then apply and save them together (all or nothing)."""
        checked = {}
        for name, value in changes.items():
            if name not in BY_NAME:
                raise KeyError(f"unknown setting {name!r}")
            checked[name] = BY_NAME[name].check(value)
        self.values.update(checked)
        self.save()
        for name, value in checked.items():
            for listener in self._listeners:
                listener(name, value)

    def save(self) -> None:
        """Write atomically: a crash mid-write leaves the old file, never half of the new one."""
        data = {"version": SCHEMA_VERSION, "settings": {k: v for k, v in self.values.items()
                                                        if v != BY_NAME[k].default}}
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def _load(self) -> None:
        if not self.path.exists():
            return
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            stored = data["settings"]
            if not isinstance(stored, dict):
                raise TypeError("settings is not an object")
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            backup = self.path.with_name(f"{self.path.name}.bad-{time.strftime('%Y%m%d-%H%M%S')}")
            try:
                os.replace(self.path, backup)
                where = f"The old file was kept as {backup.name}."
            except OSError:
                where = "The old file could not be moved aside."
            self.notice = f"The settings file was damaged, so the default settings are in use. {where}"
            log.warning("corrupt settings file %s: %s", self.path, exc)
            return
        for name, value in stored.items():
            spec = BY_NAME.get(name)
            if spec is None:
                continue  # a setting from a newer or older version: ignored, not an error
            try:
                self.values[name] = spec.check(value)
            except ValueError as exc:
                self.problems.append(str(exc))
        if self.problems:
            self.notice = "Some settings were not valid and are back to their defaults: " + "; ".join(
                self.problems)
