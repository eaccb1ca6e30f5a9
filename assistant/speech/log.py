"""``--speech-log FILE``: one JSON line per utterance that started, for tests and for timing the assistant.

Each line: ``text``, ``action`` (the action id that caused it, or null), ``requested_at`` (when the
caller asked) and ``started_at`` (when audio started), both epoch seconds, and ``backend``. Lines are
appended and flushed one by one, so a crash loses at most the line being written and another process
can follow the file while the app runs.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from assistant.speech.backend import (
    Availability,
    SpeechBackend,
    Utterance,
    VoiceInfo,
    VoiceSettings,
    as_utterance,
)


class SpeechLog:
    """The JSONL file; shared by every backend of one fallback chain."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the app's lifetime

    def write(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            if not self._file.closed:
                self._file.write(line)
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()


class LoggedBackend(SpeechBackend):
    """Wraps any backend; every utterance it starts gets a line in the speech log."""

    def __init__(self, inner: SpeechBackend, speech_log: SpeechLog) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.log = speech_log
        self.name, self.label, self.speaks = inner.name, inner.label, inner.speaks
        self.optional = inner.optional  # else "auto" would report every absent screen reader

    def check(self) -> Availability:
        availability = self.inner.check()
        self.label = self.inner.label  # a route names its reader once it has found it ("Orca (...)")
        return availability

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        started_at = self.inner.speak(utterance)
        if started_at is not None:
            self.log.write({"text": utterance.text, "action": utterance.action,
                            "requested_at": utterance.requested_at, "started_at": started_at,
                            "backend": self.inner.name})
        return started_at

    def stop(self) -> None:
        self.inner.stop()

    @property
    def busy(self) -> bool:
        return self.inner.busy

    def apply_settings(self, settings: VoiceSettings) -> None:
        self.inner.apply_settings(settings)
        self.settings = settings

    def list_voices(self) -> list[VoiceInfo]:
        return self.inner.list_voices()

    def close(self) -> None:
        self.inner.close()
        self.log.close()  # the chain is closed together (Speaker.close); a write after close is dropped
