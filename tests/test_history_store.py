"""The history on disk: a real SQLite file, small images, deletes that really delete, and "Keep no history"
keeping nothing on disk (with the app's history keeper and controller signals, under pytest-qt)."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from assistant.history_store import THUMB_SIDE, HistoryStore, erase

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def test_entries_are_kept_listed_trimmed_and_deleted(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    photo = Image.effect_noise((1280, 800), 40).convert("RGB")
    with HistoryStore(path) as store:
        first = store.add("A dog on a sofa.", action="describe-screen", label="screen", image=photo, at=100.0)
        store.add("Yes.", action="ask", label="screen")
        entries = store.list()
        assert [(e.text, e.action, e.has_image) for e in entries] == [
            ("A dog on a sofa.", "describe-screen", True), ("Yes.", "ask", False)]
        assert entries[0].at == 100.0
        assert max(store.image(first).size) == THUMB_SIDE  # downscaled, not the screen
        for i in range(5):
            store.add(f"Entry {i}.", limit=3)
        assert [e.text for e in store.list()] == ["Entry 2.", "Entry 3.", "Entry 4."]
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with HistoryStore(path) as store:  # it lasts across sessions
        assert len(store.list()) == 3
        store.delete(store.list()[0].id)
        assert [e.text for e in store.list()] == ["Entry 3.", "Entry 4."]
        store.clear()
        assert store.list() == []
    assert b"Entry 4." not in path.read_bytes()  # secure_delete and VACUUM: the words are gone from the file
    erase(path)
    assert not list(tmp_path.iterdir())


def test_a_failed_write_leaves_the_history_as_it_was(tmp_path: Path) -> None:
    with HistoryStore(tmp_path / "h.sqlite3") as store:
        store.add("Kept.")
        with pytest.raises(sqlite3.IntegrityError):
            store.add(None)  # type: ignore[arg-type]  # NOT NULL: the transaction is rolled back
        assert [e.text for e in store.list()] == ["Kept."]


def test_keep_no_history_keeps_nothing_on_disk(qtbot, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from PySide6.QtCore import QObject, Signal

    from assistant.app.controller import Result
    from assistant.app.history_keeper import HistoryKeeper
    from assistant.settings import Settings

    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))

    class Controller(QObject):
        """Unit-test stand-in with the real Controller's history interface (test_app_atspi uses the real
        one end to end)."""

        kept = Signal(object)

        def __init__(self) -> None:
            super().__init__()
            self.history: list[Result] = []
            self.last: Result | None = None

        def keep(self, text: str) -> Result:
            result = Result(text=text, action="describe-screen", label="screen", at=1.0,
                            image=Image.new("RGB", (640, 480), (200, 30, 30)))
            self.history.append(result)
            self.kept.emit(result)
            return result

        def forget(self, result: Result) -> None:
            self.history = [r for r in self.history if r is not result]

    home = tmp_path / "home"
    settings = Settings(tmp_path / "settings.json")
    controller = Controller()
    keeper = HistoryKeeper(settings, controller)
    kept = controller.keep("A red wall.")
    controller.keep("A blue door.")
    assert (home / "history.sqlite3").exists()
    keeper.forget(kept)
    keeper.close()

    again = Controller()
    keeper = HistoryKeeper(settings, again)  # the next start brings the history back
    assert [r.text for r in again.history] == ["A blue door."]
    settings.update({"history.keep_none": True})  # turning it on erases what was kept
    assert not (home / "history.sqlite3").exists()
    again.keep("A green field.")
    assert sorted(p.name for p in home.iterdir()) == []
    keeper.close()

    third = Controller()
    HistoryKeeper(settings, third)
    third.keep("Nothing of this reaches the disk.")
    assert list(home.iterdir()) == [] and third.history
