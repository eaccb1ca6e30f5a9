"""Hotkey problems, reported in words: broken or duplicate bindings, keys with no modifier, and keys that a
screen reader, a magnifier or the desktop already uses.

Only combinations that are documented defaults are listed, each with who owns it. Errors are bindings that
cannot work (a duplicate, a bare letter, a key the OS never hands to an application); warnings are keys
that another program may take first. The action registry's defaults are checked like any other binding:
Ctrl+Alt+L ("repeat") locks the screen on several Linux desktops, which is reported, not changed.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from assistant import actions
from assistant.hotkeys.keys import KEYS, SCREEN_READER_KEYS, Hotkey, parse

ERROR, WARNING = "error", "warning"
PLATFORMS = ("linux", "win32", "darwin")

_MAGNIFIER = "Windows Magnifier while it runs"
_TABLES = "table navigation in NVDA and JAWS"
# (platforms, hotkey, level, who uses it and for what). Sources: the NVDA, JAWS, Narrator and Magnifier
# keyboard references, GNOME/KDE/Xfce/Cinnamon/MATE default shortcut lists.
_KNOWN: tuple[tuple[tuple[str, ...], str, str, str], ...] = (
    (("win32",), "Ctrl+Alt+Del", ERROR, "Windows itself (the secure attention sequence; no app sees it)"),
    (("win32",), "Ctrl+Shift+Esc", WARNING, "Windows (opens Task Manager)"),
    (("win32",), "Meta+L", ERROR, "Windows itself (locks the computer; apps never receive it)"),
    (("win32",), "Meta+D", WARNING, "Windows (shows the desktop)"),
    (("win32",), "Meta+E", WARNING, "Windows (opens File Explorer)"),
    (("win32",), "Meta+R", WARNING, "Windows (opens Run)"),
    (("win32",), "Meta++", WARNING, "Windows Magnifier (turns it on and zooms in)"),
    (("win32",), "Meta+-", WARNING, "Windows Magnifier (zooms out)"),
    (("win32",), "Meta+Esc", WARNING, "Windows Magnifier (turns it off)"),
    (("win32",), "Ctrl+Meta+Return", WARNING, "Narrator (turns it on and off)"),
    (("win32",), "Ctrl+Alt+N", WARNING, "NVDA (its desktop shortcut starts NVDA)"),
    (("win32",), "Ctrl+Alt+D", WARNING, f"{_MAGNIFIER} (docked view)"),
    (("win32",), "Ctrl+Alt+F", WARNING, f"{_MAGNIFIER} (full-screen view)"),
    (("win32",), "Ctrl+Alt+L", WARNING, f"{_MAGNIFIER} (lens view)"),
    (("win32",), "Ctrl+Alt+M", WARNING, f"{_MAGNIFIER} (cycles through its views)"),
    (("win32",), "Ctrl+Alt+I", WARNING, f"{_MAGNIFIER} (inverts colours)"),
    (("win32",), "Ctrl+Alt+Space", WARNING, f"{_MAGNIFIER} (previews the whole desktop)"),
    *((("win32",), f"Ctrl+Alt+{arrow}", WARNING, f"{_TABLES}, and panning in {_MAGNIFIER}")
      for arrow in ("Left", "Right", "Up", "Down")),
    (("linux",), "Ctrl+Alt+Del", WARNING, "the desktop (log out or restart on GNOME, KDE Plasma, ...)"),
    (("linux",), "Ctrl+Alt+Backspace", WARNING, "the X server (ends the session where that is enabled)"),
    *((("linux",), f"Ctrl+Alt+F{n}", ERROR, "the system (switches to another virtual console)")
      for n in range(1, 13)),
    (("linux",), "Ctrl+Alt+T", WARNING, "the desktop (opens a terminal on Ubuntu and other desktops)"),
    (("linux",), "Ctrl+Alt+L", WARNING,
     "the desktop (locks the screen on several Linux desktops: Xfce, Cinnamon, MATE, KDE Plasma)"),
    (("linux",), "Ctrl+Alt+D", WARNING, "the desktop (shows the desktop on Xfce)"),
    *((("linux",), f"Ctrl+Alt+{arrow}", WARNING, "the desktop (switches workspaces on several desktops)")
      for arrow in ("Left", "Right", "Up", "Down")),
    (("linux",), "Alt+Meta+S", WARNING, "GNOME (turns the Orca screen reader on and off)"),
    (("darwin",), "Meta+F5", WARNING, "macOS (turns VoiceOver on and off)"),
)


def _known_table() -> dict[str, dict[Hotkey, tuple[str, str]]]:
    table: dict[str, dict[Hotkey, tuple[str, str]]] = {p: {} for p in PLATFORMS}
    for platforms, text, level, owner in _KNOWN:
        for platform in platforms:
            table[platform][parse(text)] = (level, owner)
    return table


KNOWN = _known_table()


@dataclass(frozen=True)
class Clash:
    level: str  # "error" or "warning"
    hotkey: str  # as the user wrote it (normalised when it parses)
    actions: tuple[str, ...]  # action ids
    message: str  # a complete sentence

    def __str__(self) -> str:
        return self.message


def current_platform() -> str:
    if sys.platform in ("win32", "darwin"):
        return sys.platform
    return "linux"  # the BSDs share the X11 desktops' conventions


def _label(action_id: str) -> str:
    action = actions.BY_ID.get(action_id)
    return f"'{action.plain_label}'" if action else f"'{action_id}'"


def check(bindings: Mapping[str, str], platform: str | None = None) -> list[Clash]:
    """Problems with ``bindings`` (action id -> hotkey string, empty for none), errors first.

    ``platform`` is "linux", "win32", "darwin", or "all" to hear about every platform (the user guide);
    by default the one this runs on.
    """
    platforms = PLATFORMS if platform == "all" else (platform or current_platform(),)
    clashes: list[Clash] = []
    parsed: dict[Hotkey, list[str]] = defaultdict(list)
    for action_id, text in bindings.items():
        if not text:
            continue
        if action_id not in actions.BY_ID:
            known = ", ".join(actions.BY_ID)
            message = f"There is no action {action_id!r} to bind {text} to; known actions: {known}."
            clashes.append(Clash(ERROR, text, (action_id,), message))
            continue
        try:
            parsed[parse(text)].append(action_id)
        except ValueError as exc:
            clashes.append(Clash(ERROR, text, (action_id,), f"{_label(action_id)}: {exc}"))

    for hotkey, owners in parsed.items():
        ids = tuple(owners)
        if len(owners) > 1:
            names = " and ".join(_label(a) for a in owners)
            clashes.append(Clash(ERROR, str(hotkey), ids,
                                 f"{hotkey} is set for both {names}; a hotkey can start only one action."))
        clashes.extend(_modifier_problems(hotkey, ids))
        who = _who(hotkey, ids)
        for p in platforms:
            known_use = KNOWN.get(p, {}).get(hotkey)
            if known_use:
                level, owner = known_use
                clashes.append(Clash(level, str(hotkey), ids, f"{who} is used by {owner}."))
        mods = set(hotkey.modifiers)
        if "darwin" in platforms and {"Ctrl", "Alt"} <= mods and "Meta" not in mods:
            clashes.append(Clash(WARNING, str(hotkey), ids,
                                 f"{who}: Control+Option are the VoiceOver keys on macOS, and VoiceOver "
                                 "commands may take this combination."))
    clashes.sort(key=lambda c: c.level != ERROR)
    return clashes


def _who(hotkey: Hotkey, ids: tuple[str, ...]) -> str:
    return f"{hotkey} ({', '.join(_label(a) for a in ids)})"


def _modifier_problems(hotkey: Hotkey, ids: tuple[str, ...]) -> list[Clash]:
    key = KEYS[hotkey.key]
    who = _who(hotkey, ids)
    out: list[Clash] = []

    def add(level: str, message: str) -> None:
        out.append(Clash(level, str(hotkey), ids, message))

    if hotkey.key in SCREEN_READER_KEYS:
        add(WARNING, f"{who} uses {key.words}, the screen-reader modifier key of NVDA, JAWS, Narrator and "
                     "Orca (Insert by default, Caps Lock in their laptop layouts; Narrator uses both); it "
                     "may not reach the assistant while a screen reader runs.")
    mods = set(hotkey.modifiers)
    if mods and mods != {"Shift"}:
        return out
    if key.typing:
        lead = (f"Shift+{key.words} with no other modifier" if mods
                else f"{key.words} with no modifier")
        names = ", ".join(_label(a) for a in ids)
        add(ERROR, f"{names} uses {lead}, so it would fire whenever that key is typed in any application; "
                   f"add Ctrl and Alt, as in Ctrl+Alt+{key.name}.")
    elif hotkey.key == "Print":
        add(WARNING, f"{who} on its own starts the desktop's screenshot tool on most systems.")
    elif hotkey.key in {f"F{n}" for n in range(1, 13)}:
        add(WARNING, f"{who} has no modifier, and applications use {key.words} themselves (F1 for help, F5 "
                     "to refresh, ...).")
    return out
