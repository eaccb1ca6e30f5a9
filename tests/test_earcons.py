"""Earcons: the shipped sounds are what the code writes, playing never waits and can be cut off, and the app
plays "captured" at a capture and "working" ticks only while a description takes long (offscreen Qt, the
real worker thread, a real timer; the desktop test hears them from a real key press)."""

from __future__ import annotations

import os
import stat
import time
import wave
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PIL import Image

from assistant.speech import earcons
from assistant.speech.earcons import SOUNDS, Earcons, sound_path, synthesize
from test_app_widgets import RecordingSpeaker, StillCapturer


def test_the_shipped_sounds_are_what_synthesize_writes_and_short() -> None:
    for name in SOUNDS:
        assert sound_path(name).read_bytes() == synthesize(name), f"resources/sounds/{name}.wav is stale"
        with wave.open(str(sound_path(name))) as w:
            seconds = w.getnframes() / w.getframerate()
            frames = w.readframes(w.getnframes())
        assert 0.03 < seconds < 0.15, (name, seconds)  # a tick, not a jingle
        peak = max(abs(int.from_bytes(frames[i:i + 2], "little", signed=True))
                   for i in range(0, len(frames), 2))
        assert 0.1 * 32767 < peak <= earcons.VOLUME * 32767 + 1  # audible, and quiet


def test_written_in_order_when_enabled_and_nothing_when_off(tmp_path: Path) -> None:
    on = [True]
    sounds = Earcons(lambda: on[0], to_folder=tmp_path)
    assert sounds.play("captured") and sounds.play("working")
    assert not sounds.play("no-such-sound")
    on[0] = False
    assert not sounds.play("captured")
    written = sorted(p.name for p in (tmp_path / "earcons").iterdir())
    assert written == ["0001-captured.wav", "0002-working.wav"]


def _slow_player(tmp_path: Path) -> tuple[str, ...]:
    """A player program that notes the file it was given and then plays for five seconds."""
    script = tmp_path / "player.sh"
    script.write_text(f'#!/bin/sh\necho "$1" >> {tmp_path}/played.txt\nsleep 5\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return (str(script),)


def test_playing_never_waits_and_stop_cuts_it_off(tmp_path: Path) -> None:
    sounds = Earcons(lambda: True, players=[_slow_player(tmp_path)])
    started = time.monotonic()
    assert sounds.play("captured")
    assert time.monotonic() - started < 0.5  # the player runs in its own process
    deadline = time.monotonic() + 5
    while not (tmp_path / "played.txt").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert (tmp_path / "played.txt").read_text().strip() == str(sound_path("captured"))
    playing = sounds._playing
    assert playing is not None and not playing.done()
    sounds.stop()
    assert playing.done()


def test_no_player_costs_the_sound_not_the_app(tmp_path: Path) -> None:
    assert not Earcons(lambda: True, players=[]).play("captured")
    assert not Earcons(lambda: True, players=[(str(tmp_path / "missing-player"),)]).play("captured")


# --- in the app's controller ----------------------------------------------------------------------------
@pytest.fixture()
def slow_app(qtbot, tiny_models, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    from assistant.app.controller import Controller
    from assistant.app.worker import VisionWorker
    from assistant.settings import Settings

    monkeypatch.setattr(earcons, "WORKING_EVERY_S", 0.5)  # a tick per half second: a short test
    worker = VisionWorker(str(tiny_models["builtin"]))
    with qtbot.waitSignal(worker.ready, timeout=60_000):
        worker.start()
    describe = worker.describer.describe
    delay = [1.8]

    def slow(*args: Any, **kwargs: Any) -> Any:  # a model that takes as long as BLIP-large does here
        time.sleep(delay[0])
        return describe(*args, **kwargs)

    worker.describer.describe = slow
    settings = Settings(tmp_path / "settings.json")
    settings.update({"describe.read_text": False})
    sounds = Earcons(lambda: bool(settings["speech.earcons"]), to_folder=tmp_path)
    noise = Image.effect_noise((96, 64), 60).convert("RGB")
    controller = Controller(settings, worker, RecordingSpeaker(),
                            capturer_factory=lambda: StillCapturer(noise), earcons=sounds)
    yield controller, tmp_path / "earcons", delay
    controller.close()
    worker.close()


def _heard(folder: Path) -> list[str]:
    return [p.name.split("-", 1)[1].removesuffix(".wav") for p in sorted(folder.glob("*.wav"))]


def test_captured_at_once_then_working_ticks_only_while_it_works(qtbot, slow_app) -> None:
    controller, folder, delay = slow_app
    with qtbot.waitSignal(controller.worker.described, timeout=30_000):
        pressed = time.time()
        controller.run_action("describe-screen")
        assert _heard(folder) == ["captured"]  # before the worker has even begun
    ticks = _heard(folder)
    # 1.8 s of work: ticks at 1.0 and 1.5 s (and 2.0 s on a slow machine), none in the first second
    assert ticks[0] == "captured" and ticks[1:] in (["working"] * 2, ["working"] * 3), ticks
    first_tick = min(p.stat().st_mtime for p in folder.glob("*-working.wav"))
    assert first_tick - pressed > 0.9
    qtbot.wait(1500)
    assert _heard(folder) == ticks  # answered: silent

    delay[0] = 0.2  # a built-in description's time: no tick at all
    with qtbot.waitSignal(controller.worker.described, timeout=30_000):
        controller.run_action("describe-screen")
    qtbot.wait(1300)
    assert _heard(folder)[len(ticks):] == ["captured"]


def test_stop_ends_the_ticks_and_the_setting_silences_them(qtbot, slow_app) -> None:
    controller, folder, delay = slow_app
    delay[0] = 3.0
    controller.run_action("describe-screen")
    qtbot.wait(1200)
    assert _heard(folder) == ["captured", "working"]
    controller.run_action("stop")
    qtbot.wait(1200)
    assert _heard(folder) == ["captured", "working"]
    qtbot.waitUntil(lambda: not controller.worker.busy, timeout=10_000)
    assert not controller.speaker.said  # the stopped description is not said when the model is done

    controller.settings.update({"speech.earcons": False})
    delay[0] = 1.3
    with qtbot.waitSignal(controller.worker.described, timeout=30_000):
        controller.run_action("describe-screen")
    assert _heard(folder) == ["captured", "working"]

    # a model that fails to load never answers the request that waited for it: the ticks end with the news
    delay[0] = 3.0
    controller.run_action("describe-screen")
    qtbot.waitUntil(controller._working.isActive, timeout=5_000)
    controller.worker.loadFailed.emit("The model x could not be loaded: test")
    assert not controller._working.isActive()
