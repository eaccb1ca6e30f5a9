"""The one thread that owns the model.

Qt's event loop never waits on it: requests go in through :meth:`VisionWorker.submit`, which returns at
once, and results come back as signals (queued into the GUI thread). One request runs at a time; a newer
request supersedes an older one, so pressing the hotkey again and again costs at most one description
in flight plus the newest one, and only the newest is answered.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from PySide6.QtCore import QObject, Signal

from assistant.vision.errors import Interrupted  # torch-free
from assistant.vision.runtime import preload  # torch-free

log = logging.getLogger(__name__)


@dataclass
class Request:
    image: Any  # a PIL image in memory (a capture or an opened file), never written to disk
    label: str
    action: str | None = None
    kind: str = "describe"  # or "ask"
    question: str = ""
    detail: str = "brief"
    id: int = field(default=0)
    requested_at: float = field(default_factory=time.time)  # when the user asked, for the speech log
    capture_ms: float = 0.0
    not_blank: bool = False  # a capture, already found not blank (black, one colour) when it was taken


class Cancellable:
    """Stop for a worker that runs one request at a time and keeps at most one waiting (its ``_cond``,
    ``_pending``, ``_running``, ``_cancelled`` and ``superseded`` signal): the waiting request is dropped,
    and the running one's answer is not given (its work ends at the next point that asks, if any)."""

    _cond: threading.Condition
    _pending: Any
    _running: Any
    _cancelled: int
    superseded: Any

    def cancel(self) -> None:
        with self._cond:
            dropped, self._pending = self._pending, None
            if self._running is not None:
                self._cancelled = self._running.id
        if dropped is not None:
            self.superseded.emit(dropped.id)


class VisionWorker(QObject, Cancellable):
    loading = Signal(str)  # the model's name
    ready = Signal(str)
    loadFailed = Signal(str)  # a message for the user
    described = Signal(int, object)  # request id, assistant.describe.Description or Answer
    superseded = Signal(int)  # a request that a newer one replaced, never answered

    def __init__(self, model_name: str, *, threads: int = 1, device: str = "cpu") -> None:
        super().__init__()
        from assistant.describe import Describer  # Qt-free, and imports no torch until load()

        self.describer = Describer(model_name, threads=threads, device=device)
        self._ids = itertools.count(1)
        self._cond = threading.Condition()
        self._pending: Request | None = None
        self._running: Request | None = None
        self._cancelled = 0  # the id of a running request whose answer Stop dropped
        self._closing = False
        self.load_error: str | None = None  # set when loading failed: requests are then answered with it
        self._thread = threading.Thread(target=self._run, name="vision-worker", daemon=True)

    @property
    def model_name(self) -> str:
        return self.describer.model_name

    @property
    def is_ready(self) -> bool:
        return self.describer.loaded

    @property
    def busy(self) -> bool:
        with self._cond:
            return self._running is not None or self._pending is not None

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: Request) -> int:
        """Queue ``request`` (replacing any that has not started yet) and return its id at once."""
        with self._cond:
            request.id = next(self._ids)
            dropped, self._pending = self._pending, request
            self._cond.notify()
        if dropped is not None:
            self.superseded.emit(dropped.id)
        return request.id

    def is_current(self, request_id: int) -> bool:
        """False once a newer request came in: its answer would be about an image the user moved on from."""
        with self._cond:
            newest = self._pending or self._running
            return newest is not None and newest.id == request_id

    def close(self, timeout: float = 5.0) -> bool:
        with self._cond:
            self._closing = True
            self._pending = None
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        self.loading.emit(self.model_name)
        preload.wait()  # the engine's imports, begun at launch
        try:
            self.describer.load()
        except Exception as exc:  # any load failure must become words, never a dead worker
            log.exception("model load failed")
            self.load_error = _load_message(self.model_name, exc)
            self.loadFailed.emit(self.load_error)
            return
        finally:
            preload.finish()
        release_memory()  # the load's temporaries (float16 weights converted to float32)
        self.ready.emit(self.model_name)
        while True:
            with self._cond:
                while self._pending is None and not self._closing:
                    self._cond.wait()
                if self._closing:
                    return
                request, self._pending = self._pending, None
                self._running = request
            # A newer request or Stop ends this one between decoding steps instead of after them: with
            # BLIP-large the next description would otherwise wait seconds for one nobody will hear.
            def unwanted(rid: int = request.id) -> bool:
                with self._cond:
                    return self._pending is not None or self._cancelled == rid or self._closing

            try:
                if request.kind == "ask":
                    result = self.describer.ask(request.image, request.question, label=request.label,
                                                should_stop=unwanted)
                else:
                    result = self.describer.describe(request.image, label=request.label,
                                                     not_blank=request.not_blank,
                                                     detail=request.detail, should_stop=unwanted)
            except Interrupted:
                result = None
            except Exception as exc:  # a bug in one description must not end the worker
                log.exception("description failed")
                from assistant.describe import Description

                result = Description(image=request.label, error=f"the description failed: {exc}",
                                     error_code="internal_error")
            with self._cond:
                self._running = None
                current = result is not None and self._pending is None and self._cancelled != request.id
            if current:
                self.described.emit(request.id, result)
            else:
                self.superseded.emit(request.id)
            release_memory()


def release_memory() -> None:
    """Hand the allocator's freed pages back to the system, after the answer has gone out.

    A description's images and activations are freed when it ends, but glibc keeps the pages for the next
    allocation, and an app that then sits idle in the tray all day would hold them (measured: 90 MB more
    after a described screen than before, 40-60 MB of it returned by this). Elsewhere a no-op.
    """
    global _trim
    if _trim is None:
        import ctypes
        import ctypes.util
        import sys

        name = ctypes.util.find_library("c") if sys.platform.startswith("linux") else None
        try:
            _trim = ctypes.CDLL(name).malloc_trim if name else False
        except (OSError, AttributeError):
            _trim = False
    if _trim:
        _trim(0)


_trim: Any = None


def _load_message(model: str, exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if type(exc).__name__ == "SafetensorError" or "deserializing" in text:
        # safetensors' own words ("incomplete metadata, file not fully covered") mean nothing to a user
        text = ("its weights file is damaged or incomplete (a copy or download that stopped early); copy "
                f"or download it again ({text})")
    elif isinstance(exc, MemoryError):
        text = "there is not enough memory for it"
    return f"The model {model} could not be loaded: {text}"
