"""Hotkey strings: "Ctrl+Alt+D" (the settings and the action registry) <-> pynput "<ctrl>+<alt>+d" <->
keyboard "ctrl+alt+d".

``parse`` reads any of the three notations, case-insensitively, so a value copied from either library's
documentation works. Formatting uses Qt's portable key names ("Del", "PgUp", "Meta") so that a settings
window built on QKeySequence reads what this writes.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass

MODIFIERS: tuple[str, ...] = ("Ctrl", "Alt", "Shift", "Meta")  # canonical order, Qt's names

_MODIFIER_ALIASES: dict[str, str] = {
    "ctrl": "Ctrl", "control": "Ctrl", "ctl": "Ctrl", "ctrll": "Ctrl", "ctrlr": "Ctrl", "leftctrl": "Ctrl",
    "rightctrl": "Ctrl",
    "alt": "Alt", "altl": "Alt", "altr": "Alt", "leftalt": "Alt", "rightalt": "Alt", "option": "Alt",
    "opt": "Alt",
    "shift": "Shift", "shiftl": "Shift", "shiftr": "Shift", "leftshift": "Shift", "rightshift": "Shift",
    "meta": "Meta", "win": "Meta", "windows": "Meta", "super": "Meta", "cmd": "Meta", "cmdl": "Meta",
    "cmdr": "Meta", "command": "Meta", "logo": "Meta",
}
_LOGO_KEY = {"darwin": "Command", "win32": "Windows key"}.get(sys.platform, "Super")
_MODIFIER_WORDS = {"Ctrl": "Control", "Alt": "Alt", "Shift": "Shift", "Meta": _LOGO_KEY}
_PYNPUT_MODIFIERS = {"Ctrl": "<ctrl>", "Alt": "<alt>", "Shift": "<shift>", "Meta": "<cmd>"}
_KEYBOARD_MODIFIERS = {"Ctrl": "ctrl", "Alt": "alt", "Shift": "shift", "Meta": "windows"}


@dataclass(frozen=True)
class Key:
    name: str  # Qt's portable name: "D", "F5", "PgUp"
    pynput: str  # "d", "<f5>", "<page_up>"
    keyboard: str  # "d", "f5", "page up"
    words: str  # for speech: "Page Up"
    typing: bool = False  # produces text or moves the caret: never a hotkey on its own


def _build_keys() -> dict[str, Key]:
    keys: list[Key] = []
    for c in string.ascii_uppercase:
        keys.append(Key(c, c.lower(), c.lower(), c, typing=True))
    for c in string.digits:
        keys.append(Key(c, c, c, c, typing=True))
    for c, words in ((",", "Comma"), (".", "Period"), ("/", "Slash"), (";", "Semicolon"), ("'", "Apostrophe"),
                     ("[", "Left Bracket"), ("]", "Right Bracket"), ("\\", "Backslash"), ("-", "Minus"),
                     ("=", "Equals"), ("`", "Grave Accent"), ("+", "Plus")):
        keys.append(Key(c, c, c, words, typing=True))
    for n in range(1, 25):
        keys.append(Key(f"F{n}", f"<f{n}>", f"f{n}", f"F{n}"))
    named = (
        # name, pynput, keyboard, words, typing
        ("Space", "space", "space", "Space", True),
        ("Return", "enter", "enter", "Enter", True),
        ("Tab", "tab", "tab", "Tab", True),
        ("Esc", "esc", "esc", "Escape", True),
        ("Backspace", "backspace", "backspace", "Backspace", True),
        ("Del", "delete", "delete", "Delete", True),
        ("Ins", "insert", "insert", "Insert", True),
        ("Home", "home", "home", "Home", True),
        ("End", "end", "end", "End", True),
        ("PgUp", "page_up", "page up", "Page Up", True),
        ("PgDown", "page_down", "page down", "Page Down", True),
        ("Left", "left", "left", "Left Arrow", True),
        ("Right", "right", "right", "Right Arrow", True),
        ("Up", "up", "up", "Up Arrow", True),
        ("Down", "down", "down", "Down Arrow", True),
        ("Print", "print_screen", "print screen", "Print Screen", False),
        ("Pause", "pause", "pause", "Pause", False),
        ("ScrollLock", "scroll_lock", "scroll lock", "Scroll Lock", False),
        ("NumLock", "num_lock", "num lock", "Num Lock", True),
        ("CapsLock", "caps_lock", "caps lock", "Caps Lock", True),
        ("Menu", "menu", "menu", "Menu", True),
    )
    for name, pynput, keyboard, words, typing in named:
        keys.append(Key(name, f"<{pynput}>", keyboard, words, typing))
    return {k.name: k for k in keys}


KEYS: dict[str, Key] = _build_keys()

_KEY_ALIASES: dict[str, str] = {
    "enter": "Return", "ret": "Return", "escape": "Esc", "delete": "Del", "insert": "Ins",
    "pageup": "PgUp", "prior": "PgUp", "pagedown": "PgDown", "pgdn": "PgDown", "next": "PgDown",
    "printscreen": "Print", "prtsc": "Print", "prtscn": "Print", "prtscr": "Print", "snapshot": "Print",
    "sysrq": "Print", "break": "Pause", "pausebreak": "Pause", "scrlk": "ScrollLock", "numberlock": "NumLock",
    "capital": "CapsLock", "apps": "Menu", "application": "Menu", "spacebar": "Space",
    "plus": "+", "comma": ",", "period": ".", "minus": "-", "equal": "=", "equals": "=", "slash": "/",
    "backslash": "\\", "semicolon": ";", "apostrophe": "'", "quote": "'", "grave": "`",
    "leftarrow": "Left", "rightarrow": "Right", "uparrow": "Up", "downarrow": "Down",
}
def _squash(token: str) -> str:
    """'Page_Up', '<page up>', 'PAGE-UP' -> 'pageup'; single characters are kept as they are."""
    if len(token) == 1:
        return token.lower()
    return token.lower().replace("_", "").replace(" ", "").replace("-", "")


_KEY_LOOKUP: dict[str, str] = {_squash(n): n for n in KEYS}
_KEY_LOOKUP.update(_KEY_ALIASES)

SCREEN_READER_KEYS = frozenset({"Ins", "CapsLock"})


@dataclass(frozen=True, order=True)
class Hotkey:
    modifiers: tuple[str, ...]  # a subset of MODIFIERS, in that order
    key: str  # a name in KEYS

    def __str__(self) -> str:
        return "+".join((*self.modifiers, self.key))

    @property
    def words(self) -> str:
        """For speech: "Control+Alt+Delete"."""
        return "+".join((*(_MODIFIER_WORDS[m] for m in self.modifiers), KEYS[self.key].words))

    def to_pynput(self) -> str:
        return "+".join((*(_PYNPUT_MODIFIERS[m] for m in self.modifiers), KEYS[self.key].pynput))

    def keyboard_keys(self) -> list[str]:
        """The keyboard package's key names, as a list (its string syntax cannot name ',' or '+')."""
        return [*(_KEYBOARD_MODIFIERS[m] for m in self.modifiers), KEYS[self.key].keyboard]

    def to_keyboard(self) -> str:
        if self.key in (",", "+"):
            raise ValueError(f"The keyboard package's hotkey strings cannot name the {KEYS[self.key].words} "
                             f"key ({self}); pass keyboard_keys() instead.")
        return "+".join(self.keyboard_keys())


