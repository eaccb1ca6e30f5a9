"""Reading text in the app (offscreen): the read-text action speaks paragraphs and moves by line, a
screen description says its caption first and the text after it, and questions about the text are
answered from the text. Real OCR (Tesseract) and the real worker; speech is recorded."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")
if shutil.which("tesseract") is None:
    pytest.skip("tesseract-ocr is not installed", allow_module_level=True)

from PIL import Image

from assistant.app.reading import Reading
from assistant.app.worker import VisionWorker
from assistant.settings import Settings

sys.path.insert(0, str(Path(__file__).parent))
from ocr_text import render

SCREEN_TEXT = [["Weather in Berlin"], ["Today 12 degrees and light rain,", "tomorrow sunny."], ["Close"]]


class RecordingSpeaker:
    """Unit-test stand-in for assistant.speech.Speaker (the real one speaks in tests/test_app_desktop and
    tests/test_app_read_desktop): it records what it was asked to say, and how."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str | None, bool]] = []
        self.stops = 0
        self.busy = False

    def say(self, text: str, action: str | None = None, interrupt: bool = True,
            requested_at: float | None = None) -> None:
        self.said.append((text, action, interrupt))

    def stop(self) -> None:
        self.stops += 1

    def close(self, timeout: float = 2.0) -> bool:
        return True


class TextCapturer:
    def __init__(self, image: Image.Image) -> None:
        self.image = image
        self.sizes: list[Any] = []
        self.grabs = 0
        self.screen_scale = 1  # >1: the screen is that much larger than the image a grab gives back

    def _capture(self, kind: str, title: str | None = None, app: str | None = None) -> Any:
        from assistant.capture import Capture, Rect

        self.grabs += 1
        width, height = (side * self.screen_scale for side in self.image.size)
        return Capture(image=self.image, rect=Rect(0, 0, width, height), kind=kind, window_title=title,
                       app_name=app)

    def screen(self) -> Any:
        return self._capture("screen")

    def window(self) -> Any:
        return self._capture("window", "Weather - Berlin", "firefox")

    def pointer_area(self) -> Any:
        return self._capture("pointer area")

    def region(self, rect: Any) -> Any:
        return self._capture("region")

    def active_window_info(self) -> Any:
        from assistant.capture import Rect, WindowInfo

        return WindowInfo(title="Weather - Berlin", app="firefox", rect=Rect(0, 0, 10, 10))

    def close(self) -> None:
        pass


@pytest.fixture()
def worker(qtbot, tiny_models):
    w = VisionWorker(str(tiny_models["builtin"]))
    with qtbot.waitSignal(w.ready, timeout=60_000):
        w.start()
    yield w
    w.close()


@pytest.fixture()
def controller(worker, tmp_path: Path):
    from assistant.app.controller import Controller

    capturer = TextCapturer(render(SCREEN_TEXT, 15, width=700))
    c = Controller(Settings(tmp_path / "settings.json"), worker, RecordingSpeaker(),
                   capturer_factory=lambda **sizes: capturer)
    yield c
    c.close()


def _said(controller: Any, action: str) -> list[tuple[str, bool]]:
    return [(text, interrupt) for text, a, interrupt in controller.speaker.said if a == action]


def test_read_text_speaks_paragraphs_then_moves_by_line(qtbot, controller) -> None:
    controller.run_action("read-text", [])
    qtbot.waitUntil(lambda: len(_said(controller, "read-text")) >= 3, timeout=30_000)
    assert _said(controller, "read-text") == [("Weather in Berlin.", True),
                                              ("Today 12 degrees and light rain, tomorrow sunny.", False),
                                              ("Close.", False)]
    assert controller.last.text == ("Weather in Berlin\n\nToday 12 degrees and light rain,\ntomorrow sunny."
                                    "\n\nClose")
    controller.speaker.said.clear()
    for action in ("reading-next-line", "reading-next-line", "reading-previous-paragraph",
                   "reading-next-paragraph", "reading-next-paragraph", "reading-next-paragraph"):
        controller.run_action(action, [])
    assert [t for t, _ in _said(controller, "read-text")] == [
        "Today 12 degrees and light rain,", "tomorrow sunny.",
        "Today 12 degrees and light rain, tomorrow sunny.", "Close", "End of text.", "End of text."]
    controller.speaker.said.clear()
    controller.run_action("reading-pause", [])  # after moving: goes on from the cursor
    assert _said(controller, "read-text") == [("Close.", True)]
    controller.ask_question("Does it say sunny?")  # read text can be asked about, with no image kept
    assert _said(controller, "ask") == [("Yes: Today 12 degrees and light rain, tomorrow sunny.", True)]


