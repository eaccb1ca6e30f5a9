"""Speaking through VoiceOver on macOS, with AppleScript (``osascript``).

VoiceOver only accepts this when the user has ticked "Allow VoiceOver to be controlled with AppleScript"
in VoiceOver Utility; otherwise osascript fails and the route falls back to the own voice, saying why.
UNTESTED HERE: the test machines are Linux; the unit test checks only that it declines off macOS.
"""

from __future__ import annotations

import subprocess
import sys
import time

from assistant.speech.backend import Availability, SpeechBackend, SpeechError, Utterance, as_utterance
from assistant.speech.screen_readers import voiceover_running


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class VoiceOverBackend(SpeechBackend):
    name = "voiceover"
    label = "VoiceOver"

    def check(self) -> Availability:
        if sys.platform != "darwin":
            return Availability(False, "VoiceOver exists on macOS only")
        if not voiceover_running():
            return Availability(False, "VoiceOver is not running")
        return Availability(True)

    def speak(self, what: Utterance | str) -> float | None:
        utterance = as_utterance(what)
        if utterance.cancelled():
            return None
        script = f"tell application \"VoiceOver\" to output {_quoted(utterance.text)}"
        try:
            done = subprocess.run(["osascript", "-e", script], capture_output=True, text=True, timeout=5,
                                  check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SpeechError(f"osascript failed: {exc}") from exc
        if done.returncode != 0:
            raise SpeechError("VoiceOver refused the text; allow VoiceOver to be controlled with AppleScript "
                              "in VoiceOver Utility")
        return time.time()

    def stop(self) -> None:
        # VoiceOver's own Control key silences it; AppleScript has no "stop speaking" for it.
        pass
