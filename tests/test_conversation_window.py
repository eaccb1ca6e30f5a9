"""Asking about an image in the app (offscreen, pytest-qt, the tiny built-in checkpoint): the question field
and its history, the transcript, Escape, drag and drop, next/previous through a folder, and follow-ups that
reuse the image's vision features in the worker."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PIL import Image
from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage

from assistant.app.worker import VisionWorker
from assistant.settings import Settings
from test_app_widgets import RecordingSpeaker, StillCapturer


@pytest.fixture()
def worker(qtbot, tiny_models):
    w = VisionWorker(str(tiny_models["builtin"]))
    with qtbot.waitSignal(w.ready, timeout=60_000):
        w.start()
    yield w
    w.close()


def _controller(worker: VisionWorker, tmp_path: Path, image: Image.Image | None = None) -> Any:
    from assistant.app.controller import Controller

    image = image or Image.effect_noise((64, 48), 60).convert("RGB")
    return Controller(Settings(tmp_path / "settings.json"), worker, RecordingSpeaker(),
                      capturer_factory=lambda: StillCapturer(image))


def _said(controller: Any, action: str, qtbot, after: int) -> str:
    qtbot.waitUntil(lambda: any(a == action for _, a in controller.speaker.said[after:]), timeout=30_000)
    return next(t for t, a in controller.speaker.said[after:] if a == action)


def test_typing_questions_enter_history_and_escape(qtbot) -> None:
    from assistant.app.result_window import ResultWindow

    asked: list[str] = []
    window = ResultWindow(ask=asked.append)
    qtbot.addWidget(window)
    window.show_for("question")
    qtbot.waitExposed(window)
    for question in ("is there a dog", "what colour is the car"):
        qtbot.keyClicks(window.question, question)
        qtbot.keyClick(window.question, Qt.Key.Key_Return)
    assert asked == ["is there a dog", "what colour is the car"]
    window.add("Yes.", "Answer")
    lines = window.transcript.toPlainText().splitlines()
    assert lines == ["You asked: is there a dog", "You asked: what colour is the car", "Answer: Yes."]
    qtbot.keyClicks(window.question, "half typ")
    qtbot.keyClick(window.question, Qt.Key.Key_Up)
    assert window.question.text() == "what colour is the car"
    qtbot.keyClick(window.question, Qt.Key.Key_Up)
    qtbot.keyClick(window.question, Qt.Key.Key_Up)  # stays on the oldest
    assert window.question.text() == "is there a dog"
    qtbot.keyClick(window.question, Qt.Key.Key_Down)
    qtbot.keyClick(window.question, Qt.Key.Key_Down)
    assert window.question.text() == "half typ"  # the draft comes back
    qtbot.keyClick(window.question, Qt.Key.Key_Up)
    qtbot.keyClick(window.question, Qt.Key.Key_Return)
    assert asked[-1] == "what colour is the car"
    qtbot.keyClick(window.question, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: not window.isVisible(), timeout=2_000)


def _drop(window: Any, mime: QMimeData) -> QDropEvent:
    event = QDropEvent(QPointF(10, 10), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    return event


def test_a_dropped_file_or_image_is_described(qtbot, worker, tmp_path: Path) -> None:
    from assistant.app.result_window import ResultWindow

    controller = _controller(worker, tmp_path)
    window = ResultWindow(ask=controller.ask_question, open_file=controller.open_file,
                          open_image=controller.open_image_data)
    qtbot.addWidget(window)
    assert window.acceptDrops()
    photo = tmp_path / "holiday photo.png"
    Image.effect_noise((80, 60), 40).convert("RGB").save(photo)
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(photo))])
    assert _drop(window, mime).isAccepted()
    text = _said(controller, "open-image", qtbot, 0)
    assert text.endswith(".") and "Could not" not in text
    assert controller.last.label == "holiday photo.png"
    before = len(controller.speaker.said)
    picture = QImage(40, 30, QImage.Format.Format_RGB888)
    picture.fill(Qt.GlobalColor.darkGreen)
    mime = QMimeData()
    mime.setImageData(picture)
    _drop(window, mime)
    text = _said(controller, "open-image", qtbot, before)
    assert "single colour (dark green)" in text  # the dropped picture itself was looked at: it is flat green


def test_next_and_previous_go_through_the_folder(qtbot, worker, tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(("photo 1.png", "photo 2.jpg", "photo 10.webp")):
        Image.effect_noise((64, 48), 30 + 10 * i).convert("RGB").save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    (folder / "photo 3.gif").write_bytes(b"GIF89a broken")
    controller = _controller(worker, tmp_path)
    controller.run_action("next-image", [])
    assert "Open an image first" in controller.speaker.said[-1][0]
    controller.run_action("open-image", [str(folder / "photo 1.png")])
    _said(controller, "open-image", qtbot, 0)
    before = len(controller.speaker.said)
    controller.run_action("next-image", [])
    assert _said(controller, "next-image", qtbot, before).startswith("photo 2.jpg, 2 of 4: ")
    before = len(controller.speaker.said)
    controller.run_action("next-image", [])  # unreadable: said, by name, and the walk goes on
    text = _said(controller, "next-image", qtbot, before)
    assert text.startswith("Could not describe photo 3.gif, 3 of 4: ") and "Traceback" not in text
    assert str(folder) not in text  # the file is named once, by its name
    before = len(controller.speaker.said)
    controller.run_action("next-image", [])
    assert _said(controller, "next-image", qtbot, before).startswith("photo 10.webp, 4 of 4: ")
    controller.run_action("next-image", [])
    assert controller.speaker.said[-1] == ("photo 10.webp is the last of the 4 images in its folder.",
                                           "next-image")
    before = len(controller.speaker.said)
    controller.run_action("previous-image", [])
    assert _said(controller, "previous-image", qtbot, before).startswith("Could not describe photo 3.gif")


def test_follow_up_questions_run_only_the_text_side(qtbot, worker, tmp_path: Path) -> None:
    calls: list[int] = []
    worker.describer.load().checkpoint.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    controller = _controller(worker, tmp_path)
    controller.run_action("describe-screen", [])
    _said(controller, "describe-screen", qtbot, 0)
    assert len(calls) == 1
    for question in ("um, is there a dog in this picture", "is it a cat or a dog", "how many people"):
        before = len(controller.speaker.said)
        controller.ask_question(question)
        answer = _said(controller, "ask", qtbot, before)
        assert answer and answer[0].isupper() and answer.endswith(".")
    assert len(calls) == 1, "a follow-up question ran the vision encoder again"
    before = len(controller.speaker.said)
    controller.ask_question("describe it")  # a longer description, from the same features
    assert _said(controller, "ask", qtbot, before)
    assert len(calls) == 1
