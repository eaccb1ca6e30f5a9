"""The Models dialog driven by keyboard (pytest-qt, offscreen) against a local stand-in for the hub: the size
is said before anything downloads, progress is said in words, cancel keeps no model, a folder is checked;
and Qt accessibility announcements are posted where new text appears."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
pytest.importorskip("PySide6")

from PySide6.QtCore import Qt
from PySide6.QtGui import QAccessible
from PySide6.QtWidgets import QApplication, QWidget

from assistant import model_store
from assistant.settings import Settings
from hub_server import fake_hub

BASE = "Salesforce/blip-image-captioning-base"
CONFIG = json.dumps({"architectures": ["BlipForConditionalGeneration"]}).encode()
WEIGHTS = os.urandom(3 * 1024 * 1024)


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


@pytest.fixture()
def announced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Every announcement the app posts: (message, politeness), seen where it goes to Qt."""
    from assistant.app import announce

    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(announce, "_enabled", True)  # the user's "speech.announce" setting, turned on

    def update(event) -> None:
        assert event.type() == QAccessible.Event.Announcement
        posted.append((event.message(), event.politeness().name))

    monkeypatch.setattr(announce, "QAccessible", SimpleNamespace(
        AnnouncementPoliteness=QAccessible.AnnouncementPoliteness, updateAccessibility=update))
    return posted


def files() -> dict[str, bytes]:
    return {"config.json": CONFIG, "model.safetensors": WEIGHTS, "vocab.txt": b"[PAD]\n",
            "preprocessor_config.json": b"{}"}


def press(qtbot, key: Qt.Key) -> None:
    focused = QApplication.focusWidget()
    assert focused is not None, "no widget has the keyboard focus"
    qtbot.keyClick(focused, key)


def tab_to(qtbot, target: QWidget, limit: int = 30) -> None:
    """Press Tab until ``target`` has the focus, as a keyboard user would (fails if it is never reached)."""
    for _ in range(limit):
        if QApplication.focusWidget() is target:
            return
        press(qtbot, Qt.Key.Key_Tab)
    raise AssertionError(f"Tab never reached {target.accessibleName()!r}")


def open_settings(qtbot, tmp_path: Path, said: list[str]):
    from assistant.app.settings_window import SettingsWindow

    window = SettingsWindow(Settings(tmp_path / "settings.json"), said.append)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.controls["model.name"].setFocus()
    press(qtbot, Qt.Key.Key_Tab)  # the Models... button follows the model field
    button = QApplication.focusWidget()
    assert button.accessibleName() == "Models"
    press(qtbot, Qt.Key.Key_Space)
    dialog = window.models_dialog
    qtbot.waitUntil(lambda: dialog.isVisible() and dialog.isActiveWindow())
    return window, dialog


def ask_the_size(qtbot, dialog) -> None:
    """Tab to Download and press it: the dialog sizes the chosen model and waits for Start download."""
    tab_to(qtbot, dialog.download_button)
    press(qtbot, Qt.Key.Key_Space)
    qtbot.waitUntil(lambda: "Press Start download" in dialog.status.text(), timeout=5000)


