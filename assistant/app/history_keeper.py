"""Keeps the controller's history on disk (``assistant.history_store``), or keeps nothing there.

"Keep no history" on: no store is opened and any earlier file is erased, at start and the moment the
setting is turned on. Off: every kept result is saved with its time and a small copy of its image, the
history of earlier sessions comes back at start, and deleting in the history window deletes on disk.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject

from assistant.history_store import HistoryStore, erase
from assistant.settings import Settings

log = logging.getLogger(__name__)

KEEP_NONE, LENGTH = "history.keep_none", "history.length"


class HistoryKeeper(QObject):
    def __init__(self, settings: Settings, controller: Any, path: Path | None = None) -> None:
        super().__init__()
        self.settings, self.controller, self._path = settings, controller, path
        self.store: HistoryStore | None = None
        self._ids: dict[int, int] = {}  # id(Result) -> row id (Results are unhashable dataclasses)
        if settings[KEEP_NONE]:
            erase(path)
        else:
            self._open(load=True)
        controller.kept.connect(self._kept)
        settings.on_change(self._setting_changed)

    def forget(self, result: Any) -> None:
        self.controller.forget(result)
        row = self._ids.pop(id(result), None)
        if self.store is not None and row is not None:
            self.store.delete(row)

    def forget_all(self) -> None:
        self.controller.history = []
        self.controller.last = None
        self._ids.clear()
        if self.store is not None:
            self.store.clear()

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def _open(self, load: bool) -> None:
        try:
            self.store = HistoryStore(self._path)
        except Exception as exc:  # an unreadable file must not stop the app: history stays in memory
            log.warning("history file not usable: %s", exc)
            self.store = None
            return
        if not load:
            return
        from assistant.app.controller import Result

        limit = int(self.settings[LENGTH])
        entries = self.store.list()[-limit:] if limit else []
        loaded = []
        for entry in entries:
            # The full image is not kept; follow-up questions need a new description.
            result = Result(text=entry.text, action=entry.action, label=entry.label, at=entry.at)
            self._ids[id(result)] = entry.id
            loaded.append(result)
        self.controller.history = [*loaded, *self.controller.history]

    def _kept(self, result: Any) -> None:
        if self.store is None:
            return
        try:
            self._ids[id(result)] = self.store.add(result.text, at=result.at, action=result.action,
                                                   label=result.label, image=result.image,
                                                   limit=int(self.settings[LENGTH]))
        except Exception as exc:  # a full disk loses this entry on disk, never the app
            log.warning("history entry not saved: %s", exc)

    def _setting_changed(self, name: str, value: Any) -> None:
        if name == KEEP_NONE and value:
            self.close()
            self._ids.clear()
            erase(self._path)
        elif name == KEEP_NONE and not value and self.store is None:
            self._open(load=False)
        elif name == LENGTH and self.store is not None:
            self.store.trim(int(value))
