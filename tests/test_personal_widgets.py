"""Correcting a caption in the result window and the corrections window, by keyboard (offscreen Qt, real
SQLite store in a temporary BLIP_ASSISTANT_HOME)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("pytestqt")

from PySide6.QtCore import QObject, Qt, Signal


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_f2_corrects_the_last_caption_enter_saves_escape_cancels(qtbot) -> None:
    from assistant.app.result_window import ResultWindow

    saved: list[str] = []
    window = ResultWindow(ask=lambda q: None, last_caption=lambda: "a dog lying on a couch",
                          save_correction=saved.append)
    qtbot.addWidget(window)
    window.show_for("text")
    qtbot.waitExposed(window)
    qtbot.keyClick(window.transcript, Qt.Key.Key_F2)
    assert window.correction.isVisible() and window.focusWidget() is window.correction
    assert window.correction.text() == "a dog lying on a couch"
    assert window.correction.accessibleName() == "Your caption for the last image"
    qtbot.keyClicks(window.correction, "Biscuit, my guide dog, on the blue sofa")  # replaces the selection
    qtbot.keyClick(window.correction, Qt.Key.Key_Return)
    assert saved == ["Biscuit, my guide dog, on the blue sofa"]
    assert not window.correction.isVisible() and window.isVisible()

    qtbot.keyClick(window.transcript, Qt.Key.Key_F2)
    qtbot.keyClicks(window.correction, "never saved")
    qtbot.keyClick(window.correction, Qt.Key.Key_Escape)
    assert saved == ["Biscuit, my guide dog, on the blue sofa"]
    assert not window.correction.isVisible() and window.isVisible()  # Escape cancelled, did not close


def test_nothing_to_correct_is_said(qtbot) -> None:
    from assistant.app.result_window import ResultWindow

    saved: list[str] = []
    window = ResultWindow(ask=lambda q: None, last_caption=lambda: None, save_correction=saved.append)
    qtbot.addWidget(window)
    window.show_for("text")
    qtbot.keyClick(window.transcript, Qt.Key.Key_F2)
    assert not window.correction.isVisible() and "no caption to correct" in window.transcript.toPlainText()


class _FakeController(QObject):
    """Just what PersonalActions reads from the controller (a unit test; the app wires the real one)."""

    status = Signal(str)

    def __init__(self, last) -> None:
        super().__init__()
        self._last = last
        self.said: list[str] = []
        self.worker = type("W", (), {"model_name": "builtin"})()

    def last_image(self):
        return self._last

    def say(self, text: str, action, **_kw) -> None:
        self.said.append(text)


def test_a_correction_is_stored_and_the_window_lists_exports_imports_deletes(qtbot, home: Path,
                                                                              tmp_path: Path) -> None:
    from assistant.app.controller import Result
    from assistant.app.corrections_window import CorrectionsWindow
    from assistant.app.personal_actions import PersonalActions
    from assistant.personal.corrections import CorrectionStore

    image = Image.effect_noise((120, 80), 50).convert("RGB")
    controller = _FakeController(Result(text="A dog.", action="describe-screen", label="screen", at=0.0,
                                        image=image, caption="a dog"))
    actions = PersonalActions(controller)
    assert actions.last_caption() == "a dog"
    actions.save_correction("Biscuit asleep")
    actions.save_correction("Biscuit awake")
    assert controller.said[-1].startswith("Correction saved. 2 corrections so far")
    actions.personalize()  # too few: said, and no process started
    assert "needs at least 5" in controller.said[-1] and not actions.job.running

    said: list[str] = []
    window = CorrectionsWindow(said.append, lambda: None, lambda: None,
                               ask_file=lambda title, save: str(tmp_path / "out.csv"), confirm=lambda q: True)
    qtbot.addWidget(window)
    window.show_now()
    qtbot.waitExposed(window)
    assert window.list.count() == 2 and "Biscuit asleep" in window.list.item(0).text()
    assert "(was: a dog;" in window.list.item(0).text()
    qtbot.keyClick(window.list, Qt.Key.Key_Delete)
    assert window.list.count() == 1 and said[-1] == "Correction deleted."
    window.buttons["export"].click()
    assert (tmp_path / "out.csv").is_file() and said[-1].startswith("1 corrections exported")
    window.buttons["delete-all"].click()
    assert window.list.count() == 0
    window.buttons["import"].click()
    assert window.list.count() == 1 and said[-1] == "1 corrections imported."
    with CorrectionStore() as store:
        assert [c.caption for c in store.list()] == ["Biscuit awake"]
    window.set_progress("Learning your words: step 3 of 60.", True)
    assert window.buttons["stop"].isEnabled() and not window.buttons["personalize"].isEnabled()
