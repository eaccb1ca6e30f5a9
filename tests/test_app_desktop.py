"""The describe loop end to end, as a user meets it: a real X server (Xvfb, openbox, a tray host), a real
key press (xdotool) on the global hotkey, a real screen capture (mss), the model in the app's worker, and
real speech (pyttsx3 + espeak-ng) into WAV files, checked with sox."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from PIL import Image

from desktop import app_env, running_app, sox_seconds

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.desktop



def _photo(tmp_path: Path, name: str = "chelsea.jpg", size: tuple[int, int] = (1000, 680)) -> Path:
    path = tmp_path / "photo.png"
    Image.open(ROOT / "resources" / "images" / name).convert("RGB").resize(size).save(path)
    return path


def test_hotkey_captures_describes_and_speaks(desktop, tmp_path: Path, tiny_models) -> None:
    viewer, _ = desktop.show_image(_photo(tmp_path), "A photo", 140, 60)
    time.sleep(0.3)  # openbox places the window late; an early capture would miss it
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"])) as app:
        before = len(app.utterances())
        pressed = time.time()
        desktop.xdotool("key", "ctrl+alt+d")
        said = app.wait_said(lambda u: u["action"] == "describe-screen", 30, "the description", after=before)
        latency = said["started_at"] - pressed
        assert said["text"] and said["text"][0].isupper() and said["text"].endswith(".")
        assert "black" not in said["text"] and "single colour" not in said["text"]
        assert latency < 5.0, latency  # generous for a loaded CI machine; the benchmark measures speed
        wav = next(e for e in app.wav_index() if e["text"] == said["text"])
        seconds = sox_seconds(app.wav_dir / wav["file"])
        words = len(said["text"].split())
        assert 0.15 * words < seconds < 1.2 * words + 1, (seconds, words)  # speech, at a speaking pace
        # the "captured" earcon came first, at the capture (written, as the speech is, not played)
        heard = sorted((app.wav_dir / "earcons").glob("*.wav"))
        assert [p.name for p in heard] == ["0001-captured.wav"]
        assert pressed < heard[0].stat().st_mtime < said["started_at"]
        assert sox_seconds(heard[0]) < 0.15

        # The area around the pointer once the photo is gone (Xvfb's root is black): the capture is
        # real, and nothing is invented for a black picture.
        viewer.terminate()
        viewer.wait(5)
        desktop.xdotool("mousemove", "640", "420")
        time.sleep(0.3)
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+m")
        said = app.wait_said(lambda u: u["action"] == "describe-pointer", 30, "the blank notice",
                             after=before)
        assert "completely black" in said["text"]

        # Repeat says the last result again; Stop is accepted at any time.
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+l")
        again = app.wait_said(lambda u: u["action"] == "repeat", 30, "the repeat", after=before)
        assert again["text"] == said["text"]
        assert app.quit() == 0


def test_presses_while_busy_never_fail_and_only_the_newest_is_answered(desktop, tmp_path: Path,
                                                                      tiny_models) -> None:
    viewer, _ = desktop.show_image(_photo(tmp_path), "A photo", 140, 60)
    time.sleep(0.3)
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"])) as app:
        before = len(app.utterances())
        for _ in range(8):
            desktop.xdotool("key", "ctrl+alt+d")
            time.sleep(0.05)
        app.wait_said(lambda u: u["action"] == "describe-screen", 30, "a description", after=before)
        time.sleep(2.0)
        described = [u for u in app.utterances()[before:] if u["action"] == "describe-screen"]
        assert 1 <= len(described) <= 3, described  # superseded requests are dropped, not queued up
        assert not [u for u in app.utterances() if "did not work" in u["text"] or "failed" in u["text"]]
        app.check_alive()
        assert app.quit() == 0
    viewer.terminate()


def test_stop_pressed_while_the_model_runs_keeps_the_description_unsaid(desktop, tmp_path: Path,
                                                                        tiny_models) -> None:
    """Ctrl+Alt+D, then Ctrl+Alt+S while the (slowed) model still works: nothing of that description is
    ever said, and the next press is answered as usual."""
    from test_reliability_faults import _with_faults

    viewer, _ = desktop.show_image(_photo(tmp_path), "A photo", 140, 60)
    time.sleep(0.3)
    env = _with_faults(app_env(desktop, tmp_path, BLIP_ASSISTANT_LOG_LEVEL="INFO"), "slow-model")
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+d")
        time.sleep(0.8)  # captured and in the model (2 s more here)
        assert app.log_text().count("action describe-screen") == 1
        desktop.xdotool("key", "ctrl+alt+s")
        time.sleep(3.5)  # past the moment the model finished
        assert app.log_text().count("action stop") == 1
        assert not [u for u in app.utterances()[before:] if u["action"] == "describe-screen"]
        desktop.xdotool("key", "ctrl+alt+d")
        app.wait_said(lambda u: u["action"] == "describe-screen", 30, "the next description", after=before)
        app.check_alive()
        assert app.quit() == 0
    viewer.terminate()


def test_trigger_command_reaches_the_running_app(desktop, tmp_path: Path, tiny_models) -> None:
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"])) as app:
        before = len(app.utterances())
        result = app.trigger("describe-window")
        assert result.returncode == 0, result.stderr
        app.wait_said(lambda u: u["action"] == "describe-window", 30, "the window description", after=before)
        unknown = app.trigger("make-coffee")
        assert unknown.returncode != 0 and "unknown action" in unknown.stderr
        assert app.quit() == 0


def _flickr_test_photos(pattern: str, without: str, n: int) -> list[Path]:
    """The first ``n`` Flickr8k test photos whose five human captions all match ``pattern`` and none
    ``without``: chosen by what people said the photos show, not by what the model says."""
    import json
    import re

    from conftest import DATA_DIR

    dataset = DATA_DIR / "flickr8k" / "dataset_flickr8k.json"
    if not dataset.exists():
        pytest.skip(f"no Flickr8k at {dataset}")
    chosen = []
    for image in json.loads(dataset.read_text())["images"]:
        said = [s["raw"].lower() for s in image["sentences"]]
        if (image["split"] == "test" and all(re.search(pattern, s) for s in said)
                and not any(re.search(without, s) for s in said)):
            chosen.append(dataset.parent / "images" / image["filename"])
    return chosen[:n]


@pytest.mark.slow
def test_the_built_in_model_names_what_real_photos_show(desktop, tmp_path: Path) -> None:
    """Ctrl+Alt+D on real photos shown in a real window, the built-in model as a user runs it (#21 point 7):
    dogs are called dogs, the cat a cat, and no animal is invented for a photo of people only."""
    import re

    animal = r"\b(dogs?|cats?|horses?|birds?|cows?|sheep)\b"
    dogs = _flickr_test_photos(r"\bdogs?\b", r"\bcats?\b", 6)
    people = _flickr_test_photos(r"\b(man|woman|boy|girl|person|people|child|children)\b", animal, 4)
    cat = ROOT / "resources" / "images" / "chelsea.jpg"
    photos = [(p, "dog") for p in dogs] + [(p, None) for p in people] + [(cat, "cat")]
    heard: list[tuple[str | None, str]] = []
    with running_app(desktop, tmp_path) as app:
        for i, (photo, expected) in enumerate(photos):
            shown = tmp_path / f"photo{i}.png"
            Image.open(photo).convert("RGB").resize((900, 620)).save(shown)
            viewer, _ = desktop.show_image(shown, f"Photo {i}", 190, 90)
            time.sleep(0.4)  # openbox places the window late; an early capture would miss it
            before = len(app.utterances())
            desktop.xdotool("key", "ctrl+alt+d")
            said = app.wait_said(lambda u: u["action"] == "describe-screen", 60, "a description",
                                 after=before)
            heard.append((expected, said["text"].lower()))
            viewer.terminate()
            viewer.wait(5)
        assert app.quit() == 0
    print("\n".join(f"{expected or 'people'}: {text}" for expected, text in heard))
    named_dogs = sum("dog" in text for expected, text in heard if expected == "dog")
    assert named_dogs >= 4, heard  # the model says "dog" for all six photos read from their files
    assert "cat" in heard[-1][1]
    invented = [text for expected, text in heard if expected is None and re.search(animal, text)]
    assert not invented, invented
