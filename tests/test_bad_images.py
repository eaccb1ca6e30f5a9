"""Bad image files, opened, dropped and pasted: never an exception, never a hang, always a specific sentence.

The files come from tests/reliability/app_images.py (seeded, written to a temporary folder). Here: the
sentences themselves, a fast subset of the files through the app's own path (the Describer the worker
runs, the controller's sentence), drops and pastes through the real Controller, worker and result window
(offscreen, pytest-qt), and, marked slow, the whole 2,000-file run. The same files reach the real app on a
real X server in tests/test_bad_images_desktop.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from assistant.image_messages import KINDS, explain, sentence
from reliability_scripts import load as load_script

app_images = load_script("app_images")


# --- the sentences --------------------------------------------------------------------------------


def _png(size: tuple[int, int] = (64, 48)) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.effect_noise(size, 50).convert("RGB").save(buffer, "PNG")  # noise: most of the file is pixels
    return buffer.getvalue()


def _said(source: object) -> tuple[str, str]:
    """(kind, sentence) for ``source`` as the app's Describer and controller make them."""
    from assistant.vision.errors import ImageError
    from assistant.vision.io import load_image

    try:
        load_image(source)  # type: ignore[arg-type]
    except ImageError as exc:
        return explain(exc.code, str(exc), source).kind, sentence("x", exc.code, str(exc), source)
    raise AssertionError("it loaded")


def test_each_failure_says_what_the_file_is_and_what_is_wrong(tmp_path: Path) -> None:
    cut = tmp_path / "cut.png"
    cut.write_bytes(_png()[:2000])
    assert _said(str(cut)) == ("truncated", "Could not describe x: it is a truncated PNG file: it ends "
                                            "before the picture is complete.")
    misnamed = tmp_path / "photo.jpg"
    misnamed.write_bytes(_png()[:2000])
    assert "its name ends in .jpg, but it holds PNG data" in _said(str(misnamed))[1]
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    assert _said(str(empty)) == ("empty", "Could not describe x: the file is empty, 0 bytes.")
    assert _said(str(tmp_path / "gone.png"))[0] == "missing"
    assert _said(str(tmp_path)) == ("folder", "Could not describe x: it is a folder, not an image file.")
    letter = tmp_path / "letter.png"
    letter.write_text("Dear Sam,\nthe photos are attached.\n")
    assert _said(str(letter))[1] == "Could not describe x: it is a text file, not an image."
    assert _said(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj")[1] == ("Could not describe x: it is a PDF document "
                                                            "image, not a kind of picture I can open.")
    assert _said(b"\x00\x00\x01\x00\x01\x00\x10\x10" + bytes(40))[1].endswith(
        "it is an ICO icon image, not a kind of picture I can open.")
    # in memory (pasted, dropped from a browser) it is an "image", not a "file"
    assert _said(_png()[:2000])[1].startswith("Could not describe x: it is a truncated PNG image:")


def test_bombs_and_huge_images_are_too_large_not_an_error() -> None:
    bombs = app_images._script("bombs")
    kind, said = _said(bombs.png_bomb(50_000, 50_000))
    assert kind == "too-large"
    assert said == ("Could not describe x: the PNG image is too large: 2,500 million pixels, more than the "
                    "64 million pixels I can describe (it may be a decompression bomb).")
    kind, said = _said(bombs.jpeg_header_bomb(12_000, 12_000))
    assert said == ("Could not describe x: the JPEG image is too large: 12,000 by 12,000 pixels, more than "
                    "the 64 million pixels I can describe.")
    assert explain("image_too_large", "<bytes>: 70000000 bytes is more than the limit of 67108864").text == (
        "the file is too large (67 MB); I open files of up to 64 MB")


def test_kinds_are_a_closed_set() -> None:
    assert explain("something_new", "a new failure (ValueError)").kind == "other"
    assert explain("something_new", "a new failure (ValueError)").text == "a new failure"  # no Python names
    assert {"truncated", "damaged", "too-large", "empty", "missing", "folder"} <= KINDS


# --- files through the app's path -----------------------------------------------------------------


@pytest.fixture(scope="module")
def describer(tiny_models):  # type: ignore[no-untyped-def]
    from assistant.describe import Describer

    d = Describer(str(tiny_models["builtin"]), threads=1, personal=False)
    d.load()
    return d


def _check(cases, describer, routes) -> None:  # type: ignore[no-untyped-def]
    outcomes = app_images.run(cases, describer, routes)
    figures = app_images.summarize(cases, outcomes)
    print(app_images.report(figures, outcomes))
    assert not figures.problems, "\n".join(figures.problems[:20])
    assert figures.max_seconds < app_images.TIME_LIMIT_S


