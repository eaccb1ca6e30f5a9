"""Speech output: who speaks, and a Speaker that never blocks the UI.

``make_speaker`` builds the fallback chain from the settings and the command line:

- ``--speech-to-wav DIR``: every utterance becomes DIR/NNNN.wav (CI), nothing is played;
- ``speech.route`` "auto": a running screen reader, else the assistant's own voice;
- "own-voice": the own voice; "screen-reader": the screen reader, else the own voice;
- always last: text only, which the Speaker reports as "nothing speaks", never as working speech;
- ``--speech-log FILE``: every backend of the chain writes one JSON line per utterance.

Qt-free on purpose: the app wraps the callbacks into signals; the tests drive it without a display.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from assistant.speech.backend import (
    Availability,
    SpeechBackend,
    SpeechError,
    TextOnlyBackend,
    UnavailableBackend,
    Utterance,
    VoiceInfo,
    VoiceSettings,
)
from assistant.speech.log import LoggedBackend, SpeechLog
from assistant.speech.own_voice import OwnVoiceBackend
from assistant.speech.speaker import Speaker
from assistant.speech.wav_files import WavFileBackend

__all__ = [
    "Availability",
    "LoggedBackend",
    "OwnVoiceBackend",
    "Speaker",
    "SpeechBackend",
    "SpeechError",
    "SpeechLog",
    "TextOnlyBackend",
    "UnavailableBackend",
    "Utterance",
    "VoiceInfo",
    "VoiceSettings",
    "WavFileBackend",
    "make_backends",
    "make_speaker",
    "screen_reader_backends",
]


def screen_reader_backends() -> list[SpeechBackend]:
    """The screen-reader routes for this platform, best first: Speech Dispatcher (Orca) on Linux, NVDA/JAWS
    through cytolk on Windows, VoiceOver on macOS.

    Each one's check() fails unless its screen reader is running, so "auto" passes over them quietly (see
    make_backends) and "screen-reader" reports why, once, before the own voice takes over.
    """
    import sys

    if sys.platform == "win32":
        from assistant.speech.windows_reader import WindowsScreenReaderBackend

        return [WindowsScreenReaderBackend()]
    if sys.platform == "darwin":
        from assistant.speech.voiceover import VoiceOverBackend

        return [VoiceOverBackend()]
    from assistant.speech.speech_dispatcher import SpeechDispatcherBackend

    return [SpeechDispatcherBackend()]


def make_backends(settings_values: Mapping[str, Any],
                  speech_to_wav: Path | None = None) -> list[SpeechBackend]:
    """The fallback chain for these settings, best first, ending with text only."""
    voice = VoiceSettings.from_values(settings_values)
    if speech_to_wav is not None:
        return [WavFileBackend(speech_to_wav, voice), TextOnlyBackend()]
    route = settings_values.get("speech.route", "auto")
    chain: list[SpeechBackend] = []
    if route in ("auto", "screen-reader"):
        readers = screen_reader_backends()
        if route == "auto":
            # "auto" means "a screen reader if one runs": one that does not is no news to report.
            for reader in readers:
                reader.optional = True
        elif not readers:
            readers = [UnavailableBackend("screen-reader", "speaking through the screen reader",
                                          "this version cannot speak through screen readers yet")]
        chain += readers
    own = OwnVoiceBackend(voice)
    chain += [own, TextOnlyBackend()]
    return chain


def make_speaker(settings_values: Mapping[str, Any], speech_log: Path | None = None,
                 speech_to_wav: Path | None = None, *,
                 on_started: Callable[[str, str | None], None] | None = None,
                 on_finished: Callable[[str, str | None], None] | None = None,
                 on_error: Callable[[str], None] | None = None) -> Speaker:
    """A started Speaker for the app: ``settings_values`` is the settings mapping (``Settings.values``);
    ``speech_log``/``speech_to_wav`` come from ``--speech-log FILE`` and ``--speech-to-wav DIR``."""
    backends = make_backends(settings_values, speech_to_wav)
    if speech_log is not None:
        shared_log = SpeechLog(speech_log)
        backends = [LoggedBackend(b, shared_log) for b in backends]
    return Speaker(backends, on_started=on_started, on_finished=on_finished, on_error=on_error)
