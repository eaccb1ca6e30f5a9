"""``--speech-to-wav DIR``: every utterance becomes DIR/NNNN.wav instead of sound, for CI and for checking
what the assistant would have said.

Files are numbered from one past the highest number already in DIR and are never overwritten (a new
name is claimed with a hard link, which fails if the name exists, even with two writers).
DIR/index.jsonl maps each file to its text, one JSON line per file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import tempfile
import threading
import time
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
from assistant.speech.synth import NATIVE_SUFFIX, Synthesizer, audio_seconds

_NUMBERED = re.compile(r"^(\d+)\.wav$")
INDEX_NAME = "index.jsonl"


class WavFileBackend(SpeechBackend):
    name = "wav-files"
    label = "speech to WAV files"

    def __init__(self, folder: Path, settings: VoiceSettings | None = None, *,
                 synthesizer: Synthesizer | None = None) -> None:
        super().__init__(settings)
        self.folder = Path(folder)
        self._synth = synthesizer or Synthesizer.shared()
        self._lock = threading.Lock()
        self._next: int | None = None

    def check(self) -> Availability:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return Availability(False, f"the folder {self.folder} cannot be created: {exc.strerror}")
        if not os.access(self.folder, os.W_OK):
            return Availability(False, f"the folder {self.folder} is not writable")
        failure = self._synth.start()
        return Availability(False, failure) if failure else Availability(True)

    def list_voices(self) -> list[VoiceInfo]:
        return self._synth.voices()

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        text = " ".join(utterance.text.split())
        if not text:
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=".partial-", suffix=NATIVE_SUFFIX, dir=self.folder)
        os.close(fd)
        partial = Path(name)
        try:
            if not self._synth.synthesize(text, partial, self.settings, cancelled=utterance.cancelled):
                return None
            if NATIVE_SUFFIX != ".wav":  # pragma: no cover - macOS writes AIFF
                _aiff_to_wav(partial)
            with self._lock:
                started_at = time.time()
                final = self._claim(partial)
                entry = {"file": final.name, "text": utterance.text, "action": utterance.action,
                         "seconds": round(audio_seconds(final), 3), "written_at": started_at}
                with open(self.folder / INDEX_NAME, "a", encoding="utf-8") as index:
                    index.write(json.dumps(entry, ensure_ascii=False) + "\n")
            return started_at
        finally:
            partial.unlink(missing_ok=True)

    def stop(self) -> None:
        pass  # nothing plays: each file is complete when speak() returns

    def _claim(self, partial: Path) -> Path:
        if self._next is None:
            numbers = [int(m.group(1)) for p in self.folder.iterdir() if (m := _NUMBERED.match(p.name))]
            self._next = max(numbers, default=0) + 1
        while True:
            final = self.folder / f"{self._next:04d}.wav"
            self._next += 1
            try:
                try:
                    os.link(partial, final)
                except FileExistsError:
                    raise
                except OSError:  # a file system without hard links: exclusive create, then copy
                    with open(final, "xb") as out, open(partial, "rb") as src:
                        out.write(src.read())
                return final
            except FileExistsError:
                continue
            except OSError as exc:
                raise SpeechError(f"the file {final} could not be written: {exc.strerror}") from exc


def _aiff_to_wav(path: Path) -> None:  # pragma: no cover - macOS only
    converted = path.with_suffix(".converted.wav")
    try:
        subprocess.run(["afconvert", "-f", "WAVE", "-d", "LEI16", str(path), str(converted)], check=True,
                       capture_output=True, timeout=60)
        os.replace(converted, path)
    except (OSError, subprocess.SubprocessError) as exc:
        with contextlib.suppress(OSError):
            converted.unlink()
        raise SpeechError(f"the speech could not be converted to WAV: {exc}") from exc
