"""The assistant's own voice: pyttsx3 (espeak-ng, SAPI5 or NSSpeechSynthesizer) into a temporary file,
played by a player that stop() can kill.

Long text is spoken piece by piece (see chunks.py): the first sentence is synthesized and playing
while the rest is synthesized, because the time to the first word matters most to the listener.
Temporary files live in a private folder and are deleted as soon as they are played or cut off:
screen text must not linger on disk.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path

from assistant.speech.backend import (
    Availability,
    SpeechBackend,
    SpeechError,
    Utterance,
    VoiceInfo,
    VoiceSettings,
    as_utterance,
)
from assistant.speech.chunks import split_for_speech
from assistant.speech.player import Playback, default_player_commands, start_playback
from assistant.speech.synth import NATIVE_SUFFIX, Synthesizer

log = logging.getLogger(__name__)


class OwnVoiceBackend(SpeechBackend):
    name = "own-voice"
    label = "the assistant's own voice"

    def __init__(self, settings: VoiceSettings | None = None, *, synthesizer: Synthesizer | None = None,
                 players: Sequence[Sequence[str]] | None = None, startup_check_s: float = 0.06) -> None:
        """``players``: player commands to try in order (the file name is appended); default: this
        platform's. ``startup_check_s``: how long speak() watches a new player for an early failure
        (no sound card, no sound server), so that failure becomes a SpeechError, not silence."""
        super().__init__(settings)
        self._synth = synthesizer or Synthesizer.shared()
        self._players = [tuple(p) for p in players] if players is not None else default_player_commands()
        self._player_index = 0
        self._startup_check_s = startup_check_s
        self._lock = threading.Lock()
        self._session: _Session | None = None
        self._late_error: str | None = None
        self._dir = Path(tempfile.mkdtemp(prefix="blip-speech-"))  # mode 0700: only this user reads it
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(self._dir), True)

    # -- interface

    def check(self) -> Availability:
        failure = self._synth.start()
        if failure:
            return Availability(False, failure)
        if not self._players:
            return Availability(False, "no audio player was found (paplay, pw-play or aplay)"
                                if sys.platform.startswith("linux") else "no audio player was found")
        warnings = ()
        if not self._synth.known_voice(self.settings.voice):
            warnings = (f"The voice '{self.settings.voice}' is not installed, so the default voice speaks.",)
        return Availability(True, warnings=warnings)

    def apply_settings(self, settings: VoiceSettings) -> None:
        if settings.voice and not self._synth.start() and not self._synth.known_voice(settings.voice):
            raise ValueError(f"The voice '{settings.voice}' is not installed.")
        self.settings = settings

    def list_voices(self) -> list[VoiceInfo]:
        return self._synth.voices()

    @property
    def temp_folder(self) -> Path:
        """The private folder of the temporary audio files (empty whenever nothing is playing)."""
        return self._dir

    @property
    def busy(self) -> bool:
        session = self._session
        return session is not None and session.active

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        if self._late_error:  # the previous utterance's player failed after speak() had returned
            error, self._late_error = self._late_error, None
            raise SpeechError(error)
        if not self._players:
            raise SpeechError("no audio player was found")
        pieces = split_for_speech(utterance.text)
        if not pieces:
            return None
        path = self._synthesize_piece(pieces[0], utterance.cancelled)
        if path is None:
            return None
        session = _Session(self, utterance, pieces[1:])
        while True:
            with self._lock:
                if utterance.cancelled() or session.stopped:
                    path.unlink(missing_ok=True)
                    return None
                if self._session is not None and self._session is not session:
                    self._session.stop_locked()
                started_at = time.time()
                try:
                    playback = self._start_locked(path)
                except SpeechError:
                    path.unlink(missing_ok=True)
                    self._session = None
                    raise
                session.attach(playback, path)
                self._session = session
            failure = _early_failure(playback, self._startup_check_s)
            if failure is None:  # playing, finished already, or killed by a stop() meanwhile
                session.begin()
                return started_at
            playback.close()
            with self._lock:
                session.attach(None, None)
                if self._player_index + 1 < len(self._players) and not session.stopped:
                    # e.g. paplay exists but no sound server runs: the next player may work
                    log.info("audio player failed (%s); trying the next one", failure)
                    self._player_index += 1
                    continue
                self._session = None
                path.unlink(missing_ok=True)
            raise SpeechError(f"no sound could be played: {failure}")

    def stop(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.stop_locked()

    def close(self) -> None:
        self.stop()
        session = self._session
        if session is not None:
            session.join(2.0)
        self._cleanup()

    # -- helpers for _Session

    def _synthesize_piece(self, text: str, cancelled: Callable[[], bool]) -> Path | None:
        """A new temporary audio file with ``text`` spoken; None if the utterance was cancelled first."""
        fd, name = tempfile.mkstemp(suffix=NATIVE_SUFFIX, dir=self._dir)
        os.close(fd)
        path = Path(name)
        try:
            if self._synth.synthesize(text, path, self.settings, cancelled=cancelled):
                return path
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        path.unlink(missing_ok=True)
        return None

    def _start_locked(self, path: Path) -> Playback:
        return start_playback(self._players[self._player_index], path)

    def _report_late(self, error: str) -> None:
        self._late_error = error


def _early_failure(playback: Playback, window_s: float) -> str | None:
    """Watch a new player briefly: players without a device fail within milliseconds."""
    deadline = time.monotonic() + window_s
    while not playback.done() and time.monotonic() < deadline:
        time.sleep(0.005)
    return playback.failure() if playback.done() else None


class _Session:
    """The rest of one utterance after its first piece started: plays the pieces in order (each one
    synthesized while the one before plays) and deletes every file when it is played or cut off."""

    def __init__(self, backend: OwnVoiceBackend, utterance: Utterance, rest: list[str]) -> None:
        self._backend = backend
        self._utterance = utterance
        self._rest = rest
        self._stop = threading.Event()
        self._finished = False
        self._playback: Playback | None = None
        self._path: Path | None = None
        self._thread = threading.Thread(target=self._run, name="speech-playback", daemon=True)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    @property
    def active(self) -> bool:
        return not self._finished and not self._stop.is_set()

    def attach(self, playback: Playback | None, path: Path | None) -> None:
        """Called with the backend's lock held, so that stop() can kill the first piece at once."""
        self._playback, self._path = playback, path

    def begin(self) -> None:
        self._thread.start()

    def stop_locked(self) -> None:
        """Called with the backend's lock held."""
        self._stop.set()
        if self._playback is not None:
            self._playback.kill()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _cancelled(self) -> bool:
        return self._stop.is_set() or self._utterance.cancelled()

    def _run(self) -> None:
        upcoming: Path | None = None
        try:
            while True:
                if self._rest and not self._cancelled():
                    upcoming = self._backend._synthesize_piece(self._rest.pop(0), self._cancelled)
                self._wait_done()
                assert self._playback is not None and self._path is not None
                failure = self._playback.failure()
                self._playback.close()
                self._path.unlink(missing_ok=True)
                if failure:
                    self._backend._report_late(f"no sound could be played: {failure}")
                    break
                if upcoming is None:
                    break
                with self._backend._lock:
                    if self._cancelled():
                        break
                    self._path, upcoming = upcoming, None
                    self._playback = self._backend._start_locked(self._path)
        except Exception as exc:
            if not isinstance(exc, SpeechError):
                log.exception("speech playback failed")
            self._backend._report_late(str(exc))
            if self._playback is not None:
                self._playback.kill()  # never leave audio playing that nothing tracks any more
        finally:
            for path in (upcoming, self._path):
                if path is not None:
                    with contextlib.suppress(OSError):
                        path.unlink(missing_ok=True)
            self._finished = True

    def _wait_done(self) -> None:
        assert self._playback is not None
        while not self._playback.done() and not self._stop.wait(0.01):
            pass
        if self._stop.is_set() and not self._playback.done():
            self._playback.kill()  # stop_locked kills it; this covers a stop between the two checks
