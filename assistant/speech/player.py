"""Audio players that can be cut off at once: a player subprocess, or winsound on Windows."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path

from assistant.speech.backend import SpeechError
from assistant.speech.synth import audio_seconds

# Best first: on a PulseAudio or PipeWire desktop, paplay/pw-play go through the sound server (which
# mixes with other apps); aplay talks to ALSA directly and is the last resort.
LINUX_PLAYERS: tuple[tuple[str, ...], ...] = (("paplay",), ("pw-play",), ("aplay", "-q"))
MAC_PLAYERS: tuple[tuple[str, ...], ...] = (("afplay",),)
WINSOUND = ("winsound",)  # not a program: the in-process Windows player


def default_player_commands() -> list[tuple[str, ...]]:
    """This platform's player commands whose program exists, best first (the file is appended)."""
    if sys.platform == "win32":
        return [WINSOUND]
    candidates = MAC_PLAYERS if sys.platform == "darwin" else LINUX_PLAYERS
    return [c for c in candidates if shutil.which(c[0])]


class Playback(ABC):
    """One file being played."""

    killed = False

    @abstractmethod
    def done(self) -> bool:
        """True once playback has ended (finished, failed or killed)."""

    @abstractmethod
    def failure(self) -> str | None:
        """Why playback failed, once done; None if it played (or was killed by us)."""

    @abstractmethod
    def kill(self) -> None:
        """Cut the sound off now."""

    def close(self) -> None:  # noqa: B027 - most players hold nothing
        """Release what the playback holds, once it is done or killed."""


class ProcessPlayback(Playback):
    def __init__(self, command: Sequence[str], path: Path) -> None:
        self.command = tuple(command)
        # stderr goes to a file, not a pipe: a chatty player must never block on a full pipe.
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the player; close()
        try:
            # Its own process group, so stop() also kills whatever a wrapper script started.
            self.process = subprocess.Popen([*command, str(path)], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=self._stderr,
                                            start_new_session=os.name == "posix")
        except OSError as exc:
            self._stderr.close()
            raise SpeechError(f"the audio player {command[0]} could not start: {exc}") from exc

    def done(self) -> bool:
        return self.process.poll() is not None

    def failure(self) -> str | None:
        code = self.process.poll()
        if code in (None, 0) or self.killed:
            return None
        try:
            self._stderr.seek(0)
            lines = self._stderr.read().decode("utf-8", "replace").strip().splitlines()
        except (OSError, ValueError):
            lines = []
        # ALSA prints a screenful of "ALSA lib ..." lines before the one line that says what went wrong.
        detail = lines[-1].strip() if lines else f"exit status {code}"
        program = Path(self.command[0]).name
        return detail if detail.startswith(program) else f"{program}: {detail}"

    def kill(self) -> None:
        self.killed = True
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                if os.name == "posix":
                    os.killpg(self.process.pid, signal.SIGKILL)
                else:
                    self.process.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=1.0)  # reap it: SIGKILL ends a process within milliseconds

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stderr.close()


class WinsoundPlayback(Playback):  # pragma: no cover - Windows only
    """winsound plays one sound per process, asynchronously, with no "finished" signal; the WAV's
    length says when it is done."""

    def __init__(self, path: Path) -> None:
        import winsound  # type: ignore[import-not-found]

        self._winsound = winsound
        self._ends_at = time.monotonic() + audio_seconds(path) + 0.1
        try:
            winsound.PlaySound(str(path), winsound.SND_FILENAME | winsound.SND_ASYNC | winsound.SND_NODEFAULT)
        except RuntimeError as exc:
            raise SpeechError(f"Windows could not play sound: {exc}") from exc

    def done(self) -> bool:
        return self.killed or time.monotonic() >= self._ends_at

    def failure(self) -> str | None:
        return None

    def kill(self) -> None:
        self.killed = True
        self._winsound.PlaySound(None, 0)


def start_playback(command: Sequence[str], path: Path) -> Playback:
    if tuple(command) == WINSOUND:
        return WinsoundPlayback(path)
    return ProcessPlayback(command, path)
