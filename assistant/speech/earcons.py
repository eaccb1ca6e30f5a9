"""Earcons: short sounds that say "your key press was taken" and "still working", without words.

A screen-reader user who presses a hotkey hears nothing until the first word; an 80 ms sound at the
capture says at once that the press arrived, and a soft tick while a slow model works says the
assistant has not frozen. Sounds, not speech, so they never talk over the screen reader.

The sounds are ``resources/sounds/<name>.wav``, written by :func:`synthesize` from :data:`SOUNDS` (a test
checks the shipped files are what it writes). They play through the same players as the own voice
(:mod:`assistant.speech.player`), in their own process, so playing never waits. With
``--speech-to-wav DIR`` nothing is played: each earcon is copied to ``DIR/earcons/NNNN-<name>.wav``, in
order, for the tests. Qt-free.
"""

from __future__ import annotations

import io
import logging
import math
import shutil
import struct
import threading
import wave
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from assistant.speech.backend import SpeechError

if TYPE_CHECKING:
    from assistant.speech.player import Playback

log = logging.getLogger(__name__)

RATE = 22050
# name -> notes (frequency in Hz, milliseconds); quiet and short: they sit under speech, not over it
SOUNDS: dict[str, tuple[tuple[float, int], ...]] = {
    "captured": ((1318.5, 35), (1760.0, 45)),  # a quick rising pair, like a camera's click
    "working": ((523.3, 70),),  # one soft low tick, repeated while a description takes long
}
VOLUME = 0.25
WORKING_AFTER_S = 1.0  # the first "working" tick: a built-in description is spoken before it
WORKING_EVERY_S = 3.0


def synthesize(name: str) -> bytes:
    """The WAV bytes of sound ``name``: sine notes with 5 ms fades (no clicks), 16-bit mono."""
    samples: list[int] = []
    for freq, ms in SOUNDS[name]:
        n = RATE * ms // 1000
        fade = RATE * 5 // 1000
        for i in range(n):
            envelope = min(1.0, i / fade, (n - 1 - i) / fade)
            samples.append(round(32767 * VOLUME * envelope * math.sin(2 * math.pi * freq * i / RATE)))
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(struct.pack(f"<{len(samples)}h", *samples))
    return out.getvalue()


def sound_path(name: str) -> Path:
    from assistant import resources

    return resources.path("sounds", f"{name}.wav")


class Earcons:
    """Plays the earcons while ``enabled()`` (the ``speech.earcons`` setting); never raises, never waits.

    ``players``: player commands, best first (default: this platform's); ``speaking``: whether the own
    voice is playing, since Windows' winsound plays one sound per process and an earcon would cut it off.
    """

    def __init__(self, enabled: Callable[[], bool], *, to_folder: Path | None = None,
                 players: Sequence[tuple[str, ...]] | None = None,
                 speaking: Callable[[], bool] = lambda: False) -> None:
        from assistant.speech.player import default_player_commands

        self.enabled, self.speaking = enabled, speaking
        self.folder = None if to_folder is None else Path(to_folder) / "earcons"
        self.players = list(default_player_commands() if players is None else players)
        self._playing: Playback | None = None
        self._count = 0
        self._lock = threading.Lock()
        self._warned = False

    def play(self, name: str) -> bool:
        """Play sound ``name`` now (cutting off the previous earcon); True if it was played or written."""
        if name not in SOUNDS or not self.enabled():
            return False
        try:
            with self._lock:
                self._count += 1
                if self.folder is not None:
                    self.folder.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(sound_path(name), self.folder / f"{self._count:04d}-{name}.wav")
                    return True
                return self._start(name)
        except (OSError, SpeechError) as exc:  # a missing player or sound file costs the sound, not the app
            if not self._warned:
                log.warning("earcon %s could not play: %s", name, exc)
                self._warned = True
            return False

    def _start(self, name: str) -> bool:
        from assistant.speech.player import WINSOUND, start_playback

        if not self.players or (self.players[0] == WINSOUND and self.speaking()):
            return False
        self._stop_locked()
        self._playing = start_playback(self.players[0], sound_path(name))
        return True

    def stop(self) -> None:
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        playing, self._playing = self._playing, None
        if playing is not None:
            playing.kill()
            playing.close()
