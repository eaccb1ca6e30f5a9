"""The speech subsystem with real espeak-ng (through pyttsx3) and real player processes.

There is no sound card here. ALSA is pointed (ALSA_CONFIG_PATH) at a ``type file`` device that writes
what it is given to a file, so a test can see how much audio a player really delivered. ``aplay`` to
that device does not run in real time (a 3.5 s WAV "plays" in 3 ms), so the tests that need audio that
lasts use a real-time player: a small script that feeds the WAV to aplay at the audio's own rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import psutil
import pytest

from assistant.speech import (
    LoggedBackend,
    OwnVoiceBackend,
    Speaker,
    SpeechError,
    SpeechLog,
    TextOnlyBackend,
    UnavailableBackend,
    Utterance,
    VoiceSettings,
    WavFileBackend,
    make_backends,
    make_speaker,
    screen_reader_backends,
)
from assistant.speech.chunks import split_for_speech
from assistant.speech.player import default_player_commands
from assistant.speech.synth import Synthesizer

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="uses espeak-ng, aplay and ALSA configs")

REPO = Path(__file__).resolve().parents[1]
TWELVE_WORDS = "This is a twelve word sentence that we use to measure speech length."
# One sentence (under the 160-character first piece), about 6 to 8 seconds of speech.
LONG_SENTENCE = ("The window shows a large spreadsheet with twelve columns of monthly sales figures, "
                 "a bar chart below it and a toolbar with many small grey icons.")
BYTES_PER_SECOND = 22050 * 2  # espeak-ng through pyttsx3: 16-bit mono at 22,050 Hz

# A short ALSA buffer (0.1 s) so that the captured file grows steadily, not in half-second bursts.
PACED_PLAYER = textwrap.dedent("""
    import subprocess, sys, time, wave
    with wave.open(sys.argv[1], "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        aplay = subprocess.Popen(["aplay", "-q", "-t", "raw", "-f", "S16_LE", "-r", str(rate),
                                  "-c", str(channels), "--buffer-time=100000"], stdin=subprocess.PIPE)
        start, sent = time.monotonic(), 0
        while data := w.readframes(rate // 50):
            aplay.stdin.write(data)
            aplay.stdin.flush()
            sent += len(data) // (2 * channels)
            time.sleep(max(0.0, start + sent / rate - time.monotonic()))
        aplay.stdin.close()
        sys.exit(aplay.wait())
""")


@pytest.fixture()
def alsa_capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """ALSA's default device appends everything played to the returned file (and plays nothing)."""
    captured = tmp_path / "played.raw"
    conf = tmp_path / "asound.conf"
    # "|command": the file plugin pipes into it; a plain file name would be truncated by each player.
    conf.write_text(f'pcm.!default {{ type file slave {{ pcm {{ type null }} }} file "|cat >>{captured}" '
                    'format "raw" }\n')
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(conf))
    return captured


@pytest.fixture()
def paced_player(tmp_path: Path) -> list[str]:
    script = tmp_path / "paced_player.py"
    script.write_text(PACED_PLAYER)
    return [sys.executable, str(script)]


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _wait_for(condition, timeout: float = 5.0, step: float = 0.005) -> float:
    """Seconds until condition() held; fails the test after ``timeout``."""
    start = time.perf_counter()
    while not condition():
        if time.perf_counter() - start > timeout:
            pytest.fail(f"condition not met within {timeout} s")
        time.sleep(step)
    return time.perf_counter() - start


def _wav(path: Path) -> tuple[float, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)
        return w.getnframes() / w.getframerate(), samples


def _player_processes() -> list[psutil.Process]:
    """This test process's player processes (the paced player and its aplay), zombies left out."""
    alive = []
    for p in psutil.Process().children(recursive=True):
        try:
            player = "aplay" in p.name() or "paced_player" in " ".join(p.cmdline())
            if player and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


class Events:
    """The Speaker's callbacks, recorded with their times."""

    def __init__(self) -> None:
        self.started: list[tuple[str, str | None]] = []
        self.finished: list[str] = []
        self.errors: list[str] = []
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def on_started(self, text: str, action: str | None) -> None:
        with self.lock:
            self.started.append((text, action))
            self.times.setdefault(f"started:{text}", time.time())

    def on_finished(self, text: str, action: str | None) -> None:
        with self.lock:
            self.finished.append(text)

    def on_error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)

    def kwargs(self) -> dict:
        return {"on_started": self.on_started, "on_finished": self.on_finished, "on_error": self.on_error}


