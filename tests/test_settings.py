"""The settings spec and file: defaults from one table, validation with words, a corrupt file kept aside."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant import actions, settings


def test_hotkey_settings_come_from_the_action_registry() -> None:
    for action in actions.ACTIONS:
        spec = settings.BY_NAME[settings.hotkey_setting_name(action.id)]
        assert spec.default == (action.hotkey or "")
    assert settings.Settings.__init__  # the class reads the same table
    assert set(settings.defaults()) == set(settings.BY_NAME)


def test_defaults_when_there_is_no_file(tmp_path: Path) -> None:
    s = settings.Settings(tmp_path / "settings.json")
    assert s["model.name"] == "builtin" and s.notice is None
    assert s.hotkeys()["describe-screen"] == "Ctrl+Alt+D"


def test_update_saves_only_changes_and_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    s = settings.Settings(path)
    seen = []
    s.on_change(lambda name, value: seen.append((name, value)))
    s.update({"speech.rate": 250, "describe.detail": "detailed"})
    assert seen == [("speech.rate", 250), ("describe.detail", "detailed")]
    stored = json.loads(path.read_text())
    assert stored["settings"] == {"describe.detail": "detailed", "speech.rate": 250}
    again = settings.Settings(path)
    assert again["speech.rate"] == 250 and again["describe.detail"] == "detailed"


def test_a_bad_update_changes_nothing(tmp_path: Path) -> None:
    s = settings.Settings(tmp_path / "settings.json")
    with pytest.raises(ValueError, match="Speech rate must be at most 450"):
        s.update({"describe.detail": "detailed", "speech.rate": 9000})
    assert s["describe.detail"] == "brief" and not (tmp_path / "settings.json").exists()
    with pytest.raises(ValueError, match="Detail level must be one of brief, detailed"):
        s.update({"describe.detail": "chatty"})
    with pytest.raises(KeyError):
        s.update({"no.such": 1})


def test_a_corrupt_file_is_kept_aside_and_defaults_are_used(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"version": 1, "settings": {"speech.rate": 2')  # cut off mid-write by a crash
    s = settings.Settings(path)
    assert s["speech.rate"] == 190
    assert s.notice and "damaged" in s.notice
    backups = list(tmp_path.glob("settings.json.bad-*"))
    assert len(backups) == 1 and backups[0].read_text().startswith('{"version"')
    assert not path.exists()


def test_invalid_values_fall_back_one_by_one(tmp_path: Path) -> None:
    path = tmp_path / "settings.json"
    path.write_text(json.dumps({"version": 1, "settings": {
        "speech.rate": "fast", "speech.volume": 0.5, "future.setting": True}}))
    s = settings.Settings(path)
    assert s["speech.rate"] == 190 and s["speech.volume"] == 0.5
    assert s.notice and "Speech rate must be a number" in s.notice


def test_the_user_guide_lists_every_action_and_hotkey() -> None:
    from assistant import guide

    text = guide.read()
    assert guide.render(text) == text, "the guide is out of date: run `python -m assistant.guide`"
    for action in actions.ACTIONS:
        assert f"`{action.id}`" in text and (action.hotkey or "none") in text


def test_menu_mnemonics_are_unique() -> None:
    """Alt+letter in the tray menu and the actions window must reach exactly one action."""
    letters = [a.label[a.label.index("&") + 1].lower() for a in actions.ACTIONS if "&" in a.label]
    duplicated = {x for x in letters if letters.count(x) > 1}
    assert not duplicated, duplicated
