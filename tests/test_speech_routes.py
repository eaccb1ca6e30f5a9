"""Speech through the user's screen reader: a real Speech Dispatcher server (espeak-ng, to a silent ALSA
device) in a private session, and a screen reader found by its process.

Limits, said plainly: Orca itself is not installed here (it needs a whole GNOME session); the "screen
reader" is a process named ``orca`` (a renamed ``sleep``), which is exactly what detection looks at. The
Windows (cytolk: NVDA, JAWS) and macOS (VoiceOver) routes cannot run on Linux; only their guards are tested.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant.speech import Speaker, WavFileBackend, make_backends
from assistant.speech.screen_readers import running_linux_reader
from assistant.speech.speech_dispatcher import SpeechDispatcherBackend
from assistant.speech.voiceover import VoiceOverBackend
from assistant.speech.windows_reader import WindowsScreenReaderBackend, detect

SAMPLE_RATE = 22050  # espeak-ng's


def _wait(check, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


class Events:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.errors: list[str] = []

    def kwargs(self) -> dict:
        return {"on_started": lambda text, _a: self.started.append(text), "on_error": self.errors.append}


@pytest.fixture()
def speechd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private Speech Dispatcher session: its own socket, config and log; audio to ALSA's null device.
    Yields the server's log file; the server (started on demand by the first client) is ended by its PID."""
    if not shutil.which("spd-say") or not Path("/usr/lib/speech-dispatcher-modules/sd_espeak-ng").exists():
        pytest.skip("needs speech-dispatcher and speech-dispatcher-espeak-ng")
    if running_linux_reader() is not None:
        pytest.skip("a real screen reader runs on this machine")
    runtime = Path(f"/tmp/ba-spd-{os.getpid()}-{time.monotonic_ns()}")  # socket paths must stay short
    runtime.mkdir(mode=0o700)
    config = tmp_path / "config" / "speech-dispatcher"
    config.mkdir(parents=True)
    # LogLevel 4 logs every block of samples sent to audio: the proof that text became speech.
    (config / "speechd.conf").write_text('AudioOutputMethod "alsa"\nAudioALSADevice "default"\n'
                                         'AddModule "espeak-ng" "sd_espeak-ng" "espeak-ng.conf"\n'
                                         "DefaultModule espeak-ng\nLogLevel 4\n")
    alsa = tmp_path / "asound.conf"
    alsa.write_text("pcm.!default { type null }\nctl.!default { type hw card 0 }\n")
    for name, value in (("XDG_RUNTIME_DIR", runtime), ("XDG_CONFIG_HOME", tmp_path / "config"),
                        ("XDG_CACHE_HOME", tmp_path / "cache"), ("ALSA_CONFIG_PATH", alsa)):
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("SPEECHD_ADDRESS", raising=False)
    try:
        yield runtime / "speech-dispatcher" / "log" / "speech-dispatcher.log"
    finally:
        socket = str(runtime / "speech-dispatcher" / "speechd.sock")
        for pid in _pids_with(socket):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        shutil.rmtree(runtime, ignore_errors=True)