# -- the WAV-file backend (CI mode)


def test_wav_backend_writes_numbered_wavs_of_speech_and_an_index(tmp_path: Path) -> None:
    out = tmp_path / "speech"
    out.mkdir()
    (out / "0007.wav").write_bytes(b"an earlier run's file")  # must be neither overwritten nor reused
    backend = WavFileBackend(out, VoiceSettings(rate=190))
    assert backend.check()
    before = time.time()
    started = backend.speak(TWELVE_WORDS)
    assert started is not None and before <= started <= time.time()
    backend.speak("Second.")

    assert (out / "0007.wav").read_bytes() == b"an earlier run's file"
    assert sorted(p.name for p in out.glob("*.wav")) == ["0007.wav", "0008.wav", "0009.wav"]
    seconds, samples = _wav(out / "0008.wav")
    assert 2.0 <= seconds <= 5.0, seconds
    # Speech, not silence: loud samples through much of it.
    assert np.mean(np.abs(samples.astype(np.int32)) > 1000) > 0.2
    short_seconds, _ = _wav(out / "0009.wav")
    assert short_seconds < seconds / 2
    index = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [(e["file"], e["text"]) for e in index] == [("0008.wav", TWELVE_WORDS), ("0009.wav", "Second.")]
    assert abs(index[0]["seconds"] - seconds) < 0.01
    assert not list(out.glob(".partial-*"))


def test_wav_backend_follows_the_rate_setting(tmp_path: Path) -> None:
    slow = WavFileBackend(tmp_path / "slow", VoiceSettings(rate=120))
    fast = WavFileBackend(tmp_path / "fast", VoiceSettings(rate=400))
    slow.speak(TWELVE_WORDS)
    fast.speak(TWELVE_WORDS)
    slow_s, _ = _wav(tmp_path / "slow" / "0001.wav")
    fast_s, _ = _wav(tmp_path / "fast" / "0001.wav")
    assert fast_s < 0.6 * slow_s, (slow_s, fast_s)


def test_speech_log_lines_have_fields_and_order(tmp_path: Path) -> None:
    log_path = tmp_path / "logs" / "speech.jsonl"
    events = Events()
    speaker = make_speaker({}, speech_log=log_path, speech_to_wav=tmp_path / "wav", **events.kwargs())
    try:
        speaker.say("First thing.", action="describe-screen", interrupt=False)
        speaker.say("Second thing.", interrupt=False)
        speaker.say("Third thing.", action="repeat", interrupt=False)
        _wait_for(lambda: len(events.finished) == 3)
        # Read while the speaker is still open: each line is flushed as it is written.
        lines = [json.loads(line) for line in log_path.read_text(encoding="utf-8").splitlines()]
    finally:
        speaker.close()
    assert events.errors == []
    assert [(e["text"], e["action"]) for e in lines] == [
        ("First thing.", "describe-screen"), ("Second thing.", None), ("Third thing.", "repeat")]
    for entry in lines:
        assert {"text", "requested_at", "started_at", "action"} <= entry.keys()
        assert isinstance(entry["requested_at"], float) and isinstance(entry["started_at"], float)
        assert entry["requested_at"] <= entry["started_at"] < entry["requested_at"] + 5
        assert entry["backend"] == "wav-files"
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 3


# -- the own voice: real playback through aplay


def test_own_voice_plays_the_whole_utterance_and_deletes_its_files(alsa_capture: Path) -> None:
    assert ("aplay", "-q") in default_player_commands()
    # aplay itself: paplay or pw-play, if installed, would go to a sound server, not to the ALSA capture.
    backend = OwnVoiceBackend(VoiceSettings(rate=190), players=[("aplay", "-q")])
    assert backend.check()
    text = f"{TWELVE_WORDS} And here is a second sentence, played from a second file."
    assert backend.speak(text) is not None
    _wait_for(lambda: not backend.busy)
    # aplay delivered both pieces: about 3 s + 3.5 s of 16-bit audio at 22,050 Hz.
    played_s = _size(alsa_capture) / BYTES_PER_SECOND
    assert 4.5 < played_s < 10, played_s
    _wait_for(lambda: not list(backend.temp_folder.iterdir()), timeout=1.0)
    backend.close()
    assert not backend.temp_folder.exists()


