"""The first-run welcome's words: the three main hotkeys, and what this platform needs, said plainly. Qt-free.

The welcome window (``assistant/app/welcome_window.py``) shows and speaks these; the setting
"app.show_welcome" records that it has been shown (the user may turn it back on).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from assistant import actions
from assistant.hotkeys import parse

SHOW_WELCOME = "app.show_welcome"
# The three keys a new user needs first: hear the screen, hear the window they work in, silence.
MAIN_ACTIONS = ("describe-screen", "describe-window", "stop")
TRY_ACTION = "describe-screen"


def _key_words(hotkey: str) -> str:
    try:
        return parse(hotkey).words
    except ValueError:
        return hotkey


def main_keys(hotkeys: Mapping[str, str]) -> list[tuple[str, str, str]]:
    """(action id, hotkey as shown, hotkey in words) for the main actions that have a hotkey."""
    return [(a, hotkeys[a], _key_words(hotkeys[a])) for a in MAIN_ACTIONS if hotkeys.get(a)]


def platform_notes(environ: Mapping[str, str] | None = None, platform: str | None = None) -> list[str]:
    """What this platform limits or needs, as sentences; empty when nothing needs saying."""
    env = os.environ if environ is None else environ
    platform = platform or sys.platform
    notes = []
    if platform.startswith("linux") and (env.get("XDG_SESSION_TYPE", "").lower() == "wayland"
                                         or env.get("WAYLAND_DISPLAY")):
        notes.append(
            "This is a Wayland session. Wayland does not let the assistant see the screen or hear global "
            "hotkeys, so those keys may do nothing here. You can still open an image file with the Open an "
            "image action, and you can give any action a shortcut in your desktop's keyboard settings by "
            "running the command: blip-assistant trigger describe-screen. Logging in to an X11 session "
            "lifts these limits.")
    if platform == "darwin":
        notes.append(
            "On macOS the assistant needs permission to record the screen. The first time you describe the "
            "screen, macOS asks for it; if it does not, open System Settings, Privacy and Security, Screen "
            "Recording, and turn on BLIP Assistant, then restart it. Global hotkeys also need Accessibility "
            "permission in the same place.")
    return notes


def welcome_lines(hotkeys: Mapping[str, str], environ: Mapping[str, str] | None = None,
                  platform: str | None = None) -> list[str]:
    """The welcome as short paragraphs, the same for the screen and for speech."""
    lines = ["Welcome to BLIP Assistant. It tells you what is on your screen, in a short spoken description, "
             "whenever you press its keys. Everything stays on your computer."]
    keys = main_keys(hotkeys)
    if keys:
        said = [f"{words}: {actions.BY_ID[a].plain_label.lower()}" for a, _key, words in keys]
        lines.append(f"The {len(keys)} keys to remember: " + "; ".join(said) + ".")
    try_key = dict((a, w) for a, _k, w in keys).get(TRY_ACTION)
    lines.append(f"Try one now: press {try_key}, or the Try it button." if try_key
                 else "Try it now with the Try it button.")
    lines.extend(platform_notes(environ, platform))
    lines.append("The user guide, in the tray menu, lists every key. This welcome is not shown again unless "
                 "you ask for it in the settings.")
    return lines
