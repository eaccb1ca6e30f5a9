"""Global hotkey backends behind one interface, and ``pick_backend`` to choose the first that works here.

- ``keyboard``: Windows, or Linux as root with readable keyboards under /dev/input (it then works under
  Wayland too). Its import succeeds almost everywhere and only its first use fails, so ``available()``
  runs that first use.
- ``pynput``: X11 (through the RECORD extension), Windows and macOS (with the Accessibility permission).
- ``none``: nothing works (Wayland, no display): the desktop's own shortcut settings can run
  ``blip-assistant trigger ACTION`` instead.

All are event-driven: the libraries' listener threads block on the OS and call back per key event.
Callbacks run on that thread; the app hands them to its GUI thread.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from assistant import actions
from assistant.hotkeys.keys import Hotkey, parse

log = logging.getLogger(__name__)

Callback = Callable[[str], None]

# A held-down hotkey auto-repeats its key; one press should start one action.
_REPEAT_GUARD_S = 0.35
_START_TIMEOUT_S = 5.0


class HotkeyError(RuntimeError):
    """A backend that was available could not start; the message is for the user."""


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str  # why not; or, when ok, what it relies on

    def __bool__(self) -> bool:
        return self.ok


def _wayland() -> bool:
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    return session == "wayland" or bool(os.environ.get("WAYLAND_DISPLAY"))


def _is_linux() -> bool:
    return sys.platform.startswith("linux") or "bsd" in sys.platform


def validate(bindings: Mapping[str, str]) -> tuple[dict[str, Hotkey], list[str]]:
    """(action id -> Hotkey for the usable bindings, a sentence for each one left out).

    Empty bindings are simply off. An unknown action or a string that does not parse is left out; of two
    actions on one key the first in the registry keeps it. ``clashes.check`` reports the same problems
    (and more) for the settings window; this only decides what can be registered.
    """
    problems: list[str] = []
    parsed: dict[str, Hotkey] = {}
    owner: dict[Hotkey, str] = {}
    order = {a: i for i, a in enumerate(actions.BY_ID)}
    for action_id, text in sorted(bindings.items(), key=lambda item: order.get(item[0], len(order))):
        if not text:
            continue
        action = actions.BY_ID.get(action_id)
        if action is None:
            problems.append(f"There is no action {action_id!r}, so {text} was not registered.")
            continue
        try:
            hotkey = parse(text)
        except ValueError as exc:
            problems.append(f"{action.plain_label}: {exc}")
            continue
        if hotkey in owner:
            first = actions.BY_ID[owner[hotkey]].plain_label
            problems.append(f"{hotkey} is already {first!r}, so it was not registered for "
                            f"{action.plain_label!r}.")
            continue
        owner[hotkey] = action_id
        parsed[action_id] = hotkey
    return parsed, problems


class HotkeyBackend(ABC):
    name: ClassVar[str]

    def __init__(self) -> None:
        self.bindings: dict[str, Hotkey] = {}
        self._callback: Callback | None = None
        self._last_fired: dict[str, float] = {}

    @abstractmethod
    def available(self) -> Availability:
        """Whether this backend can work in this session, with the reason; cheap enough to call at startup."""

    def start(self, bindings: Mapping[str, str], callback: Callback) -> list[str]:
        """Listen for ``bindings`` (action id -> "Ctrl+Alt+D"); ``callback(action_id)`` on each press.

        Returns a sentence for each binding that was left out (see ``validate``): one bad binding does not
        cost the user all the others. Starting again replaces the previous bindings. HotkeyError when the
        backend itself cannot start.
        """
        parsed, problems = validate(bindings)
        self.stop()
        self.bindings, self._callback = parsed, callback
        self._last_fired.clear()
        if parsed:
            self._start(parsed)
        return problems

    @abstractmethod
    def _start(self, bindings: dict[str, Hotkey]) -> None: ...

    @abstractmethod
    def stop(self) -> None:
        """Stop listening; safe to call when not started."""

    def _fire(self, action_id: str) -> None:
        now = time.monotonic()
        if now - self._last_fired.get(action_id, -1e9) < _REPEAT_GUARD_S:
            return
        self._last_fired[action_id] = now
        callback = self._callback
        if callback is None:
            return
        try:
            callback(action_id)
        except Exception:
            # An exception escaping into the listener thread would end it, and with it every hotkey.
            log.exception("hotkey callback for %s failed", action_id)


class PynputBackend(HotkeyBackend):
    name = "pynput"

    def __init__(self) -> None:
        super().__init__()
        self._listener: Any = None

    def available(self) -> Availability:
        if _is_linux():
            if _wayland():
                return Availability(False, "in a Wayland session pynput only hears keys typed into X11 "
                                           "(XWayland) windows")
            if not os.environ.get("DISPLAY"):
                return Availability(False, "there is no X display (DISPLAY is not set)")
        try:
            # Importing pynput opens the X display on Linux: it fails there, not later.
            from pynput import keyboard  # noqa: F401
        except Exception as exc:
            return Availability(False, f"pynput cannot be loaded ({_describe(exc)})")
        if _is_linux():
            problem = _x_record_problem()
            if problem:
                return Availability(False, problem)
            return Availability(True, "X11 key events through the RECORD extension")
        if sys.platform == "darwin":
            return Availability(True, "macOS key events (the assistant needs the Accessibility permission "
                                      "in System Settings, Privacy & Security)")
        return Availability(True, "a Windows keyboard hook")

    def _start(self, bindings: dict[str, Hotkey]) -> None:
        from pynput import keyboard

        handlers = {hotkey.to_pynput(): _bind(self._fire, action_id)
                    for action_id, hotkey in bindings.items()}
        try:
            listener = keyboard.GlobalHotKeys(handlers)
        except ValueError as exc:
            raise HotkeyError(f"pynput does not know one of the hotkeys ({exc})") from exc
        listener.daemon = True
        listener.start()
        if not _wait_ready(listener):
            listener.stop()
            raise HotkeyError("the pynput key listener did not start")
        self._listener = listener

    def stop(self) -> None:
        listener, self._listener = self._listener, None
        if listener is None:
            return
        listener.stop()
        context = getattr(listener, "_context", None)
        if _is_linux() and context is not None and listener.is_alive():
            # pynput 1.8 sends its RECORD DisableContext on the very connection its thread is blocked
            # reading, so it only goes out with the next key event. The X RECORD docs say to disable from
            # another connection: do that, and the listener ends at once.
            _disable_record_context(context)
        if listener is not threading.current_thread():
            listener.join(2)


class KeyboardBackend(HotkeyBackend):
    name = "keyboard"

    def __init__(self) -> None:
        super().__init__()
        self._handles: list[Any] = []

    def available(self) -> Availability:
        if sys.platform == "darwin":
            return Availability(False, "the keyboard package needs root on macOS and is experimental there")
        if _is_linux() and os.geteuid() != 0:
            return Availability(False, "the keyboard package reads /dev/input and needs root on Linux")
        try:
            import keyboard

            # The import succeeds even where nothing can work; the first real use is what fails
            # (no /dev/input or /dev/uinput: AssertionError; no `dumpkeys`: FileNotFoundError).
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "Failed to create a device file using uinput"
                keyboard._os_keyboard.init()
        except Exception as exc:
            where = "" if not _is_linux() or Path("/dev/input").is_dir() else "; there is no /dev/input"
            return Availability(False, f"the keyboard package cannot read the keyboard here "
                                       f"({_describe(exc)}{where})")
        if _is_linux() and not _linux_has_keyboard():
            # Without a real keyboard device the library falls back to its own uinput device,
            # which only ever hears the keys it sends itself.
            return Availability(False, "no keyboard device is listed under /dev/input")
        return Availability(True, "a Windows keyboard hook" if sys.platform == "win32" else
                            "keyboard events read from /dev/input")

    def _start(self, bindings: dict[str, Hotkey]) -> None:
        import keyboard

        try:
            for action_id, hotkey in bindings.items():
                handler = _bind(self._fire, action_id)
                self._handles.append(keyboard.add_hotkey(hotkey.keyboard_keys(), handler, suppress=False,
                                                         trigger_on_release=False))
        except Exception as exc:
            self.stop()
            raise HotkeyError(f"the keyboard package could not register the hotkeys ({_describe(exc)})") \
                from exc

    def stop(self) -> None:
        if not self._handles:
            return
        import keyboard

        for handle in self._handles:
            with contextlib.suppress(KeyError, ValueError):  # already gone
                keyboard.remove_hotkey(handle)
        self._handles.clear()


class NoBackend(HotkeyBackend):
    """Global hotkeys are off; ``advice`` says how to get the same effect from the desktop."""

    name = "none"

    def __init__(self, why: str = "no hotkey backend works in this session") -> None:
        super().__init__()
        self.why = why

    def available(self) -> Availability:
        return Availability(True, self.why)

    @property
    def advice(self) -> str:
        return (f"Global hotkeys are not available: {self.why}. To start an action from the keyboard, add a "
                "shortcut in your desktop's keyboard settings that runs a command such as "
                "`blip-assistant trigger describe-screen`.")

    def _start(self, bindings: dict[str, Hotkey]) -> None:
        pass  # kept in self.bindings so the settings window can still show them

    def stop(self) -> None:
        pass


BACKENDS: dict[str, type[HotkeyBackend]] = {
    "keyboard": KeyboardBackend,
    "pynput": PynputBackend,
}


def default_order() -> tuple[str, ...]:
    if sys.platform == "win32":
        return ("keyboard", "pynput")
    if sys.platform == "darwin":
        return ("pynput",)
    # pynput needs no root; keyboard is the fallback for root sessions with /dev/input (incl. Wayland).
    return ("pynput", "keyboard")


@dataclass
class Choice:
    backend: HotkeyBackend
    reason: str  # why this backend (what it relies on), or why there are no hotkeys
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (backend name, why it was skipped)

    def explain(self) -> str:
        lines = [f"Hotkeys: {self.backend.name} ({self.reason})."]
        lines += [f"Not {name}: {why}." for name, why in self.skipped]
        return " ".join(lines)


def pick_backend(order: tuple[str, ...] | None = None) -> Choice:
    """The first backend in ``order`` (by default the platform's) that works here, with the reason for each
    one skipped; NoBackend, whose ``advice`` the app can speak, when none does."""
    skipped: list[tuple[str, str]] = []
    for name in order or default_order():
        cls = BACKENDS.get(name)
        if cls is None:
            skipped.append((name, "no such backend"))
            continue
        backend = cls()
        availability = backend.available()
        if availability:
            return Choice(backend, availability.reason, skipped)
        skipped.append((name, availability.reason))
    why = "; ".join(f"{name}: {reason}" for name, reason in skipped) or "no backend was tried"
    none = NoBackend(why)
    return Choice(none, why, skipped)


# -- helpers ----------------------------------------------------------------------------------------


def _bind(fire: Callable[[str], None], action_id: str) -> Callable[[], None]:
    def handler() -> None:
        fire(action_id)

    return handler


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _wait_ready(listener: Any) -> bool:
    """Wait for pynput's listener to be listening. Its own wait() blocks forever when the thread dies first,
    so wait on its condition with a deadline and watch the thread."""
    condition = getattr(listener, "_condition", None)
    if condition is None or not hasattr(listener, "_ready"):
        listener.wait()
        return True
    deadline = time.monotonic() + _START_TIMEOUT_S
    with condition:
        while not listener._ready:
            left = deadline - time.monotonic()
            if left <= 0 or not listener.is_alive():
                return False
            condition.wait(min(left, 0.5))
    return True


def _x_record_problem() -> str | None:
    try:
        from Xlib import display

        d = display.Display()
    except Exception as exc:
        return f"the X display cannot be opened ({_describe(exc)})"
    try:
        if not d.has_extension("RECORD"):
            return "the X server lacks the RECORD extension that pynput listens through"
    finally:
        d.close()
    return None


def _disable_record_context(context: int) -> None:
    try:
        from Xlib import display

        d = display.Display()
        try:
            d.record_disable_context(context)
            d.sync()
        finally:
            d.close()
    except Exception:
        log.debug("could not disable pynput's record context", exc_info=True)


def _linux_has_keyboard() -> bool:
    try:
        devices = Path("/proc/bus/input/devices").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any("kbd" in line and "event" in line for line in devices.splitlines() if line.startswith("H:"))