def test_stop_kills_the_player_and_the_audio_ends_at_once(alsa_capture: Path,
                                                          paced_player: list[str]) -> None:
    backend = OwnVoiceBackend(players=[paced_player])
    try:
        assert backend.speak(LONG_SENTENCE) is not None
        _wait_for(lambda: _size(alsa_capture) > 0, timeout=2.0)
        time.sleep(0.2)
        players = _player_processes()
        assert players, "the player is not running"
        assert backend.busy
        playing = _size(alsa_capture)
        time.sleep(0.2)
        assert _size(alsa_capture) > playing, "audio is not flowing"
        files = list(backend.temp_folder.iterdir())
        assert files and _wav(files[0])[0] > 4.0, "the utterance should be several seconds long"

        t0 = time.perf_counter()
        backend.stop()
        stop_s = time.perf_counter() - t0
        gone_s = _wait_for(lambda: not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE
                                           for p in players), timeout=1.0) + stop_s
        assert not backend.busy
        assert gone_s < 0.1, f"player still running {gone_s:.3f} s after stop()"
        cut_at = _size(alsa_capture)
        time.sleep(0.3)
        assert _size(alsa_capture) == cut_at, "audio went on after stop()"
        assert cut_at / BYTES_PER_SECOND < 2.0  # far less than the 6-8 s of the utterance
        _wait_for(lambda: not list(backend.temp_folder.iterdir()), timeout=0.5)
    finally:
        backend.close()


