"""Speaking through the Linux screen reader's own speech server, Speech Dispatcher (Orca speaks through it).

Speech then comes in the voice, rate and language the user set up for Orca, and Speech Dispatcher's
priorities keep it from garbling with Orca's own speech. The ``spd-say`` client (Debian package
speech-dispatcher) is used rather than the ``speechd`` Python bindings: those are packaged for the
system Python only (python3-speechd), and PyPI has only an unofficial fork.

``check()`` passes only while a screen reader runs: a Speech Dispatcher server alone is no sign of one
(any program may start it), and "auto" must not move a sighted tester's speech into it.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import threading
import time
from collections.abc import Callable

from assistant.speech.backend import Availability, SpeechBackend, SpeechError, Utterance, as_utterance
from assistant.speech.screen_readers import running_linux_reader

CLIENT_NAME = "blip-assistant"


class SpeechDispatcherBackend(SpeechBackend):
    name = "speech-dispatcher"
    label = "speaking through the screen reader"  # until check() has found which one

    def __init__(self, find_reader: Callable[[], str | None] = running_linux_reader,
                 command: str = "spd-say") -> None:
        super().__init__()
        self._find_reader, self._command = find_reader, command
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reachable = False

    def check(self) -> Availability:
        reader = self._find_reader()
        if reader is None:
            return Availability(False, "no screen reader is running: Orca was not found")
        if shutil.which(self._command) is None:
            return Availability(False, f"{self._command} is missing (install the speech-dispatcher package)")
        if not self._reachable:
            # Listing the output modules connects to the server (starting it if it is not running), so a
            # server that cannot be reached fails here, once, and not silently on every utterance.
            try:
                done = subprocess.run([self._command, "-N", CLIENT_NAME, "-O"], stdin=subprocess.DEVNULL,
                                      capture_output=True, text=True, timeout=15, check=False)
            except (OSError, subprocess.TimeoutExpired) as exc:
                return Availability(False, f"Speech Dispatcher did not answer ({exc})")
            if done.returncode != 0:
                first = (done.stderr or done.stdout).strip().splitlines()[:2]
                return Availability(False, "Speech Dispatcher cannot be reached: " + " ".join(first)[:200])
            self._reachable = True
        self.label = f"{reader} (through Speech Dispatcher)"
        return Availability(True)

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        # -w: the client lives until the message is spoken, which is what ``busy`` reports. "message"
        # priority: Speech Dispatcher queues it behind Orca's "important" speech instead of cutting it.
        command = [self._command, "-w", "-N", CLIENT_NAME, "-P", "message", "--", utterance.text]
        with self._lock:
            if utterance.cancelled():
                return None
            self._end_locked()
            try:
                self._proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                              stderr=subprocess.PIPE)
            except OSError as exc:
                raise SpeechError(f"{self._command} could not start: {exc}") from exc
            proc = self._proc
        # A client that cannot reach the server gives up within a moment: that is a failed route.
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = proc.wait(0.15)
            if code != 0:
                error = (proc.stderr.read() if proc.stderr else b"").decode(errors="replace").strip()
                raise SpeechError(f"Speech Dispatcher did not accept the text ({error or f'exit {code}'})")
        return time.time()

    def stop(self) -> None:
        with self._lock:
            if self._end_locked():
                # Killing the client does not take back what the server already queued: cancel it too.
                with contextlib.suppress(OSError, subprocess.TimeoutExpired):
                    subprocess.run([self._command, "-N", CLIENT_NAME, "-S"], stdin=subprocess.DEVNULL,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=2,
                                   check=False)

    def _end_locked(self) -> bool:
        """End the running client; True if one was still speaking."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return False
        proc.terminate()
        try:
            proc.wait(1)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(1)
        return True

    @property
    def busy(self) -> bool:
        proc = self._proc
        return proc is not None and proc.poll() is None
