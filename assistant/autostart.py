"""Start at login: the platform's own autostart entry, created and removed when the setting changes.

- Linux (and other XDG desktops): ``$XDG_CONFIG_HOME/autostart/blip-assistant.desktop``;
- Windows: the value ``BLIP Assistant`` under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``
  (the installer's "start at login" task writes the same value, so either can remove it);
- macOS: ``~/Library/LaunchAgents/org.blipassistant.BlipAssistant.plist``.

The entry is the truth: :func:`follow` makes the ``app.start_at_login`` setting show whether the entry is
there (an installer or the desktop's own "startup applications" tool may have changed it), then keeps the
entry in step with the setting. Qt-free, so it can be tested with real files and no display.
"""

from __future__ import annotations

import contextlib
import logging
import os
import plistlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SETTING = "app.start_at_login"
APP_NAME = "BLIP Assistant"
DESKTOP_FILE = "blip-assistant.desktop"
RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"
LAUNCH_AGENT_LABEL = "org.blipassistant.BlipAssistant"


class AutostartError(OSError):
    """The entry could not be written or removed; the message is for the user."""


def launch_command() -> list[str]:
    """How the login session starts this assistant: the bundle's executable, or the installed command
    next to this Python, or this Python running the package."""
    if getattr(sys, "frozen", False):  # a PyInstaller bundle
        return [sys.executable]
    scripts = Path(sys.executable).parent
    for name in ("blip-assistant", "blip-assistant.exe"):
        if (scripts / name).is_file():
            return [str(scripts / name)]
    return [sys.executable, "-m", "assistant"]


# -- Linux and other XDG desktops ------------------------------------------------------------------------

def xdg_autostart_file() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "autostart" / DESKTOP_FILE


def _exec_quote(arg: str) -> str:
    # The Desktop Entry spec: quote arguments holding reserved characters, escape \ " ` $ inside quotes,
    # and double every % (field codes).
    arg = arg.replace("%", "%%")
    if arg and not any(c in arg for c in ' \t\n"\'\\><~|&;$*?#()`'):
        return arg
    escaped = "".join("\\" + c if c in '"`$\\' else c for c in arg)
    return f'"{escaped}"'


def desktop_entry(command: list[str], *, autostart: bool) -> str:
    """A .desktop file: the launcher (``autostart=False``) or the login entry."""
    lines = [
        "[Desktop Entry]",
        "Type=Application",
        f"Name={APP_NAME}",
        "GenericName=Screen describer",
        "Comment=Hear what is on your screen, on your own computer",
        "Exec=" + " ".join(_exec_quote(a) for a in command),
        "Icon=blip-assistant",
        "Terminal=false",
        "Categories=Utility;Accessibility;",
        "Keywords=screen;describe;blind;low vision;caption;accessibility;",
        "StartupNotify=false",
    ]
    if autostart:
        lines += ["X-GNOME-Autostart-enabled=true", "X-GNOME-Autostart-Delay=2",
                  "X-KDE-autostart-after=panel"]
    return "\n".join(lines) + "\n"


def _xdg_enabled(path: Path) -> bool:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    keys = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            keys[key.strip()] = value.strip().lower()
    # Desktops switch an entry off in place rather than deleting it.
    return keys.get("Hidden") != "true" and keys.get("X-GNOME-Autostart-enabled") != "false"


def _xdg_set(enabled: bool, command: list[str]) -> None:
    path = xdg_autostart_file()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(desktop_entry(command, autostart=True), encoding="utf-8")
        os.replace(tmp, path)
    else:
        path.unlink(missing_ok=True)


# -- Windows ---------------------------------------------------------------------------------------------

def _windows_value(command: list[str]) -> str:
    import subprocess

    return subprocess.list2cmdline(command)


def _windows_enabled() -> bool:
    import winreg  # type: ignore[import-not-found]

    try:
        with winreg.OpenKey(winreg.HKEY_CURRENT_USER, RUN_KEY) as key:
            winreg.QueryValueEx(key, APP_NAME)
            return True
    except FileNotFoundError:
        return False


def _windows_set(enabled: bool, command: list[str]) -> None:
    import winreg  # type: ignore[import-not-found]

    with winreg.CreateKeyEx(winreg.HKEY_CURRENT_USER, RUN_KEY, 0, winreg.KEY_SET_VALUE) as key:
        if enabled:
            winreg.SetValueEx(key, APP_NAME, 0, winreg.REG_SZ, _windows_value(command))
        else:
            with contextlib.suppress(FileNotFoundError):
                winreg.DeleteValue(key, APP_NAME)


# -- macOS -----------------------------------------------------------------------------------------------

def launch_agent_file() -> Path:
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent(command: list[str]) -> bytes:
    return plistlib.dumps({
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": command,
        "RunAtLoad": True,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",  # the user's graphical login, not ssh sessions
    })


def _macos_set(enabled: bool, command: list[str]) -> None:
    path = launch_agent_file()
    if enabled:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(launch_agent(command))
    else:
        path.unlink(missing_ok=True)


# -- the platform's entry --------------------------------------------------------------------------------

def is_enabled(platform: str | None = None) -> bool:
    platform = platform or sys.platform
    if platform == "win32":
        return _windows_enabled()
    if platform == "darwin":
        return launch_agent_file().is_file()
    return _xdg_enabled(xdg_autostart_file())


def set_enabled(enabled: bool, command: list[str] | None = None, platform: str | None = None) -> None:
    """Create (``enabled``) or remove the entry; AutostartError says in words what went wrong."""
    platform = platform or sys.platform
    command = command or launch_command()
    setter = {"win32": _windows_set, "darwin": _macos_set}.get(platform, _xdg_set)
    try:
        setter(enabled, command)
    except OSError as exc:
        verb = "turned on" if enabled else "turned off"
        raise AutostartError(f"Start at login could not be {verb}: {exc.strerror or exc}") from exc


def follow(settings: Any, on_error: Callable[[str], None] | None = None) -> None:
    """Show the entry's state in the setting, then create or remove the entry whenever it changes."""

    def changed(name: str, value: Any) -> None:
        if name != SETTING:
            return
        try:
            if bool(value) != is_enabled():
                set_enabled(bool(value))
        except AutostartError as exc:
            log.warning("%s", exc)
            if on_error is not None:
                on_error(str(exc))

    try:
        present = is_enabled()
    except OSError as exc:  # an unreadable registry or folder: leave the setting as it is
        log.warning("start at login: %s", exc)
        present = settings[SETTING]
    if present != settings[SETTING]:
        settings.update({SETTING: present})
    settings.on_change(changed)


def _main(argv: list[str]) -> int:
    """``python -m assistant.autostart [on|off|status|desktop-entry]``, for installers and packagers."""
    what = argv[0] if argv else "status"
    if what == "desktop-entry":
        print(desktop_entry(launch_command(), autostart=True), end="")
    elif what in ("on", "off"):
        set_enabled(what == "on")
    elif what == "status":
        print("on" if is_enabled() else "off")
    else:
        print("usage: python -m assistant.autostart [on|off|status|desktop-entry]", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
