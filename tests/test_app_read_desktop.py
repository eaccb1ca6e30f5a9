"""Reading text end to end, as a user meets it: a real window showing text on Xvfb, a real key press
(xdotool) on the read-text hotkey, real OCR (Tesseract) of a real capture, and real speech into WAV
files; then a screen description that says its caption first and the text after it."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from desktop import running_app, sox_seconds, start_tray_host
from ocr_text import character_accuracy, render
from xserver import require, xvfb

pytestmark = pytest.mark.desktop

SHOWN = [["Meeting moved to Thursday"], ["The budget review starts at 10:30 in room 4.",
                                          "Please bring the printed figures."]]


@pytest.fixture(scope="module")
def desktop():
    require("Xvfb", "openbox", "xdotool", "espeak-ng")
    if shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is not installed")
    with xvfb(1280, 800, wm=True) as server:
        start_tray_host(server)
        yield server


def test_read_text_hotkey_speaks_the_text_in_the_window(desktop, tmp_path: Path, tiny_models) -> None:
    page = tmp_path / "note.png"
    render(SHOWN, 15, width=640).save(page)
    viewer, window = desktop.show_image(page, "Note", 120, 80)
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"])) as app:
        desktop.xdotool("windowactivate", "--sync", str(window))
        time.sleep(0.3)  # openbox places the window late; an early capture would miss it
        before = len(app.utterances())
        pressed = time.time()
        desktop.xdotool("key", "ctrl+alt+x")
        first = app.wait_said(lambda u: u["action"] == "read-text", 60, "the first paragraph", after=before)
        second = app.wait_said(lambda u: u["action"] == "read-text" and u["started_at"] > first["started_at"],
                               30, "the second paragraph", after=before)
        assert character_accuracy("Meeting moved to Thursday.", first["text"]) >= 0.95, first["text"]
        expected = "The budget review starts at 10:30 in room 4. Please bring the printed figures."
        assert character_accuracy(expected, second["text"]) >= 0.95, second["text"]
        assert first["started_at"] - pressed < 20
        wav = next(e for e in app.wav_index() if e["text"] == second["text"])
        words = len(second["text"].split())
        assert 0.15 * words < sox_seconds(app.wav_dir / wav["file"]) < 1.2 * words + 1  # real speech

        # Moving back a paragraph says the first paragraph again (a trigger: the same registry action
        # the results window's Alt+Page Up runs).
        before = len(app.utterances())
        assert app.trigger("reading-previous-paragraph").returncode == 0
        again = app.wait_said(lambda u: u["action"] == "read-text", 30, "the previous paragraph",
                              after=before)
        assert character_accuracy("Meeting moved to Thursday", again["text"]) >= 0.95

        # Describing the screen: the window and the caption first, then the text, queued behind it.
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+d")
        caption = app.wait_said(lambda u: u["action"] == "describe-screen", 60, "the caption", after=before)
        text = app.wait_said(lambda u: u["action"] == "describe-screen" and u["text"].startswith("Text: '"),
                             60, "the text part", after=before)
        assert not caption["text"].startswith("Text:") and "Note" in caption["text"]
        assert text["started_at"] >= caption["started_at"]
        assert "Meeting moved to Thursday" in text["text"]
        viewer.terminate()
        assert app.quit() == 0