def test_describe_says_where_and_caption_first_then_the_text(qtbot, controller) -> None:
    controller.run_action("describe-screen", [])
    qtbot.waitUntil(lambda: len(_said(controller, "describe-screen")) >= 2, timeout=60_000)
    (first, cut), (second, queued) = _said(controller, "describe-screen")
    where = "Firefox, 'Weather - Berlin'. "
    assert first.startswith(where) and len(first) > len(where)
    assert cut and not queued  # the text is queued after the caption, never cutting it off
    assert second == "Text: 'Weather in Berlin; Today 12 degrees and light rain, tomorrow sunny; Close'."
    assert controller.last.text == f"{first} {second}"  # Repeat says both


@pytest.mark.parametrize("scale", [1, 2], ids=["full size", "downscaled"])
def test_a_second_grab_for_the_text_only_when_the_caption_s_capture_was_downscaled(qtbot, controller,
                                                                                 scale: int) -> None:
    """A full-size capture already holds the text's pixels: grabbing again would run beside the model."""
    capturer = controller._capturer_factory()
    capturer.screen_scale = scale
    controller.run_action("describe-screen", [])
    qtbot.waitUntil(lambda: len(_said(controller, "describe-screen")) >= 2, timeout=60_000)
    assert capturer.grabs == (1 if scale == 1 else 2)
    assert _said(controller, "describe-screen")[1][0].startswith("Text: 'Weather in Berlin")


def test_an_opened_image_is_described_with_its_text(qtbot, controller, tmp_path: Path) -> None:
    letter = tmp_path / "letter.png"
    render([["Dear Anna,"], ["the keys are under the mat."]], 18).save(letter)
    controller.run_action("open-image", [str(letter)])
    qtbot.waitUntil(lambda: len(_said(controller, "open-image")) >= 2, timeout=60_000)
    (caption, _), (text, queued) = _said(controller, "open-image")
    assert not caption.startswith("Text") and not queued
    assert text == "Text: 'Dear Anna; the keys are under the mat'."


def test_questions_about_the_text_are_answered_from_it(qtbot, controller) -> None:
    submitted: list[Any] = []
    controller.run_action("describe-window", [])
    qtbot.waitUntil(lambda: len(_said(controller, "describe-window")) >= 2, timeout=60_000)
    controller.worker.submit = submitted.append  # the captioner must not be asked
    controller.ask_question("What's the title?")
    controller.ask_question("what does it say?")
    answers = [t for t, _ in _said(controller, "ask")]
    assert answers == ["The title seems to be: Weather in Berlin.",
                       "Weather in Berlin. Today 12 degrees and light rain, tomorrow sunny. Close."]
    assert submitted == []


def test_pause_stops_and_resume_goes_on_from_the_paragraph_being_read() -> None:
    speaker = RecordingSpeaker()
    reading = Reading(speaker)
    reading.start([["one"], ["two a", "two b"], ["three"]])
    speaker.busy = True
    reading.speech_event("started", "one.", "read-text")
    reading.speech_event("finished", "one.", "read-text")
    reading.speech_event("started", "two a two b.", "read-text")
    speaker.said.clear()
    reading.pause_or_resume()
    assert speaker.stops == 1 and speaker.said == []
    speaker.busy = False
    reading.pause_or_resume()
    assert speaker.said == [("two a two b.", "read-text", True), ("three.", "read-text", False)]


def test_the_results_window_keys_move_through_the_text(qtbot) -> None:
    from PySide6.QtCore import Qt

    from assistant import actions
    from assistant.app.result_window import READING_KEYS, ResultWindow

    ran: list[str] = []
    window = ResultWindow(ask=lambda _q: None, run=ran.append)
    qtbot.addWidget(window)
    window.show_for("text")
    qtbot.waitExposed(window)
    qtbot.waitUntil(window.isActiveWindow, timeout=5_000)  # window shortcuts need the active window
    alt = Qt.KeyboardModifier.AltModifier
    for key in (Qt.Key.Key_Down, Qt.Key.Key_Up, Qt.Key.Key_PageDown, Qt.Key.Key_PageUp, Qt.Key.Key_Home):
        qtbot.keyClick(window.transcript, key, alt)
    assert ran == ["reading-next-line", "reading-previous-line", "reading-next-paragraph",
                   "reading-previous-paragraph", "reading-pause"]
    for action_id, key in READING_KEYS.items():  # the guide names the same keys
        spoken = key.replace("PgDown", "Page Down").replace("PgUp", "Page Up")
        assert spoken in actions.get(action_id).description