def test_fast_subset_every_kind_of_file(tmp_path: Path, describer) -> None:  # type: ignore[no-untyped-def]
    """Every Pillow format, every special case (bombs, 1x100000, 16-bit, CMYK, animated, EXIF, a folder, a
    file that disappears), and a few dozen truncated and fuzzed files: opened by path, the special ones also
    pasted as bytes. (The slow test below sends all 2,000 both ways.)"""
    cases = app_images.generate(tmp_path / "files", n=165, seed=3)
    families = {c.family for c in cases}
    assert families == {"format", "special", "truncated", "fuzzed"}, families
    _check([c for c in cases if c.family == "special"], describer, ("path", "bytes"))
    one_per_format = {c.kind.split()[0]: c for c in reversed(cases) if c.family == "format"}.values()
    damaged = [c for c in cases if c.family in ("truncated", "fuzzed")]
    _check([*one_per_format, *damaged], describer, ("path",))


@pytest.mark.slow
def test_two_thousand_files_opened_and_pasted(tmp_path: Path, describer) -> None:  # type: ignore[no-untyped-def]
    cases = app_images.generate(tmp_path / "files", n=2000, seed=0)
    assert len(cases) == 2000
    _check(cases, describer, ("path", "bytes"))


# --- drops and pastes through the real controller, worker and result window ----------------------


def test_dropped_and_pasted_images_get_specific_sentences(qtbot, tiny_models, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDragEnterEvent, QDropEvent, QGuiApplication
    from PySide6.QtWidgets import QApplication

    from assistant.app.controller import Controller
    from assistant.app.images import image_from_mime
    from assistant.app.result_window import ResultWindow
    from assistant.app.worker import VisionWorker
    from assistant.settings import Settings
    from test_app_widgets import RecordingSpeaker

    bombs = app_images._script("bombs")
    worker = VisionWorker(str(tiny_models["builtin"]))
    with qtbot.waitSignal(worker.ready, timeout=60_000):
        worker.start()
    speaker = RecordingSpeaker()
    settings = Settings(tmp_path / "settings.json")
    settings.update({"describe.read_text": False})  # captions only: the OCR path is tested elsewhere
    controller = Controller(settings, worker, speaker, capturer_factory=lambda: None,
                            clipboard_image=lambda: image_from_mime(QGuiApplication.clipboard().mimeData()))
    window = ResultWindow(ask=controller.ask_question, open_file=controller.open_file,
                          open_image=controller.open_image_data)

    def said_after(action, count: int) -> str:  # type: ignore[no-untyped-def]
        def answers() -> list[str]:
            return [t for t, a in speaker.said[count:] if a == action and "still loading" not in t]

        qtbot.waitUntil(lambda: bool(answers()), timeout=30_000)
        return answers()[0]

    def drop(mime: QMimeData) -> str:
        count = len(speaker.said)
        enter = QDragEnterEvent(window.rect().center(), Qt.DropAction.CopyAction, mime,
                                Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(window, enter)
        assert enter.isAccepted(), mime.formats()
        event = QDropEvent(QPointF(window.rect().center()), Qt.DropAction.CopyAction, mime,
                           Qt.MouseButton.LeftButton, Qt.KeyboardModifier.NoModifier)
        QApplication.sendEvent(window, event)
        return said_after("open-image", count)

    def image_mime(data: bytes, fmt: str = "image/png") -> QMimeData:
        mime = QMimeData()
        mime.setData(fmt, data)
        return mime

    try:
        cut = tmp_path / "holiday.png"
        cut.write_bytes(_png()[:2000])
        file_mime = QMimeData()
        file_mime.setUrls([QUrl.fromLocalFile(str(cut))])
        assert drop(file_mime) == ("Could not describe holiday.png: it is a truncated PNG file: it ends "
                                   "before the picture is complete.")
        assert drop(image_mime(_png()[:2000])).startswith(
            "Could not describe dropped image: it is a truncated PNG image")
        assert "too large" in drop(image_mime(bombs.png_bomb(50_000, 50_000)))
        good = drop(image_mime(_png((64, 48))))
        assert not good.startswith("Could not"), good

        # pasted: the clipboard holds the encoded bytes, as a browser's "Copy image" leaves them
        for data, expected in ((b"\x89PNG\r\n\x1a\n" + bytes(30), "damaged PNG image"),
                               (b"", "the image is empty"),
                               (bombs.gif_canvas_bomb(65_535, 65_535), "too large")):
            QGuiApplication.clipboard().setMimeData(image_mime(data, "image/gif" if data[:3] == b"GIF"
                                                               else "image/png"))
            count = len(speaker.said)
            controller.run_action("describe-clipboard", [])
            text = said_after("describe-clipboard", count)
            assert text.startswith("Could not describe clipboard image: ") and expected in text, text
        QGuiApplication.clipboard().setMimeData(image_mime(_png((64, 48))))
        count = len(speaker.said)
        controller.run_action("describe-clipboard", [])
        assert not said_after("describe-clipboard", count).startswith("Could not")
        from assistant.history_store import thumbnail_bytes

        assert isinstance(controller.last.image, bytes)  # kept encoded, in memory...
        assert thumbnail_bytes(controller.last.image)  # ...and the history still gets its small copy
        QGuiApplication.clipboard().clear()
        controller.run_action("describe-clipboard", [])
        assert speaker.said[-1][0] == "There is no image on the clipboard."
    finally:
        worker.close()