def _parts(text: str) -> list[str]:
    """Split on '+', where a '+' that starts a part is the Plus key itself ("Ctrl++")."""
    parts, start = [], 0
    for i, c in enumerate(text):
        if c == "+" and i != start:
            parts.append(text[start:i])
            start = i + 1
    if start == len(text):
        raise ValueError(f"The hotkey {text!r} ends with '+' and names no key after it.")
    parts.append(text[start:])
    return parts


def parse(text: str) -> Hotkey:
    """A Hotkey from "Ctrl+Alt+D", "<ctrl>+<alt>+d" or "ctrl+alt+d"; ValueError in words otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("The hotkey is empty; write it like Ctrl+Alt+D.")
    raw = "".join(text.split()) if "+" in text.strip()[1:] else text.strip()
    tokens = [t[1:-1] if len(t) > 2 and t[0] == "<" and t[-1] == ">" else t for t in _parts(raw)]
    *mod_tokens, key_token = tokens
    what = f"The hotkey {text!r}"
    modifiers: set[str] = set()
    for token in mod_tokens:
        modifier = _MODIFIER_ALIASES.get(_squash(token))
        if modifier is None:
            key = _KEY_LOOKUP.get(_squash(token))
            if key in SCREEN_READER_KEYS:
                raise ValueError(f"{what} uses {KEYS[key].words} as a modifier, but that is the "
                                 "screen-reader key of NVDA, JAWS, Narrator and Orca; use Ctrl, Alt, Shift "
                                 "or Meta.")
            if key is not None:
                raise ValueError(f"{what} puts {KEYS[key].words} before the last key, where only Ctrl, Alt, "
                                 "Shift or Meta may stand.")
            raise ValueError(f"{what} has an unknown modifier {token!r}; use Ctrl, Alt, Shift or "
                             "Meta.")
        if modifier in modifiers:
            raise ValueError(f"{what} names {modifier} twice.")
        modifiers.add(modifier)
    if _squash(key_token) in _MODIFIER_ALIASES:
        raise ValueError(f"{what} has only modifiers; add a key after them, as in Ctrl+Alt+D.")
    key = _KEY_LOOKUP.get(_squash(key_token))
    if key is None:
        raise ValueError(f"{what} has an unknown key {key_token!r}; use a letter, a digit, F1 to F24, or a "
                         "named key such as Space, Return, Esc, Del, Home, End, PgUp, PgDown or Left.")
    return Hotkey(tuple(m for m in MODIFIERS if m in modifiers), key)


def normalize(text: str) -> str:
    """The canonical "Ctrl+Alt+D" spelling of any accepted notation."""
    return str(parse(text))


def to_pynput(text: str) -> str:
    return parse(text).to_pynput()


def to_keyboard(text: str) -> str:
    return parse(text).to_keyboard()