def test_playback_failure_is_a_clear_error_not_silence(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "no-devices.conf"
    empty.write_text("# no default device: like a machine without a sound card\n")
    monkeypatch.setenv("ALSA_CONFIG_PATH", str(empty))
    backend = OwnVoiceBackend(players=[("aplay", "-q")])
    with pytest.raises(SpeechError, match=r"no sound could be played: aplay: .*audio open error"):
        backend.speak(TWELVE_WORDS)
    assert not backend.busy
    assert not list(backend.temp_folder.iterdir())
    backend.close()

    no_player = OwnVoiceBackend(players=[])
    availability = no_player.check()
    assert not availability and "no audio player was found" in availability.reason
    no_player.close()


def test_speech_cancelled_after_synthesis_never_reaches_the_player(alsa_capture: Path) -> None:
    backend = OwnVoiceBackend()
    checks = []

    def cancelled() -> bool:  # false for the engine's check before synthesis, true from then on
        checks.append(time.time())
        return len(checks) > 1

    assert backend.speak(Utterance(TWELVE_WORDS, cancelled=cancelled)) is None
    assert len(checks) == 2
    assert not backend.busy and not _player_processes()
    assert _size(alsa_capture) == 0
    assert not list(backend.temp_folder.iterdir())
    backend.close()


def test_voices_are_listed_and_an_unknown_voice_is_refused(tmp_path: Path) -> None:
    backend = OwnVoiceBackend(VoiceSettings(voice="no-such-voice"))
    availability = backend.check()
    assert availability and availability.warnings == (
        "The voice 'no-such-voice' is not installed, so the default voice speaks.",)
    ids = {v.id for v in backend.list_voices()}
    assert len(ids) > 50 and "gmw/en-us" in ids
    with pytest.raises(ValueError, match="not installed"):
        backend.apply_settings(VoiceSettings(voice="still-no-such-voice"))
    backend.apply_settings(VoiceSettings(voice="gmw/en-us", rate=250))
    assert backend.settings.voice == "gmw/en-us"
    backend.close()
    # A different voice really changes the audio.
    for voice in ("gmw/en-us", "roa/fr"):
        WavFileBackend(tmp_path / voice.replace("/", "-"), VoiceSettings(voice=voice)).speak(TWELVE_WORDS)
    us = (tmp_path / "gmw-en-us" / "0001.wav").read_bytes()
    fr = (tmp_path / "roa-fr" / "0001.wav").read_bytes()
    assert us != fr


def test_first_piece_of_long_text_is_short_and_starts_fast(alsa_capture: Path) -> None:
    long_text = " ".join([TWELVE_WORDS] * 30)
    pieces = split_for_speech(long_text)
    assert pieces[0] == TWELVE_WORDS and len(pieces) > 2 and all(len(p) <= 400 for p in pieces)
    backend = OwnVoiceBackend()
    assert backend.check()  # the engine is warm, as in the running app
    t0 = time.time()
    started = backend.speak(long_text)
    assert started is not None and started - t0 < 0.25, started - t0
    backend.stop()
    backend.close()


# -- the Speaker


def test_interrupt_replaces_queued_speech_and_nothing_is_spoken_twice(
        tmp_path: Path, alsa_capture: Path, paced_player: list[str]) -> None:
    events = Events()
    log = SpeechLog(tmp_path / "speech.jsonl")
    speaker = Speaker([LoggedBackend(OwnVoiceBackend(players=[paced_player]), log)], **events.kwargs())
    try:
        say_times = []
        for text in (LONG_SENTENCE, "Queued two.", "Queued three."):
            t0 = time.perf_counter()
            speaker.say(text, action="describe-screen", interrupt=False)
            say_times.append(time.perf_counter() - t0)
        _wait_for(lambda: events.started)
        time.sleep(0.3)
        assert events.started == [(LONG_SENTENCE, "describe-screen")]  # the others wait their turn
        t0 = time.perf_counter()
        speaker.say("New description.", action="describe-window")
        say_times.append(time.perf_counter() - t0)
        _wait_for(lambda: "New description." in events.finished, timeout=5)
        time.sleep(0.1)
    finally:
        speaker.close()
    assert max(say_times) < 0.05, say_times
    assert events.errors == []
    assert events.started == [(LONG_SENTENCE, "describe-screen"), ("New description.", "describe-window")]
    assert events.finished == [LONG_SENTENCE, "New description."]
    logged = [json.loads(line)["text"] for line in (tmp_path / "speech.jsonl").read_text().splitlines()]
    assert logged == [LONG_SENTENCE, "New description."]
    # The long sentence was cut off: far less audio was played than both utterances in full.
    assert _size(alsa_capture) / BYTES_PER_SECOND < 3.5


def test_stop_through_the_speaker(alsa_capture: Path, paced_player: list[str]) -> None:
    events = Events()
    backend = OwnVoiceBackend(players=[paced_player])
    speaker = Speaker([backend], **events.kwargs())
    try:
        speaker.say(LONG_SENTENCE)
        speaker.say("Never said.", interrupt=False)
        _wait_for(lambda: _size(alsa_capture) > 0)
        t0 = time.perf_counter()
        speaker.stop()
        assert time.perf_counter() - t0 < 0.05
        assert not backend.busy and not _player_processes()
        _wait_for(lambda: events.finished == [LONG_SENTENCE], timeout=1.0)
        time.sleep(0.2)
        assert [t for t, _ in events.started] == [LONG_SENTENCE]
        assert not speaker.busy
    finally:
        assert speaker.close(timeout=2.0)


def test_falls_back_once_when_the_own_voice_is_missing_and_never_blocks(tmp_path: Path) -> None:
    def no_espeak():
        time.sleep(0.3)  # a slow start must not block say() either
        raise RuntimeError("This means you probably do not have eSpeak or eSpeak-ng installed!")

    events = Events()
    own = OwnVoiceBackend(synthesizer=Synthesizer(engine_factory=no_espeak))
    speaker = Speaker([own, WavFileBackend(tmp_path / "wav"), TextOnlyBackend()], **events.kwargs())
    try:
        durations = []
        for text in ("One.", "Two.", "Three."):
            t0 = time.perf_counter()
            speaker.say(text, interrupt=False)
            durations.append(time.perf_counter() - t0)
        assert max(durations) < 0.05, durations
        _wait_for(lambda: len(events.finished) == 3)
    finally:
        speaker.close()
    assert events.errors == ["The assistant's own voice is not available (espeak-ng is missing); "
                             "speech to WAV files speaks instead."]
    assert [t for t, _ in events.started] == ["One.", "Two.", "Three."]
    assert len(list((tmp_path / "wav").glob("*.wav"))) == 3
    assert speaker.backend.name == "wav-files"


MISSING_ESPEAK = textwrap.dedent("""
    import ctypes, json, sys, time
    real_load = ctypes.cdll.LoadLibrary
    def load(name, *args, **kwargs):
        if "espeak" in str(name):
            raise OSError(f"{name}: cannot open shared object file: No such file or directory")
        return real_load(name, *args, **kwargs)
    ctypes.cdll.LoadLibrary = load  # pyttsx3 finds no libespeak-ng, exactly as on a machine without it

    from assistant.speech import make_speaker
    errors, started = [], []
    speaker = make_speaker({"speech.route": "own-voice"}, on_error=errors.append,
                           on_started=lambda text, action: started.append(text))
    speaker.say("Hello.", interrupt=False)
    speaker.say("Still working.", interrupt=False)
    deadline = time.time() + 10
    while len(started) < 2 and time.time() < deadline:
        time.sleep(0.01)
    speaker.close()
    print(json.dumps({"errors": errors, "started": started, "backend": speaker.backend.name,
                      "qt": any(m.startswith("PySide6") for m in sys.modules)}))
""")


def test_missing_espeak_is_reported_clearly_and_text_only_is_never_silent() -> None:
    result = subprocess.run([sys.executable, "-c", MISSING_ESPEAK], cwd=REPO, capture_output=True, text=True,
                            timeout=60, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["errors"] == ["The assistant's own voice is not available (espeak-ng is missing); "
                             "nothing else can speak, so text is only shown in the assistant's window."]
    assert out["started"] == ["Hello.", "Still working."]
    assert out["backend"] == "text-only"
    assert out["qt"] is False


def test_routes_build_the_right_chains(tmp_path: Path) -> None:
    reader = [b.name for b in screen_reader_backends()]  # Speech Dispatcher here (Linux)
    assert [b.name for b in make_backends({"speech.route": "auto"})] == [*reader, "own-voice", "text-only"]
    assert all(b.optional for b in make_backends({"speech.route": "auto"})[:len(reader)])
    assert [b.name for b in make_backends({"speech.route": "own-voice"})] == ["own-voice", "text-only"]
    assert [b.name for b in make_backends({}, speech_to_wav=tmp_path)] == ["wav-files", "text-only"]
    events = Events()
    speaker = Speaker(make_backends({"speech.route": "screen-reader"}, speech_to_wav=None), **events.kwargs())
    try:
        assert [b.name for b in speaker.backends] == [*reader, "own-voice", "text-only"]
        speaker.backends[1] = WavFileBackend(tmp_path / "wav")  # no sound card here; the chain is the point
        speaker.say("Hello.")
        _wait_for(lambda: events.finished)
    finally:
        speaker.close()
    assert len(events.errors) == 1 and events.errors[0].startswith(
        "Speaking through the screen reader is not available (")
    assert events.errors[0].endswith("speech to WAV files speaks instead.")


def test_optional_routes_are_passed_quietly_but_text_only_is_always_told(tmp_path: Path) -> None:
    def screen_reader() -> UnavailableBackend:
        reader = UnavailableBackend("nvda", "NVDA", "NVDA is not running")
        reader.optional = True  # as under speech.route "auto"
        return reader

    quiet, told = Events(), Events()
    with_voice = Speaker([screen_reader(), WavFileBackend(tmp_path / "wav")], **quiet.kwargs())
    text_only = Speaker([screen_reader(), TextOnlyBackend()], **told.kwargs())
    try:
        for speaker in (with_voice, text_only):
            speaker.say("One.", interrupt=False)
            speaker.say("Two.", interrupt=False)
        _wait_for(lambda: len(quiet.finished) == 2 and len(told.finished) == 2)
    finally:
        with_voice.close()
        text_only.close()
    assert quiet.errors == []
    assert told.errors == ["No speech output is available; nothing else can speak, so text is only shown in "
                           "the assistant's window."]
    assert [t for t, _ in told.started] == ["One.", "Two."]


def test_speech_package_never_imports_qt() -> None:
    for path in (REPO / "assistant" / "speech").glob("*.py"):
        source = path.read_text(encoding="utf-8")
        assert "PySide" not in source and "PyQt" not in source, path
