"""The app's Qt side without a desktop (offscreen): the worker keeps the event loop free, the controller
handles every action of the registry, and every window is named and reachable by Tab."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PIL import Image
from PySide6.QtCore import QElapsedTimer, QTimer
from PySide6.QtWidgets import QWidget

from assistant import actions
from assistant.app.worker import Request, VisionWorker
from assistant.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


class RecordingSpeaker:
    """Unit-test stand-in for assistant.speech.Speaker (the real one is tested in test_speech_output and
    end to end in test_app_desktop): it records what it was asked to say."""

    def __init__(self) -> None:
        self.said: list[tuple[str, str | None]] = []
        self.stops = 0

    def say(self, text: str, action: str | None = None, interrupt: bool = True,
            requested_at: float | None = None) -> None:
        self.said.append((text, action))

    def stop(self) -> None:
        self.stops += 1

    def close(self, timeout: float = 2.0) -> bool:
        return True


class StillCapturer:
    """Unit-test stand-in for assistant.capture.Capturer: a fixed picture per kind."""

    def __init__(self, image: Image.Image) -> None:
        self.image = image

    def _capture(self, kind: str) -> Any:
        from assistant.capture import Capture, Rect, blank_reason

        return Capture(image=self.image, rect=Rect(0, 0, *self.image.size), kind=kind,
                       blank=blank_reason(self.image))

    def screen(self) -> Any:
        return self._capture("screen")

    def window(self) -> Any:
        return self._capture("window")

    def pointer_area(self) -> Any:
        return self._capture("pointer area")

    def region(self, rect: Any) -> Any:
        return self._capture("region")

    def close(self) -> None:
        pass


@pytest.fixture()
def worker(qtbot, tiny_models):
    w = VisionWorker(str(tiny_models["builtin"]))
    with qtbot.waitSignal(w.ready, timeout=60_000):
        w.start()
    yield w
    w.close()


def _controller(worker: VisionWorker, tmp_path: Path, image: Image.Image) -> Any:
    from assistant.app.controller import Controller

    return Controller(Settings(tmp_path / "settings.json"), worker, RecordingSpeaker(),
                      capturer_factory=lambda: StillCapturer(image))


def test_event_loop_stays_responsive_while_the_model_runs(qtbot) -> None:
    """The built-in model captions in the worker while a 10 ms timer keeps ticking on the GUI thread."""
    w = VisionWorker("builtin")
    with qtbot.waitSignal(w.ready, timeout=120_000):
        w.start()
    ticks: list[int] = []
    clock = QElapsedTimer()
    clock.start()
    timer = QTimer()
    timer.timeout.connect(lambda: ticks.append(clock.elapsed()))
    timer.start(10)
    photo = Image.open(ROOT / "resources" / "images" / "astronaut.jpg").convert("RGB")
    try:
        with qtbot.waitSignal(w.described, timeout=60_000) as blocker:
            for _ in range(3):  # superseded twice: the last one is answered
                w.submit(Request(image=photo, label="astronaut"))
        assert blocker.args[1].ok and blocker.args[1].caption
        busy_ms = clock.elapsed()
    finally:
        timer.stop()
        w.close()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert busy_ms > 100 and gaps, busy_ms  # the model really worked for a while
    assert max(gaps) < 150, max(gaps)  # the GUI thread was never held up by the caption


def test_newer_requests_supersede_older_ones(qtbot, worker, tmp_path: Path) -> None:
    image = Image.effect_noise((64, 48), 60).convert("RGB")
    answered: list[int] = []
    dropped: list[int] = []
    worker.described.connect(lambda rid, _d: answered.append(rid))
    worker.superseded.connect(dropped.append)
    ids = [worker.submit(Request(image=image, label=f"n{i}")) for i in range(5)]
    qtbot.waitUntil(lambda: ids[-1] in answered, timeout=30_000)
    qtbot.wait(200)
    assert answered[-1] == ids[-1]
    assert set(answered) | set(dropped) == set(ids)  # every request answered or dropped, none lost
    assert len(answered) <= 2


def test_every_registry_action_is_handled(qtbot, worker, tmp_path: Path) -> None:
    image = Image.effect_noise((64, 48), 60).convert("RGB")
    controller = _controller(worker, tmp_path, image)
    windows: list[str] = []
    controller.windowRequested.connect(windows.append)
    quits: list[bool] = []
    controller.quitRequested.connect(lambda: quits.append(True))
    for action in actions.ACTIONS:
        controller.run_action(action.id, [])
    controller.run_action("describe-pointer", [])  # "stop" in the loop dropped the descriptions before it
    qtbot.waitUntil(lambda: any(a == "describe-pointer" for _, a in controller.speaker.said), timeout=30_000)
    assert set(windows) == {"ask", "history", "settings", "guide", "corrections", "about",
                            "delete-data"} and quits == [True]
    assert controller.speaker.stops == 1
    assert not any("did not work" in text for text, _ in controller.speaker.said)


def test_stop_drops_the_description_being_worked_out(qtbot, worker, tmp_path: Path) -> None:
    """Stop while the model runs: the answer, when the model is done, is not said; the next press is."""
    import time

    describe = worker.describer.describe

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(0.8)
        return describe(*args, **kwargs)

    worker.describer.describe = slow
    controller = _controller(worker, tmp_path, Image.effect_noise((64, 48), 60).convert("RGB"))
    dropped: list[int] = []
    worker.superseded.connect(dropped.append)
    controller.run_action("describe-screen", [])
    qtbot.waitUntil(lambda: worker.busy and worker._running is not None, timeout=5_000)
    controller.run_action("stop", [])
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    qtbot.wait(100)
    assert len(dropped) == 1 and controller.speaker.stops == 1
    assert not [text for text, action in controller.speaker.said if action == "describe-screen"]
    assert controller.last is None  # nothing of it kept either: the user stopped it
    # waiting, not yet started: dropped at once too
    controller.run_action("describe-screen", [])
    controller.run_action("describe-window", [])
    controller.run_action("stop", [])
    qtbot.waitUntil(lambda: not worker.busy, timeout=10_000)
    qtbot.wait(100)
    assert not [text for text, action in controller.speaker.said if (action or "").startswith("describe-")]
    worker.describer.describe = describe
    with qtbot.waitSignal(worker.described, timeout=30_000):
        controller.run_action("describe-screen", [])
    qtbot.waitUntil(lambda: any(a == "describe-screen" for _, a in controller.speaker.said), timeout=5_000)


def test_a_newer_request_ends_the_running_one_between_tokens(qtbot, worker) -> None:
    """Decoding steps slowed to 60 ms (a large model's pace): the second press does not wait for the
    first description to finish; the first is ended at its next step and never answered."""
    import time

    from assistant.vision.errors import Interrupted

    describe = worker.describer.describe
    outcomes: list[str] = []

    def slow_steps(*args: Any, should_stop: Any = None, **kwargs: Any) -> Any:
        def slower() -> bool:
            time.sleep(0.06)
            return should_stop()
        try:
            result = describe(*args, should_stop=slower, **kwargs)
        except Interrupted:
            outcomes.append("ended")
            raise
        outcomes.append("done")
        return result

    worker.describer.describe = slow_steps
    answered: list[int] = []
    dropped: list[int] = []
    worker.described.connect(lambda rid, _d: answered.append(rid))
    worker.superseded.connect(dropped.append)
    image = Image.effect_noise((64, 48), 60).convert("RGB")
    first = worker.submit(Request(image=image, label="first", detail="detailed"))
    qtbot.waitUntil(lambda: worker._running is not None, timeout=5_000)
    qtbot.wait(150)  # in its decoding
    pressed = time.perf_counter()
    second = worker.submit(Request(image=image, label="second"))
    qtbot.waitUntil(lambda: second in answered, timeout=30_000)
    assert outcomes[0] == "ended" and outcomes[-1] == "done"
    assert dropped == [first] and answered == [second]
    # the first stopped within a step: the second took about its own time, not the rest of the first
    assert time.perf_counter() - pressed < 0.06 * 40, time.perf_counter() - pressed
    worker.describer.describe = describe


def test_blank_capture_is_said_without_the_model(qtbot, worker, tmp_path: Path) -> None:
    controller = _controller(worker, tmp_path, Image.new("RGB", (800, 600)))
    submitted: list[Any] = []
    worker.submit = submitted.append  # type: ignore[method-assign]
    controller.run_action("describe-screen", [])
    assert "completely black" in controller.speaker.said[-1][0]
    assert submitted == []


def test_a_capture_is_checked_for_blankness_once(qtbot, worker, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The capture was found not blank when it was taken; the worker does not check it again (15-25 ms of
    every key press), while an opened image is checked there."""
    from assistant.capture import blank

    real, checked = blank.blank_reason, []

    def counted(image: Any, **kw: Any) -> Any:
        checked.append(image.size)
        return real(image, **kw)

    monkeypatch.setattr(blank, "blank_reason", counted)
    noise = Image.effect_noise((64, 48), 60).convert("RGB")
    controller = _controller(worker, tmp_path, noise)  # its capturer's check is its own, not counted
    with qtbot.waitSignal(worker.described, timeout=30_000):
        controller.run_action("describe-screen", [])
    assert checked == []
    with qtbot.waitSignal(worker.described, timeout=30_000):
        controller.open_image_data(noise.copy(), "a photo")
    assert checked == [(64, 48)]


def test_a_description_captures_at_twice_the_side_the_model_reads(qtbot, worker, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.app.controller import CAPTURE_MAX_SIDE, CAPTURE_MIN_SIDE, Controller
    from assistant.describe import Describer

    class SizedCapturer(StillCapturer):
        max_side = CAPTURE_MAX_SIDE

        def _capture(self, kind: str) -> Any:
            sides.append(self.max_side)
            return super()._capture(kind)

    sides: list[int] = []
    capturer = SizedCapturer(Image.effect_noise((64, 48), 60).convert("RGB"))
    controller = Controller(Settings(tmp_path / "settings.json"), worker, RecordingSpeaker(),
                            capturer_factory=lambda: capturer)
    for side in (worker.describer.picture_side, 224, 384, 512):
        monkeypatch.setattr(Describer, "picture_side", side)
        with qtbot.waitSignal(worker.described, timeout=30_000):
            controller.run_action("describe-window", [])
    # the tiny test model reads 96 px: the smallest capture; the built-in model 224; Salesforce BLIP 384
    assert sides == [CAPTURE_MIN_SIDE, 448, 768, CAPTURE_MAX_SIDE]


def test_ask_answers_about_the_last_image(qtbot, worker, tmp_path: Path) -> None:
    controller = _controller(worker, tmp_path, Image.effect_noise((64, 48), 60).convert("RGB"))
    controller.ask_question("is there a dog?")
    assert "describe something first" in controller.speaker.said[-1][0]
    controller.run_action("describe-screen", [])
    qtbot.waitUntil(lambda: controller.last is not None and controller.last.image is not None, timeout=30_000)
    controller.ask_question("is there a dog?")
    qtbot.waitUntil(lambda: controller.speaker.said[-1][1] == "ask", timeout=30_000)
    assert controller.speaker.said[-1][0]


def test_an_unreadable_file_is_said_specifically(qtbot, worker, tmp_path: Path) -> None:
    controller = _controller(worker, tmp_path, Image.new("RGB", (8, 8)))
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    controller.run_action("open-image", [str(bad)])
    qtbot.waitUntil(lambda: bool(controller.speaker.said) and controller.speaker.said[-1][1] == "open-image",
                    timeout=30_000)
    text = controller.speaker.said[-1][0]
    assert text.startswith("Could not describe holiday.jpg") and "Traceback" not in text


def _walk_tab(window: QWidget, qtbot) -> list[QWidget]:
    """The widgets Tab reaches, in order: Qt's focus chain, keeping what takes focus by Tab."""
    from PySide6.QtCore import Qt

    window.show()
    qtbot.waitExposed(window)
    seen: list[QWidget] = []
    widget = window.nextInFocusChain()
    while widget is not window and widget not in seen:
        if (widget.focusPolicy() & Qt.FocusPolicy.TabFocus) and widget.isVisibleTo(window) \
                and widget.isEnabled() and widget.window() is window:
            seen.append(widget)
        widget = widget.nextInFocusChain()
    return seen


def _spoken_name(widget: QWidget) -> str:
    """The name a screen reader gets: Qt's accessibility interface (an explicit name, a button's text,
    a buddy label). A spin box's inner line edit speaks as its spin box."""
    from PySide6.QtGui import QAccessible
    from PySide6.QtWidgets import QAbstractSpinBox

    if isinstance(widget.parentWidget(), QAbstractSpinBox):
        widget = widget.parentWidget()
    interface = QAccessible.queryAccessibleInterface(widget)
    return interface.text(QAccessible.Text.Name) if interface is not None else ""


def _windows(tmp_path: Path) -> list[QWidget]:
    from assistant.app.corrections_window import CorrectionsWindow
    from assistant.app.guide_window import GuideWindow
    from assistant.app.history_window import HistoryWindow
    from assistant.app.result_window import ResultWindow
    from assistant.app.settings_window import SettingsWindow
    from assistant.app.tray import ActionsWindow
    from assistant.app.welcome_window import WelcomeWindow

    settings = Settings(tmp_path / "settings.json")
    return [ResultWindow(ask=lambda q: None),
            HistoryWindow(list, lambda r: None, lambda t: None, forget_all=lambda: None),
            SettingsWindow(settings, lambda t: None), ActionsWindow(settings.hotkeys(), lambda a: None),
            GuideWindow(), CorrectionsWindow(lambda t: None, lambda: None),
            WelcomeWindow(settings, settings.hotkeys(), lambda a: None)]


def test_every_focusable_control_has_an_accessible_name(qtbot, tmp_path: Path) -> None:
    for window in _windows(tmp_path):
        qtbot.addWidget(window)
        reached = _walk_tab(window, qtbot)
        assert len(reached) >= 2, type(window).__name__
        unnamed = [type(w).__name__ + ":" + w.objectName() for w in reached if not _spoken_name(w)]
        assert not unnamed, (type(window).__name__, unnamed)
        assert window.accessibleName() and window.windowTitle()


def _child_counts(interface, path: str = "", out: dict[str, int] | None = None) -> dict[str, int]:
    """Every accessible node under ``interface`` by its path of child indexes: its number of children."""
    out = {} if out is None else out
    count = interface.childCount()
    out[path or "/"] = count
    for i in range(count):
        child = interface.child(i)
        if child is not None and child.isValid():
            _child_counts(child, f"{path}/{i}", out)
    return out


def test_no_window_changes_its_accessible_children_when_it_hides(qtbot, tmp_path: Path) -> None:
    """A screen reader counts a node's children, then asks for each by index. Qt's QScrollArea listed its
    scroll bars only while they were shown and looked up a child by index unchecked: a reader that counted
    three children just before Settings closed read freed memory, and the app died of a segmentation fault
    (core dump of 2026-12-07, test_app_atspi.py under load). Counts that do not move with visibility
    leave no such window."""
    from PySide6.QtGui import QAccessible

    for window in _windows(tmp_path):
        qtbot.addWidget(window)
        window.resize(480, 320)  # small enough that long windows scroll
        window.show()
        qtbot.waitExposed(window)
        shown = _child_counts(QAccessible.queryAccessibleInterface(window))
        window.hide()
        hidden = _child_counts(QAccessible.queryAccessibleInterface(window))
        moved = {path: (n, hidden.get(path)) for path, n in shown.items() if hidden.get(path) != n}
        assert not moved, (type(window).__name__, moved)


def test_the_settings_scroll_with_their_bar_and_with_the_focus(qtbot, tmp_path: Path) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtWidgets import QScrollArea, QScrollBar

    from assistant.app.settings_window import SettingsWindow

    window = SettingsWindow(Settings(tmp_path / "settings.json"), lambda t: None)
    qtbot.addWidget(window)
    window.resize(480, 320)
    window.show()
    qtbot.waitExposed(window)
    area = window.findChild(QScrollArea)
    bar = next(b for b in window.findChildren(QScrollBar) if b.parentWidget() is window)
    assert bar.isVisible() and bar.maximum() == area.verticalScrollBar().maximum() > 0
    bar.setValue(bar.maximum())  # dragged to the end: the area shows its last rows
    assert area.verticalScrollBar().value() == bar.maximum()
    last = list(window.controls.values())[-1]
    top = last.mapTo(area.viewport(), QPoint(0, 0)).y()
    assert 0 <= top < area.viewport().height(), top
    # Tab moves the area to the focused control (QScrollArea.focusNextPrevChild); the bar follows the area
    area.ensureWidgetVisible(next(iter(window.controls.values())))
    assert bar.value() == area.verticalScrollBar().value() == 0
    window.resize(480, 4000)  # everything fits: no bar
    qtbot.waitUntil(lambda: not bar.isVisible(), timeout=2000)


def test_the_actions_window_lists_every_action_with_its_hotkey(qtbot, tmp_path: Path) -> None:
    from assistant.app.tray import ActionsWindow, build_menu

    hotkeys = Settings(tmp_path / "settings.json").hotkeys()
    window = ActionsWindow(hotkeys, lambda a: None)
    qtbot.addWidget(window)
    assert list(window.buttons) == [a.id for a in actions.ACTIONS]
    assert "Ctrl+Alt+D" in window.buttons["describe-screen"].text()
    menu = build_menu(None, hotkeys, lambda a: None)
    items = [a for a in menu.actions() if not a.isSeparator()]
    assert [a.objectName() for a in items] == [a.id for a in actions.ACTIONS]
    assert items[0].shortcut().toString() == "Ctrl+Alt+D"


def test_settings_window_saves_and_refuses_with_words(qtbot, tmp_path: Path) -> None:
    from assistant.app.settings_window import SettingsWindow

    settings = Settings(tmp_path / "settings.json")
    said: list[str] = []
    window = SettingsWindow(settings, said.append)
    qtbot.addWidget(window)
    window.controls["describe.detail"].setCurrentText("detailed")  # type: ignore[attr-defined]
    window.save()
    assert Settings(tmp_path / "settings.json")["describe.detail"] == "detailed"
    # A full disk while saving: the window stays open, says why, and the old settings stand.
    def full_disk(changes: dict) -> None:
        raise OSError(28, "No space left on device")

    settings.update = full_disk  # type: ignore[method-assign]
    window = SettingsWindow(settings, said.append)
    qtbot.addWidget(window)
    window.show()
    window.controls["speech.rate"].setValue(300)  # type: ignore[attr-defined]
    window.save()
    assert window.isVisible()
    assert "not saved" in said[-1] and "No space left" in said[-1]
    assert "No space left" in window.error.text()
    assert Settings(tmp_path / "settings.json")["speech.rate"] == 190
