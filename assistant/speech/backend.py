"""The speech-backend interface, after NVDA's synthDriver: one small class per way of speaking.

A backend says whether it can work here (``check``), starts speaking and returns as soon as audio has
started (``speak``), cuts audio off (``stop``) and reports ``busy``. The assistant's own voice, the
WAV-file mode for CI, the text-only fallback and, later, the screen-reader routes (NVDA controller,
Speech Dispatcher) all fit it, so the ``Speaker`` and its fallback chain never need to know which.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)


class SpeechError(RuntimeError):
    """A backend cannot speak; ``str(err)`` is a short reason for the user, e.g. "espeak-ng is missing"."""


@dataclass(frozen=True)
class Availability:
    """The answer of ``check()``: usable or not, why not, and notes the user should hear even if usable."""

    ok: bool
    reason: str = ""
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


@dataclass(frozen=True)
class VoiceSettings:
    """The own voice's settings (``speech.voice``, ``speech.rate``, ``speech.volume``).

    Screen-reader backends ignore them on purpose: the user has set up their screen reader's voice.
    """

    voice: str = ""  # a voice id from list_voices(); empty for the system's default voice
    rate: int = 190  # words per minute
    volume: float = 1.0  # 0 to 1

    @classmethod
    def from_values(cls, values: Mapping[str, Any]) -> VoiceSettings:
        default = cls()
        return cls(voice=values.get("speech.voice") or "",
                   rate=int(values.get("speech.rate", default.rate)),
                   volume=float(values.get("speech.volume", default.volume)))


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    name: str
    languages: tuple[str, ...] = ()


def _never() -> bool:
    return False


@dataclass
class Utterance:
    """One thing to say, with what the speech log needs to know about it."""

    text: str
    action: str | None = None  # the action id that caused it (see assistant.actions), if any
    requested_at: float = field(default_factory=time.time)  # epoch seconds when the caller asked
    # The Speaker's "has this been superseded?" test. A backend asks it under its own lock right
    # before audio starts, so a stop() racing with speak() can never let stale speech through.
    cancelled: Callable[[], bool] = field(default=_never, repr=False, compare=False)


def as_utterance(what: Utterance | str) -> Utterance:
    return what if isinstance(what, Utterance) else Utterance(what)


class SpeechBackend(ABC):
    """One way of speaking. ``speak`` and ``check`` may block briefly; ``stop`` and ``busy`` may be
    called from any thread and must return at once."""

    name: str = "backend"  # stable id for logs and the settings ("own-voice", "wav-files", ...)
    label: str = "this speech output"  # for messages to the user, lower case: "the assistant's own voice"
    speaks: bool = True  # False for the text-only fallback, so it is never mistaken for working speech
    # True for a route that is only wanted when it works (a screen reader under speech.route "auto"):
    # the Speaker passes over it without telling the user.
    optional: bool = False

    def __init__(self, settings: VoiceSettings | None = None) -> None:
        self.settings = settings or VoiceSettings()

    def check(self) -> Availability:
        """Whether this backend can work here; may start its engine. Cheap after the first call."""
        return Availability(True)

    @abstractmethod
    def speak(self, what: Utterance | str) -> float | None:
        """Start saying ``what`` and return once audio has started: the epoch time it started, or None
        when ``what.cancelled()`` turned true first (nothing was played). Raises SpeechError."""

    @abstractmethod
    def stop(self) -> None:
        """Cut off audio at once and drop the rest of the current utterance."""

    @property
    def busy(self) -> bool:
        """True while audio of the last utterance may still be playing."""
        return False

    def apply_settings(self, settings: VoiceSettings) -> None:
        """From the next utterance on; raises ValueError (words for the user) for a value it cannot use."""
        self.settings = settings

    def list_voices(self) -> list[VoiceInfo]:
        return []

    def close(self) -> None:
        """Stop and release what the backend holds (temporary files, processes)."""
        self.stop()


class TextOnlyBackend(SpeechBackend):
    """The end of every fallback chain: it only logs the text (the app shows all text in its window).

    ``speaks`` is False, so the Speaker always tells the user when it ends up here.
    """

    name = "text-only"
    label = "text only"
    speaks = False

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        if utterance.cancelled():
            return None
        # The length only: the text may be screen content, which the log holds only in debug mode
        log.info("not spoken (no speech output): %d characters", len(utterance.text))
        from assistant import logs

        logs.content("not spoken", utterance.text)
        return time.time()

    def stop(self) -> None:
        pass


class UnavailableBackend(SpeechBackend):
    """A route that cannot work in this build (e.g. the screen-reader route before it exists): it fails
    its check with a reason, so the fallback chain reports it once and moves on."""

    def __init__(self, name: str, label: str, reason: str) -> None:
        super().__init__()
        self.name, self.label, self._reason = name, label, reason

    def check(self) -> Availability:
        return Availability(False, self._reason)

    def speak(self, what: Utterance | str) -> float | None:
        raise SpeechError(self._reason)

    def stop(self) -> None:
        pass
