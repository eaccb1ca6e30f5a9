"""Speaking through the running Windows screen reader (NVDA, JAWS, Narrator...) with cytolk, and braille too.

cytolk wraps Tolk, which talks to each screen reader through its own API (NVDA's controller client DLL ships
inside the cytolk wheel). Unlike Qt's accessibility announcements, this reaches the user while another
app has the focus, which for a tray app is nearly always. ``tolk.output`` sends the text to speech and,
where the screen reader drives a braille display, to braille as well.

UNTESTED HERE: this code only runs on Windows (cytolk is a Windows-only wheel), and the test machines are
Linux. Its unit test checks the import guard, not a real NVDA.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from assistant.speech.backend import Availability, SpeechBackend, SpeechError, Utterance, as_utterance

_lock = threading.Lock()
_tolk: Any = None


def _load() -> Any:
    """The loaded tolk module, or raises SpeechError with the reason."""
    global _tolk
    if sys.platform != "win32":
        raise SpeechError("speaking through NVDA or JAWS works on Windows only")
    with _lock:
        if _tolk is None:
            try:
                from cytolk import tolk  # type: ignore[import-not-found]
            except ImportError as exc:
                raise SpeechError("the cytolk package is missing (pip install cytolk)") from exc
            # A PyInstaller bundle cannot extend the DLL search path from the extension's __file__.
            tolk.load(not getattr(sys, "frozen", False))
            tolk.try_sapi(False)  # SAPI is not a screen reader: the own voice covers it
            _tolk = tolk
        return _tolk


def detect() -> str | None:
    """The running screen reader's name ("NVDA", "JAWS"), or None."""
    try:
        return _load().detect_screen_reader()
    except SpeechError:
        return None
    except Exception:  # a broken DLL must not stop the app: no screen reader route, then
        return None


class WindowsScreenReaderBackend(SpeechBackend):
    name = "windows-screen-reader"
    label = "speaking through the screen reader"  # until check() has found which one

    def check(self) -> Availability:
        try:
            tolk = _load()
        except SpeechError as exc:
            return Availability(False, str(exc))
        reader = tolk.detect_screen_reader()
        if not reader:
            return Availability(False, "no screen reader is running")
        if not tolk.has_speech():
            return Availability(False, f"{reader} does not take speech from other programs")
        self.label = str(reader)
        return Availability(True)

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        if utterance.cancelled():
            return None
        tolk = _load()
        if not tolk.output(utterance.text, True):
            raise SpeechError(f"{self.label} did not take the text")
        return time.time()

    def stop(self) -> None:
        if _tolk is not None:
            _tolk.silence()

    @property
    def busy(self) -> bool:
        # Tolk reports "is speaking" for few readers; when it cannot tell, the reader's queue handles order.
        try:
            return bool(_tolk is not None and _tolk.is_speaking())
        except Exception:
            return False
