"""Start at login: the setting creates and removes the real XDG autostart file, the file's presence is
shown in the setting, and the entry starts the assistant as a desktop would (its Exec line parses back
to the command)."""

from __future__ import annotations

import plistlib
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from assistant import autostart
from assistant.settings import Settings


@pytest.fixture
def config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    return tmp_path / "config"


def _entry_keys(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG entry is the Linux one")
def test_the_setting_creates_and_removes_the_xdg_entry(config_home: Path, tmp_path: Path) -> None:
    settings = Settings(tmp_path / "settings.json")
    autostart.follow(settings)
    entry = config_home / "autostart" / "blip-assistant.desktop"
    assert not entry.exists() and settings["app.start_at_login"] is False

    settings.update({"app.start_at_login": True})
    keys = _entry_keys(entry)
    assert keys["Type"] == "Application" and keys["Name"] == "BLIP Assistant"
    assert shlex.split(keys["Exec"]) == autostart.launch_command()
    assert autostart.is_enabled()

    settings.update({"app.start_at_login": False})
    assert not entry.exists() and not autostart.is_enabled()


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="the XDG entry is the Linux one")
def test_an_entry_made_elsewhere_shows_in_the_setting(config_home: Path, tmp_path: Path) -> None:
    autostart.set_enabled(True, ["/opt/blip assistant/blip-assistant"])  # e.g. by an installer
    settings = Settings(tmp_path / "settings.json")
    autostart.follow(settings)
    assert settings["app.start_at_login"] is True
    assert Settings(tmp_path / "settings.json")["app.start_at_login"] is True  # and it was saved

    # A desktop's "startup applications" tool switches an entry off in place.
    entry = config_home / "autostart" / "blip-assistant.desktop"
    entry.write_text(entry.read_text() + "Hidden=true\n")
    again = Settings(tmp_path / "settings.json")
    autostart.follow(again)
    assert again["app.start_at_login"] is False


def test_exec_line_quotes_paths_with_spaces_and_percent_signs() -> None:
    command = ["/home/ann/My Apps/blip-assistant", "--model", "50%/model"]
    exec_line = _entry_keys_from_text(autostart.desktop_entry(command, autostart=True))["Exec"]
    assert exec_line == '"/home/ann/My Apps/blip-assistant" --model 50%%/model'
    assert shlex.split(exec_line.replace("%%", "%")) == command


def _entry_keys_from_text(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)


def test_a_write_failure_is_said_in_words(config_home: Path, tmp_path: Path) -> None:
    config_home.mkdir()
    (config_home / "autostart").write_text("a file where the folder should be")
    settings = Settings(tmp_path / "settings.json")
    said: list[str] = []
    autostart.follow(settings, said.append)
    settings.update({"app.start_at_login": True})
    assert said and said[0].startswith("Start at login could not be turned on")


def test_macos_launch_agent_runs_the_command_at_login() -> None:
    agent = plistlib.loads(autostart.launch_agent(["/Applications/BLIP Assistant.app/Contents/MacOS/x"]))
    assert agent["RunAtLoad"] is True and agent["ProgramArguments"] == [
        "/Applications/BLIP Assistant.app/Contents/MacOS/x"]
    assert agent["Label"] == autostart.LAUNCH_AGENT_LABEL


def test_windows_run_value_is_one_quoted_command_line() -> None:
    value = autostart._windows_value([r"C:\Program Files\BLIP Assistant\blip-assistant.exe"])
    assert value == r'"C:\Program Files\BLIP Assistant\blip-assistant.exe"'


def test_the_module_command_prints_the_entry_packagers_ship(config_home: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "assistant.autostart", "desktop-entry"], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("[Desktop Entry]") and "X-GNOME-Autostart-enabled=true" in out