def test_download_by_keyboard_says_the_size_first_then_progress_then_use(
        qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, announced) -> None:
    said: list[str] = []
    with fake_hub({BASE: files()}, slow_s=0.02) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        window, dialog = open_settings(qtbot, tmp_path, said)
        assert QApplication.focusWidget() is dialog.list
        press(qtbot, Qt.Key.Key_Down)
        assert dialog.list.currentItem().text() == "Salesforce BLIP base: not downloaded, about 990 megabytes"
        assert "990 megabytes" in dialog.list.accessibleDescription()
        ask_the_size(qtbot, dialog)
        size = len(CONFIG) + len(WEIGHTS) + 6 + 2
        assert f"{size:,} bytes in 4 files" in said[-1] and "3.1 megabytes" in said[-1]
        assert not any("/resolve/" in s.path for s in hub.log)  # the size came first; nothing fetched
        assert QApplication.focusWidget() is dialog.download_button
        assert dialog.download_button.accessibleName() == "Start download, 3.1 megabytes"
        dialog.progress_gap_s = 0.0  # every 10 percent, so that a 1-second download says some
        press(qtbot, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: "downloaded and verified" in dialog.status.text(), timeout=20_000)
        percents = [s for s in said if "percent" in s]
        numbers = [int(s.split()[0]) for s in percents]
        assert 3 <= len(numbers) <= 9 and numbers == sorted(set(numbers)), percents  # not every percent
        assert all(b // 10 > a // 10 for a, b in itertools.pairwise(numbers)), percents
        assert QApplication.focusWidget() is dialog.use_button
        assert model_store.installed("base") == model_store.models_dir() / "base"
        press(qtbot, Qt.Key.Key_Space)  # Use this model
        qtbot.waitUntil(lambda: not dialog.isVisible())
    assert window.controls["model.name"].text() == "base"
    qtbot.waitUntil(lambda: QApplication.focusWidget() is window.controls["model.name"])
    window.save()
    assert Settings(tmp_path / "settings.json")["model.name"] == "base"
    assert said[-1] == "Settings saved."
    messages = [m for m, _ in announced]
    assert any("Press Start download" in m for m in messages)  # the size, announced as well as spoken
    assert any("percent" in m for m in messages)
    assert any("downloaded and verified" in m for m in messages)
    assert messages[-1] == "Settings saved."


def test_cancel_by_keyboard_keeps_no_model_and_resumes_later(qtbot, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    with fake_hub({BASE: files()}, slow_s=0.05) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        _window, dialog = open_settings(qtbot, tmp_path, said)
        press(qtbot, Qt.Key.Key_Down)
        ask_the_size(qtbot, dialog)
        press(qtbot, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: model_store.partial_bytes("base") > 200_000, timeout=10_000)
        assert QApplication.focusWidget() is dialog.cancel_button  # the focus moved to Cancel download
        press(qtbot, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: "Download cancelled" in dialog.status.text(), timeout=10_000)
        assert not (model_store.models_dir() / "base").exists()
        kept = model_store.partial_bytes("base")
        assert kept > 0 and "partly downloaded" in dialog.list.currentItem().text()
        # Download again: it continues with a Range request from what was kept.
        hub.slow_s = 0.0
        ask_the_size(qtbot, dialog)
        assert "are kept" in dialog.status.text()
        press(qtbot, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: "downloaded and verified" in dialog.status.text(), timeout=20_000)
        assert any(s.range and s.path.endswith("model.safetensors") for s in hub.log)
        assert hub.sent_bytes("model.safetensors") <= len(WEIGHTS) + 256 * 1024  # at most a chunk twice


def test_escape_during_a_download_cancels_it(qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    with fake_hub({BASE: files()}, slow_s=0.05) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        window, dialog = open_settings(qtbot, tmp_path, said)
        press(qtbot, Qt.Key.Key_Down)
        ask_the_size(qtbot, dialog)
        press(qtbot, Qt.Key.Key_Space)
        qtbot.waitUntil(lambda: model_store.partial_bytes("base") > 0, timeout=10_000)
        press(qtbot, Qt.Key.Key_Escape)
        assert not dialog.isVisible() and "Download cancelled" in said[-1]
        qtbot.waitUntil(lambda: not dialog.job.running, timeout=10_000)
    assert model_store.installed("base") is None and window.controls["model.name"].text() == "builtin"


def test_a_folder_is_checked_with_a_specific_message(qtbot, tmp_path: Path, tiny_models) -> None:
    from assistant.app.models_dialog import ModelsDialog

    said: list[str] = []
    answers = iter([str(tmp_path), str(tiny_models["caption"])])
    dialog = ModelsDialog("builtin", said.append, ask_folder=lambda: next(answers))
    qtbot.addWidget(dialog)
    chosen: list[str] = []
    dialog.chosen.connect(chosen.append)
    dialog.show()
    dialog.activateWindow()
    qtbot.waitUntil(dialog.isActiveWindow)
    dialog.folder_button.setFocus()
    press(qtbot, Qt.Key.Key_Space)
    assert "no config.json" in dialog.status.text() and said[-1] == dialog.status.text()
    assert dialog.isVisible() and chosen == []
    press(qtbot, Qt.Key.Key_Space)
    assert chosen == [str(tiny_models["caption"].resolve())] and not dialog.isVisible()


def test_settings_refuse_a_typed_folder_that_is_not_a_model(qtbot, tmp_path: Path) -> None:
    from assistant.app.settings_window import SettingsWindow

    said: list[str] = []
    window = SettingsWindow(Settings(tmp_path / "settings.json"), said.append)
    qtbot.addWidget(window)
    window.show()
    window.controls["model.name"].setText(str(tmp_path))
    window.save()
    assert window.isVisible() and "not saved" in said[-1] and "no config.json" in said[-1]


def test_every_control_in_the_models_dialog_is_named(qtbot, tmp_path: Path) -> None:
    from assistant.app.models_dialog import ModelsDialog

    dialog = ModelsDialog("builtin", lambda t: None)
    qtbot.addWidget(dialog)
    dialog.show()
    qtbot.waitExposed(dialog)
    reached, widget = [], dialog.nextInFocusChain()
    while widget is not dialog and widget not in reached:
        if widget.focusPolicy() & Qt.FocusPolicy.TabFocus and widget.isVisibleTo(dialog):
            reached.append(widget)
        widget = widget.nextInFocusChain()
    names = [QAccessible.queryAccessibleInterface(w).text(QAccessible.Text.Name) for w in reached]
    assert len(reached) >= 7 and all(names), names
    assert dialog.accessibleName() == "Models"


def test_an_announcement_is_posted_only_from_the_active_window(qtbot, announced) -> None:
    from assistant.app.announce import announce
    from assistant.app.result_window import ResultWindow

    window = ResultWindow(ask=lambda q: None)
    qtbot.addWidget(window)
    window.add("A cup of coffee on a table.")  # hidden: not posted (the speech route carries it)
    assert announced == []
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.add("A dog on a sofa.", "Answer")
    assert announced == [("Answer: A dog on a sofa.", "Polite")]
    assert announce(window.transcript, "Failed.", assertive=True)
    assert announced[-1] == ("Failed.", "Assertive")
    other = QWidget()
    qtbot.addWidget(other)
    other.show()
    other.activateWindow()
    qtbot.waitUntil(other.isActiveWindow)
    assert not announce(window.transcript, "not while another window has the focus")
    assert len(announced) == 2


def test_a_model_chosen_in_settings_loads_at_once_and_a_bad_one_keeps_the_old(
        qtbot, tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.app.model_switch import follow_model
    from assistant.describe import Describer

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # "base" is not downloaded: it must fail, not reach the hub
    settings = Settings(tmp_path / "settings.json")
    worker = SimpleNamespace(describer=Describer(str(tiny_models["builtin"]), personal=False))
    said: list[str] = []
    follow_model(settings, worker, said.append)
    settings.update({"model.name": str(tiny_models["caption"])})
    qtbot.waitUntil(lambda: any("is ready" in s for s in said), timeout=60_000)
    assert worker.describer.model_name == str(tiny_models["caption"]) and worker.describer.loaded
    assert said[0] == f"Loading {tiny_models['caption']}."
    settings.update({"model.name": "base"})  # not downloaded, and offline: the old model stays
    qtbot.waitUntil(lambda: any("could not be loaded" in s for s in said), timeout=60_000)
    assert said[-1].startswith("Salesforce BLIP base could not be loaded, so the previous model is still")
    assert worker.describer.model_name == str(tiny_models["caption"])


def test_nothing_is_announced_while_the_setting_is_off(qtbot, announced, monkeypatch) -> None:
    """Off by default: the speech output already says the text, and an announcement would repeat it."""
    from assistant import settings
    from assistant.app import announce
    from assistant.app.result_window import ResultWindow

    assert settings.BY_NAME[announce.SETTING].default is False
    monkeypatch.setattr(announce, "_enabled", False)
    window = ResultWindow(ask=lambda q: None)
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.add("A dog on a sofa.", "Answer")
    assert announced == []
    announce.set_enabled(True)
    window.add("A cat on a mat.", "Answer")
    assert announced == [("Answer: A cat on a mat.", "Polite")]
