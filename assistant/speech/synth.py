"""The pyttsx3 engine, owned by one thread, used only to synthesize speech into files.

pyttsx3 is not thread-safe, an engine used from a thread that holds no reference to it dies with
ReferenceError, and espeak-ng can be initialized once per process; so one thread owns the engine and
everything else sends it jobs. Only ``save_to_file`` + ``runAndWait`` are used: on Linux pyttsx3's own
playback cannot be stopped (``runAndWait`` returns before it ends and ``engine.stop()`` does not cut
it), so the caller plays the file with a player it can kill.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import sys
import threading
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.speech.backend import SpeechError, VoiceInfo, VoiceSettings

log = logging.getLogger(__name__)

# NSSpeechSynthesizer writes AIFF whatever the file is called; afplay plays it.
NATIVE_SUFFIX = ".aiff" if sys.platform == "darwin" else ".wav"


def _default_engine() -> Any:
    import pyttsx3

    return pyttsx3.init()


def describe_engine_failure(exc: BaseException) -> str:
    """A short reason for the user, for an exception raised while the engine starts."""
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").startswith("pyttsx3"):
        return "the pyttsx3 package is not installed"
    text = str(exc)
    if "espeak" in text.lower():
        return "espeak-ng is missing"
    if sys.platform == "win32" and isinstance(exc, ImportError):
        return f"Windows speech (SAPI5) could not be loaded: {text}"
    return f"its speech engine could not start: {text or type(exc).__name__}"


def audio_seconds(path: Path) -> float:
    """The length of a WAV file in seconds; 0.0 for a file that is not a WAV or holds no audio."""
    try:
        with wave.open(str(path), "rb") as w:
            return w.getnframes() / float(w.getframerate() or 1)
    except (OSError, EOFError, wave.Error):
        return 0.0


@dataclass
class _Job:
    text: str
    path: Path
    settings: VoiceSettings
    cancelled: Callable[[], bool]
    done: threading.Event = field(default_factory=threading.Event)
    error: str | None = None
    skipped: bool = False
    abandoned: bool = False  # the caller gave up waiting: the engine thread deletes the late file


class Synthesizer:
    """Synthesizes text to audio files with a pyttsx3 engine that lives in its own thread."""

    _shared: Synthesizer | None = None
    _shared_lock = threading.Lock()

    def __init__(self, engine_factory: Callable[[], Any] | None = None,
                 start_timeout_s: float = 20.0) -> None:
        self._factory = engine_factory or _default_engine
        self._start_timeout_s = start_timeout_s
        self._jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._start_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._failure: str | None = None
        self._voices: list[VoiceInfo] = []
        self._default_voice = ""

    @classmethod
    def shared(cls) -> Synthesizer:
        """The process's engine thread (espeak-ng cannot be started twice in one process)."""
        with cls._shared_lock:
            if cls._shared is None:
                cls._shared = cls()
            return cls._shared

    def start(self) -> str | None:
        """Start the engine (once); None when it works, else the reason it does not."""
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="speech-engine", daemon=True)
                self._thread.start()
        if not self._ready.wait(self._start_timeout_s):
            return "its speech engine did not start in time"
        return self._failure

    def voices(self) -> list[VoiceInfo]:
        return [] if self.start() else list(self._voices)

    def synthesize(self, text: str, path: Path, settings: VoiceSettings,
                   cancelled: Callable[[], bool] | None = None, timeout_s: float | None = None) -> bool:
        """Write ``text`` as speech to ``path``; False when ``cancelled()`` turned true before it began."""
        failure = self.start()
        if failure:
            raise SpeechError(failure)
        job = _Job(text, path, settings, cancelled or (lambda: False))
        self._jobs.put(job)
        if not job.done.wait(timeout_s if timeout_s is not None else 10.0 + len(text) / 50):
            job.abandoned = True
            raise SpeechError("its speech engine stopped responding")
        if job.error:
            raise SpeechError(job.error)
        return not job.skipped

    def _run(self) -> None:
        try:
            if sys.platform == "win32":  # SAPI5 is COM: each thread that uses it must initialize COM
                import pythoncom  # type: ignore[import-not-found]

                pythoncom.CoInitialize()
            engine = self._factory()  # this local keeps the engine alive for the thread's whole life
            self._voices = [VoiceInfo(str(v.id), str(v.name or v.id), tuple(map(str, v.languages or ())))
                            for v in engine.getProperty("voices")]
            self._default_voice = str(engine.getProperty("voice") or "")
        except BaseException as exc:  # a broken engine must never take the app down
            self._failure = describe_engine_failure(exc)
            log.warning("speech engine unavailable: %s", exc, exc_info=True)
            self._ready.set()
            return
        self._ready.set()
        errors: list[BaseException] = []
        engine.connect("error", lambda **kw: errors.append(kw.get("exception") or RuntimeError("error")))
        while True:
            job = self._jobs.get()
            if job.cancelled():
                job.skipped = True
                job.done.set()
                continue
            # espeak-ng can still cancel a synthesis now and then (seen on the first one of a session while
            # the model loaded beside it): an empty file is tried once more before it counts as a failure.
            for _attempt in range(2):
                errors.clear()
                job.error = None
                try:
                    self._synthesize(engine, job)
                except Exception as exc:
                    job.error = f"its speech engine failed: {exc}"
                    # runAndWait leaves its "loop running" flag set when the driver raises; every later
                    # call would then fail with "run loop already started".
                    with contextlib.suppress(AttributeError):
                        engine._inLoop = False
                if job.error is None and (NATIVE_SUFFIX != ".wav" or audio_seconds(job.path) > 0.0):
                    break
                if job.cancelled() or job.abandoned:
                    break
            if job.error is None and audio_seconds(job.path) <= 0.0 and NATIVE_SUFFIX == ".wav":
                why = f": {errors[0]}" if errors else ""
                job.error = f"its speech engine produced no audio{why}"
            if job.abandoned:
                job.path.unlink(missing_ok=True)
            job.done.set()

    def _synthesize(self, engine: Any, job: _Job) -> None:
        s = job.settings
        known = {v.id for v in self._voices}
        # An unknown voice would make pyttsx3 report an error and keep the previous voice; use the default.
        engine.setProperty("voice", s.voice if s.voice in known else self._default_voice)
        engine.setProperty("rate", int(s.rate))
        engine.setProperty("volume", float(s.volume))
        # Always queue exactly one save_to_file before runAndWait: runAndWait with nothing queued repeats
        # the last text, and each job's file name is new, so an old file is never rewritten.
        engine.save_to_file(job.text, str(job.path))
        if getattr(engine, "driver_name", None) == "espeak":
            # espeak-ng runs its commands on its own thread. runAndWait begins with the driver's stop(),
            # which cancels whatever espeak-ng still has queued when this runs (the rate or voice just set)
            # and then also cancels the new synthesis: no file, or the old rate (seen 1 time in 3 here).
            # Waiting until espeak-ng is idle first makes that stop() a no-op.
            from pyttsx3.drivers import _espeak

            _espeak.Synchronize()
        engine.runAndWait()

    def known_voice(self, voice: str) -> bool:
        return not voice or voice in {v.id for v in self.voices()}