def _pids_with(argument: str) -> list[int]:
    """The processes whose command line holds ``argument`` (our server, found by its private socket)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if argument.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
    return pids


@pytest.fixture()
def orca(tmp_path: Path) -> Iterator[subprocess.Popen]:
    """A process the system calls "orca" (/proc/PID/comm), as the real Orca is called."""
    fake = tmp_path / "bin" / "orca"
    fake.parent.mkdir()
    fake.symlink_to(shutil.which("sleep") or "/bin/sleep")
    proc = subprocess.Popen([str(fake), "120"])
    try:
        _wait(lambda: running_linux_reader() == "Orca", 5)
        yield proc
    finally:
        proc.terminate()
        proc.wait(5)


def _samples(log: Path, after: int = 0) -> int:
    if not log.exists():
        return 0
    text = log.read_text(errors="replace")[after:]
    return sum(int(n) for n in re.findall(r"Sending (\d+) samples to audio", text))


def test_auto_speaks_through_the_running_screen_reader(speechd: Path, orca, tmp_path: Path) -> None:
    events = Events()
    backends = make_backends({"speech.route": "auto"})
    assert backends[0].name == "speech-dispatcher" and backends[0].optional
    backends[1] = WavFileBackend(tmp_path / "wav")  # should the route fail, the test sees WAV files instead
    speaker = Speaker(backends, **events.kwargs())
    text = "A brown dog runs across a green field towards a red ball."
    try:
        speaker.say(text)
        _wait(lambda: events.started)
        assert speaker.backend.name == "speech-dispatcher" and speaker.backend.label.startswith("Orca")
        _wait(lambda: not speaker.busy)
    finally:
        speaker.close()
    assert events.errors == [] and events.started == [text]
    assert not (tmp_path / "wav").exists() or not list((tmp_path / "wav").glob("*.wav"))
    seconds = _samples(speechd) / SAMPLE_RATE
    words = len(text.split())
    assert 0.15 * words < seconds < 1.2 * words + 1, (seconds, words)  # the whole sentence was synthesized


def test_stop_cuts_the_screen_reader_route_off(speechd: Path, orca) -> None:
    backend = SpeechDispatcherBackend()
    assert backend.check()
    long_text = " ".join(["This sentence is long and it goes on for quite a while."] * 20)
    words = len(long_text.split())
    # The null ALSA device plays faster than real time, so stop right after the first audio is sent.
    backend.speak(long_text)
    _wait(lambda: _samples(speechd) > 0, 10)
    backend.stop()
    assert not backend.busy
    time.sleep(1.0)
    said = _samples(speechd) / SAMPLE_RATE
    assert said < 0.5 * 0.3 * words, said  # far less than the whole text (about 0.3 s a word)


def test_without_a_screen_reader_auto_uses_the_own_voice_quietly(tmp_path: Path) -> None:
    if running_linux_reader() is not None:
        pytest.skip("a real screen reader runs on this machine")
    events = Events()
    backends = make_backends({"speech.route": "auto"})
    backends[1] = WavFileBackend(tmp_path / "wav")
    speaker = Speaker(backends, **events.kwargs())
    try:
        speaker.say("Hello.")
        _wait(lambda: events.started)
    finally:
        speaker.close()
    assert events.errors == [] and speaker.backend.name == "wav-files"


def test_a_failing_screen_reader_route_falls_back_and_says_so_once(speechd: Path, orca, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    # Orca runs, but its speech server cannot be reached (a socket nobody serves).
    monkeypatch.setenv("SPEECHD_ADDRESS", f"unix_socket:{tmp_path}/nobody.sock")
    events = Events()
    backends = make_backends({"speech.route": "screen-reader"})
    backends[1] = WavFileBackend(tmp_path / "wav")
    speaker = Speaker(backends, **events.kwargs())
    try:
        for text in ("One.", "Two.", "Three."):
            speaker.say(text, interrupt=False)
        _wait(lambda: len(events.started) == 3, 30)
    finally:
        speaker.close()
    assert len(events.errors) == 1, events.errors
    assert events.errors[0].startswith(
        "Speaking through the screen reader is not available (Speech Dispatcher cannot be reached")
    assert events.errors[0].endswith("speech to WAV files speaks instead.")
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 3


def test_screen_readers_are_found_by_their_process(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    for pid, comm in ((1, "systemd"), (42, "speech-dispatch"), (77, "bash")):
        (proc / str(pid)).mkdir(parents=True)
        (proc / str(pid) / "comm").write_text(comm + "\n")
    assert running_linux_reader(proc) is None  # a speech server alone is not a screen reader
    (proc / "99").mkdir()
    (proc / "99" / "comm").write_text("orca\n")
    assert running_linux_reader(proc) == "Orca"


def test_other_platforms_routes_decline_here_in_words() -> None:
    windows = WindowsScreenReaderBackend().check()
    assert not windows and "Windows only" in windows.reason
    assert detect() is None
    mac = VoiceOverBackend().check()
    assert not mac and "macOS only" in mac.reason
