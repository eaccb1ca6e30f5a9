"""The thread that reads text (OCR), next to the one that owns the captioner.

Its own thread, not the vision worker's: reading needs no model load, so a "read text" right after
start is answered at once, and a description's text is read while its caption is being spoken. Like
the vision worker, a newer request replaces one that has not started yet; results come back as a
queued signal on the GUI thread.
"""

from __future__ import annotations

import itertools
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from assistant.app.worker import Cancellable

log = logging.getLogger(__name__)


@dataclass
class TextRequest:
    image: Any  # a PIL image in memory or a file path; never written to disk
    label: str
    purpose: str = "read"  # "read" (read-text), "describe" (the text part of a description), "ask"
    id: int = field(default=0)
    context: dict[str, Any] = field(default_factory=dict)  # what the controller needs to answer it


class OcrWorker(QObject, Cancellable):
    read = Signal(int, object)  # request id, assistant.ocr.TextResult
    superseded = Signal(int)

    def __init__(self, engine: str = "auto") -> None:
        super().__init__()
        from assistant.ocr import TextReader  # Qt-free; imports no engine until the first read

        self.reader = TextReader(engine)
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._pending: TextRequest | None = None
        self._running: TextRequest | None = None
        self._cancelled = 0  # the id of a running request whose text Stop dropped
        self._closing = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or self._pending is not None

    def submit(self, request: TextRequest) -> int:
        """Queue ``request`` (replacing one that has not started) and return its id at once."""
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ocr-worker", daemon=True)
                self._thread.start()
            request.id = next(self._ids)
            dropped, self._pending = self._pending, request
            self._cond.notify()
        if dropped is not None:
            self.superseded.emit(dropped.id)
        return request.id

    def close(self, timeout: float = 5.0) -> bool:
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify()
            thread = self._thread
        if thread is not None and thread.is_alive():
            thread.join(timeout)
        return thread is None or not thread.is_alive()

    def _run(self) -> None:
        from assistant.ocr import TextResult

        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                request, self._pending = self._pending, None
                self._running = request
            try:
                result = self.reader.read(request.image, request.label)
            except Exception as exc:  # a bug in one reading must not end the worker
                log.exception("reading text failed")
                result = TextResult(image=request.label, error=f"Reading the text failed: {exc}")
            with self._cond:
                self._running = None
                cancelled = self._cancelled == request.id
            if cancelled:
                self.superseded.emit(request.id)
            else:
                self.read.emit(request.id, result)
