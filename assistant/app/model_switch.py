"""A model chosen in Settings is loaded at once, in the background, and swapped in when it is ready.

The description in flight finishes on the old model and the next uses the new one; a model that fails to
load leaves the old one working, and the user is told why (in words, on the GUI thread).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, Signal

log = logging.getLogger(__name__)
MODEL_SETTING = "model.name"


class ModelSwitcher(QObject):
    said = Signal(str)  # from the loading thread to the GUI thread

    def __init__(self, worker: Any, say: Callable[[str], None]) -> None:
        super().__init__()
        self._worker = worker
        self.said.connect(say)
        self._generation = 0
        self._lock = threading.Lock()

    def switch(self, name: str) -> threading.Thread:
        with self._lock:
            self._generation += 1
            generation = self._generation
        old = self._worker.describer
        self.said.emit(f"Loading {_spoken(name)}.")

        def load() -> None:
            from assistant.describe import Describer

            fresh = Describer(name, threads=old.threads, device=old.device)
            try:
                fresh.load()
            except Exception as exc:  # the old model keeps working
                log.exception("loading the chosen model failed")
                self.said.emit(f"{_spoken(name)} could not be loaded, so the previous model is still in "
                               f"use: {exc}")
                return
            with self._lock:
                if generation != self._generation:
                    return  # the user chose again meanwhile: the newer choice wins
                self._worker.describer = fresh
            self.said.emit(f"{_spoken(name)} is ready.")

        thread = threading.Thread(target=load, name="model-switch", daemon=True)
        thread.start()
        return thread


def _spoken(name: str) -> str:
    from assistant import model_store

    choice = model_store.choice_for(name)
    return choice.label if choice is not None else name


def follow_model(settings: Any, worker: Any, say: Callable[[str], None]) -> ModelSwitcher:
    """Switch models whenever the ``model.name`` setting changes (Settings, OK)."""
    switcher = ModelSwitcher(worker, say)
    settings.on_change(lambda name, value: switcher.switch(value) if name == MODEL_SETTING else None)
    return switcher
