"""The Speaker: speaks on its own thread so the caller (the UI) never waits, with a fallback chain.

``say`` and ``stop`` return at once. An interrupting ``say`` (the default, for a new description)
cuts off the current speech and drops everything queued. The callbacks are plain callables, called
on the Speaker's thread (the app wraps them into Qt signals, which queue them to the GUI thread):

- ``on_started(text, action)`` when audio of an utterance starts,
- ``on_finished(text, action)`` when it ends, played out or cut off,
- ``on_error(message)`` with a whole sentence for the user.

Backends are tried in order: one whose ``check()`` fails, or whose ``speak()`` raises, is reported once
through ``on_error`` and the next one takes over, for the same utterance. A backend that does not
really speak (the text-only fallback) is never taken over silently: the message says nothing speaks.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assistant.speech.backend import SpeechBackend, SpeechError, Utterance, VoiceInfo, VoiceSettings

log = logging.getLogger(__name__)

TEXT_ONLY_NOTE = "nothing else can speak, so text is only shown in the assistant's window"


@dataclass
class _Item:
    utterance: Utterance
    generation: int


def _noop(*_args: object) -> None:
    pass


RETRY_AFTER_S = 20.0


class Speaker:
    def __init__(self, backends: Sequence[SpeechBackend], *,
                 on_started: Callable[[str, str | None], None] | None = None,
                 on_finished: Callable[[str, str | None], None] | None = None,
                 on_error: Callable[[str], None] | None = None,
                 poll_s: float = 0.02) -> None:
        if not backends:
            raise ValueError("a Speaker needs at least one backend")
        self.backends = list(backends)
        self.on_started = on_started or _noop
        self.on_finished = on_finished or _noop
        self.on_error = on_error or _noop
        self._poll_s = poll_s
        self._cond = threading.Condition()
        self._pending: collections.deque[_Item] = collections.deque()
        self._generation = 0
        self._closing = False
        self._index = 0  # the backend in use; only the worker moves it
        self._checked: set[int] = set()
        self._told_text_only = False  # the user has been told that nothing speaks
        # A backend that failed while speaking (not one that is missing) is tried again after a while:
        # one synthesis that timed out on a machine busy loading the model must not silence the voice
        # for the whole session. Each failure is still reported once.
        self._retry_at: float | None = None
        self._reported: set[str] = set()
        self._current: _Item | None = None
        self._thread = threading.Thread(target=self._run, name="speaker", daemon=True)
        self._thread.start()

    # -- the caller's side: everything returns at once

    @property
    def backend(self) -> SpeechBackend:
        """The backend in use now (or next to be tried)."""
        return self.backends[min(self._index, len(self.backends) - 1)]

    @property
    def busy(self) -> bool:
        """True while something is being said or waits to be said."""
        return self._current is not None or bool(self._pending)

    def say(self, text: str, action: str | None = None, interrupt: bool = True,
            requested_at: float | None = None) -> None:
        """Say ``text``; ``interrupt`` cuts off what is being said and drops what is queued.

        ``requested_at`` is when the user asked (the key press), for the speech log; default: now."""
        text = text.strip()
        if not text:
            return
        with self._cond:
            if self._closing:
                return
            if interrupt:
                self._cut_locked()
            generation = self._generation
            utterance = Utterance(text, action, requested_at or time.time(),
                                  cancelled=lambda: self._generation != generation or self._closing)
            self._pending.append(_Item(utterance, generation))
            self._cond.notify()

    def stop(self) -> None:
        """Stop speaking now and drop everything queued."""
        with self._cond:
            self._cut_locked()
            self._cond.notify()

    def apply_settings(self, settings: VoiceSettings) -> None:
        """New voice, rate or volume, from the next utterance on; ValueError (for the user) if unusable."""
        for backend in self.backends:
            backend.apply_settings(settings)

    def list_voices(self) -> list[VoiceInfo]:
        for backend in self.backends:
            voices = backend.list_voices()
            if voices:
                return voices
        return []

    def retry(self) -> None:
        """Start the fallback chain over (e.g. after the user installed espeak-ng or plugged in sound)."""
        with self._cond:
            self._index = 0
            self._checked.clear()
            self._told_text_only = False

    def close(self, timeout: float = 2.0) -> bool:
        """Stop speaking, end the thread and release the backends; False if the thread did not end in time."""
        with self._cond:
            self._closing = True
            self._cut_locked()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        ended = not self._thread.is_alive()
        for backend in self.backends:
            try:
                backend.close()
            except Exception:
                log.exception("closing speech backend %s failed", backend.name)
        return ended

    def _cut_locked(self) -> None:
        # Called with the lock held: the new generation makes every queued or starting utterance stale,
        # and stopping the backend here (not on the worker) cuts the sound off without waiting for it.
        self._generation += 1
        self._pending.clear()
        backend = self.backend
        try:
            backend.stop()
        except Exception:
            log.exception("stopping speech backend %s failed", backend.name)

    # -- the worker

    def _run(self) -> None:
        while True:
            item: _Item | None = None
            with self._cond:
                while True:
                    current = self._current
                    if self._closing:
                        break
                    if current is not None:
                        if current.generation != self._generation or not self._backend_busy():
                            break
                        self._cond.wait(self._poll_s)
                    elif self._pending:
                        item = self._pending.popleft()
                        break
                    else:
                        self._cond.wait()
                closing = self._closing
            if current is not None:
                self._current = None
                self._emit(self.on_finished, current.utterance.text, current.utterance.action)
                continue
            if closing:
                return
            if item is not None and self._speak(item):
                self._current = item

    def _backend_busy(self) -> bool:
        try:
            return self.backend.busy
        except Exception:
            log.exception("speech backend %s failed", self.backend.name)
            return False

    def _speak(self, item: _Item) -> bool:
        """Say the item with the first backend that works; True if it started."""
        utterance = item.utterance
        while True:
            backend = self._usable_backend()
            if backend is None or utterance.cancelled():
                return False
            try:
                started_at = backend.speak(utterance)
            except Exception as exc:
                if not isinstance(exc, SpeechError):
                    log.exception("speech backend %s failed", backend.name)
                if self._closing:
                    return False
                self._give_up(backend, str(exc) or type(exc).__name__)
                self._retry_at = time.monotonic() + RETRY_AFTER_S
                continue
            if started_at is None:
                return False
            self._emit(self.on_started, utterance.text, utterance.action)
            return True

    def _usable_backend(self) -> SpeechBackend | None:
        if self._retry_at is not None and time.monotonic() >= self._retry_at:
            self._retry_at, self._index = None, 0
        while self._index < len(self.backends):
            index = self._index
            backend = self.backends[index]
            if index in self._checked:
                return backend
            try:
                availability = backend.check()
            except Exception as exc:
                log.exception("checking speech backend %s failed", backend.name)
                availability = None
                reason = str(exc) or type(exc).__name__
            else:
                reason = availability.reason
            if availability:
                self._checked.add(index)
                for warning in availability.warnings:
                    self._emit(self.on_error, warning)
                if not backend.speaks and not self._told_text_only:
                    self._told_text_only = True
                    self._emit(self.on_error, f"No speech output is available; {TEXT_ONLY_NOTE}.")
                return backend
            self._give_up(backend, reason or "it did not say why")
        return None

    def _give_up(self, backend: SpeechBackend, reason: str) -> None:
        """Report a failed backend once and move on to the next."""
        self._index += 1
        if backend.optional:
            log.info("%s is not available (%s)", backend.label, reason)
            return
        following = self.backends[self._index] if self._index < len(self.backends) else None
        if following is not None and following.speaks:
            then = f"{following.label} speaks instead"
        elif following is not None:
            then = TEXT_ONLY_NOTE
            self._told_text_only = True
        else:
            then = "nothing can speak"
        label = backend.label[:1].upper() + backend.label[1:]
        message = f"{label} is not available ({reason}); {then}."
        if message not in self._reported:
            self._reported.add(message)
            self._emit(self.on_error, message)

    def _emit(self, callback: Callable[..., None], *args: object) -> None:
        try:
            callback(*args)
        except Exception:  # a broken listener must not kill speech
            log.exception("speech callback failed")
