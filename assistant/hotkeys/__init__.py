"""Global hotkeys: hotkey strings, clash checks in words, and the backends that listen. Qt-free.

    choice = pick_backend()                  # pynput on X11, keyboard on Windows, none on Wayland
    for clash in check(settings.hotkeys()):  # e.g. "Ctrl+Alt+L ('Repeat last') is used by the desktop ..."
        warn(clash.message)
    choice.backend.start(settings.hotkeys(), on_action)   # on_action(action_id), on the listener thread
"""

from assistant.hotkeys.backends import (
    BACKENDS,
    Availability,
    Choice,
    HotkeyBackend,
    HotkeyError,
    KeyboardBackend,
    NoBackend,
    PynputBackend,
    default_order,
    pick_backend,
    validate,
)
from assistant.hotkeys.clashes import ERROR, WARNING, Clash, check
from assistant.hotkeys.keys import KEYS, MODIFIERS, Hotkey, normalize, parse, to_keyboard, to_pynput

__all__ = [
    "BACKENDS",
    "ERROR",
    "KEYS",
    "MODIFIERS",
    "WARNING",
    "Availability",
    "Choice",
    "Clash",
    "Hotkey",
    "HotkeyBackend",
    "HotkeyError",
    "KeyboardBackend",
    "NoBackend",
    "PynputBackend",
    "check",
    "default_order",
    "normalize",
    "parse",
    "pick_backend",
    "to_keyboard",
    "to_pynput",
    "validate",
]
