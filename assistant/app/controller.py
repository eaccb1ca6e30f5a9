"""The controller: every action of the registry, run on the GUI thread without ever blocking it.

A hotkey, the tray menu, the fallback window and ``blip-assistant trigger`` all end in
:meth:`Controller.run_action`. Capturing takes milliseconds and happens here, at the moment of the
request, so the picture is what the user had on screen when they pressed the key; the model runs in the
worker; speech runs in the speaker's thread. Every failure becomes a sentence that is spoken and shown.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from assistant import actions, logs
from assistant.app.ocr_worker import OcrWorker, TextRequest
from assistant.app.reading import Reading
from assistant.app.worker import Request, VisionWorker
from assistant.ocr import compose, questions
from assistant.settings import Settings
from assistant.speech import earcons as earcon_sounds  # its timings read at each use (tests shorten them)

log = logging.getLogger(__name__)

OCR_MAX_SIDE = 4096  # a 4K monitor's text keeps every pixel; bigger desktops are read scaled down
# What a description captures: twice the side the model reads, within these (960 before the model has
# loaded, and for a model that reads 480 px or more)
CAPTURE_MIN_SIDE, CAPTURE_MAX_SIDE = 448, 960


@dataclass
class Result:
    """One spoken result, kept for Repeat, the result window and the history."""

    text: str
    action: str | None
    label: str
    at: float
    image: Any = None  # the image in memory, for follow-up questions; never saved by this class
    caption: str | None = None
    confidence: float | None = None
    text_read: Any = None  # assistant.ocr.TextResult of the same image, for questions about its text


class Controller(QObject):
    spoken = Signal(object)  # Result: everything spoken is also shown
    status = Signal(str)  # short state for the tray tooltip: "Loading the model", "Ready", "Describing"
    quitRequested = Signal()
    windowRequested = Signal(str)  # an action id whose window the UI layer opens
    kept = Signal(object)  # Result: one that joined the history (the history store saves it)
    _speech = Signal(str, str, object)  # "started"/"finished", text, action: from the speaker's thread

    def __init__(self, settings: Settings, worker: VisionWorker, speaker: Any,
                 capturer_factory: Callable[[], Any],
                 pick_region: Callable[[Callable[[Any], None]], None] | None = None,
                 choose_file: Callable[[], str | None] | None = None,
                 clipboard_image: Callable[[], Any] | None = None,
                 ocr_worker: OcrWorker | None = None, earcons: Any = None) -> None:
        super().__init__()
        self.settings, self.worker, self.speaker = settings, worker, speaker
        self.earcons = earcons  # assistant.speech.earcons.Earcons, or None: no sounds
        # "working" ticks while a description takes long; stopped when its answer (or a failure) comes
        self._working = QTimer(self)
        self._working.timeout.connect(self._tick_working)
        self._capturer_factory = capturer_factory
        self._capturer: Any = None
        self._pick_region, self._choose_file = pick_region, choose_file
        self._clipboard_image = clipboard_image
        self.last: Result | None = None
        self.history: list[Result] = []
        self._requests: dict[int, Request] = {}
        self._asked_at: float | None = None
        self._opened: Path | None = None  # the image file opened last
        self._handlers: dict[str, Callable[[list[str]], None]] = {
            "describe-screen": lambda _a: self._capture_and_describe("screen"),
            "describe-window": lambda _a: self._capture_and_describe("window"),
            "describe-pointer": lambda _a: self._capture_and_describe("pointer"),
            "describe-region": lambda _a: self._describe_region(),
            "describe-clipboard": lambda _a: self._describe_clipboard(),
            "open-image": self._open_image,
            "next-image": lambda _a: self._step_image(1),
            "previous-image": lambda _a: self._step_image(-1),
            "read-text": self._read_text,
            "reading-pause": lambda _a: self.reading.pause_or_resume(),
            "reading-next-line": lambda _a: self.reading.move("next-line"),
            "reading-previous-line": lambda _a: self.reading.move("previous-line"),
            "reading-next-paragraph": lambda _a: self.reading.move("next-paragraph"),
            "reading-previous-paragraph": lambda _a: self.reading.move("previous-paragraph"),
            "repeat": lambda _a: self._repeat(),
            "stop": lambda _a: self._stop(),
            "ask": lambda _a: self.windowRequested.emit("ask"),
            "history": lambda _a: self.windowRequested.emit("history"),
            "settings": lambda _a: self.windowRequested.emit("settings"),
            "guide": lambda _a: self.windowRequested.emit("guide"),
            "corrections": lambda _a: self.windowRequested.emit("corrections"),
            "personalize": lambda _a: self.personal.personalize(),
            "about": lambda _a: self.windowRequested.emit("about"),
            "delete-data": lambda _a: self.windowRequested.emit("delete-data"),  # asks first
            "quit": lambda _a: self.quitRequested.emit(),
        }
        missing = set(actions.BY_ID) - set(self._handlers)
        assert not missing, f"actions without a handler: {missing}"
        worker.ready.connect(self._on_ready)
        worker.loadFailed.connect(self._on_load_failed)
        worker.described.connect(self._on_described)
        worker.superseded.connect(self._forget_request)
        self.ocr = ocr_worker or OcrWorker(settings["ocr.engine"])
        self.ocr.read.connect(self._on_text_read)
        self.ocr.superseded.connect(lambda rid: self._text_requests.pop(rid, None))
        self._text_requests: dict[int, TextRequest] = {}
        # vision request id -> {"where", "text" (TextResult), "result" (the caption's Result)}
        self._screen_parts: dict[int, dict[str, Any]] = {}
        self._ocr_capturer: Any = None
        self.reading = Reading(speaker)
        from assistant.app.personal_actions import PersonalActions  # corrections, personal models (#24)

        self.personal = PersonalActions(self)
        self._speech.connect(self.reading.speech_event)
        _listen_to_speech(speaker, self._speech.emit)

    # --- entry point ---------------------------------------------------------------------------
    @Slot(str, list)
    def run_action(self, action_id: str, args: list[str] | None = None) -> None:
        """Run one action; unknown ids and failures are said, never raised into Qt."""
        self._asked_at = time.time()
        log.info("action %s", action_id)  # the id only: what a load test counts, nothing from the screen
        handler = self._handlers.get(action_id)
        if handler is None:
            self.say(f"Unknown action {action_id}.", None)
            return
        try:
            handler(list(args or []))
        except Exception as exc:  # the app must outlive any one action
            log.exception("action %s failed", action_id)
            self.say(f"That did not work: {exc}", action_id)

    # --- speaking -----------------------------------------------------------------------------
    def say(self, text: str, action: str | None, *, label: str = "", image: Any = None,
            caption: str | None = None, confidence: float | None = None, keep: bool = True,
            requested_at: float | None = None, interrupt: bool = True, shown: str | None = None) -> Result:
        """Speak ``text`` and show it (or ``shown``, the same words laid out for reading)."""
        result = Result(text=shown or text, action=action, label=label, at=time.time(), image=image,
                        caption=caption, confidence=confidence)
        logs.content(f"said ({action})", text)  # written only with "Debug logging" on
        self.speaker.say(text, action=action, interrupt=interrupt,
                         requested_at=requested_at or self._asked_at)
        if keep:
            self.last = result
            limit = int(self.settings["history.length"])
            self.history = ([*self.history, result])[-limit:] if limit else []
            self.kept.emit(result)
        self.spoken.emit(result)
        return result

    def _repeat(self) -> None:
        if self.last is None:
            self.speaker.say("Nothing has been described yet.", action="repeat", interrupt=True)
        else:
            self.speaker.say(self.last.text, action="repeat", interrupt=True)

    # --- describing ---------------------------------------------------------------------------
    def _stop(self) -> None:
        """Silence now, and nothing said later of what was asked before: a description or text still
        being worked out is dropped, as is the text part waiting behind a caption."""
        self._stop_sounds()
        self.worker.cancel()
        self.ocr.cancel()
        self._screen_parts.clear()
        self.speaker.stop()
        if self.worker.is_ready:
            self.status.emit("Ready")

    def _stop_sounds(self) -> None:
        self._working.stop()
        if self.earcons is not None:
            self.earcons.stop()

    def _earcon(self, name: str) -> None:
        if self.earcons is not None:
            self.earcons.play(name)

    def _tick_working(self) -> None:
        if not self._requests:  # answered, superseded or failed meanwhile
            self._working.stop()
            return
        self._working.setInterval(int(earcon_sounds.WORKING_EVERY_S * 1000))
        if not getattr(self.speaker, "busy", False):  # a tick under a sentence would only blur it
            self._earcon("working")

    def _capturer_or_none(self) -> Any:
        if self._capturer is None:
            self._capturer = self._capturer_factory()
        side = getattr(getattr(self.worker, "describer", None), "picture_side", None)
        if side and hasattr(self._capturer, "max_side"):
            # Twice what the model reads leaves its own resize detail to work from, and more than the
            # history's and the corrections' copies keep (320 and 384 px); capturing a 1280x800 screen
            # at 448 instead of 960 px took 14 instead of 30 ms of this thread per key press.
            self._capturer.max_side = min(CAPTURE_MAX_SIDE, max(CAPTURE_MIN_SIDE, 2 * side))
        return self._capturer

    def _capture_and_describe(self, what: str) -> None:
        from assistant.capture import CaptureError

        action = f"describe-{what}"
        try:
            capturer = self._capturer_or_none()
            capture = {"screen": capturer.screen, "window": capturer.window,
                       "pointer": capturer.pointer_area}[what]()
        except CaptureError as exc:
            log.warning("capture failed: %s", exc)  # the reason (Wayland, permission), never an image
            self.say(str(exc), action)
            return
        self._describe_capture(capture, action, lambda: self._grab_for_text(what))

    def _describe_capture(self, capture: Any, action: str, for_text: Callable[[], Any] | None = None) -> None:
        label = capture.kind if not capture.window_title else f"{capture.kind}: {capture.window_title}"
        if capture.blank:
            self.say(capture.blank, action, label=label)
            return
        request = Request(image=capture.image, label=label, action=action, capture_ms=capture.capture_ms,
                          requested_at=self._asked_at or time.time(), not_blank=True)
        self._submit(request)
        # the press was taken: heard at once, long before the first word (after the worker has the
        # request: starting the player costs this thread about 2 ms)
        self._earcon("captured")
        if self.settings["describe.read_text"]:
            # Where the user is, said with the caption; the text on the screen, said after it.
            app, title = capture.app_name, capture.window_title
            if capture.kind == "screen":
                app, title = self._active_window()
            # A capture kept at full size already holds every pixel of the text. A second grab would
            # run on this thread while the worker describes, and cost the description tens of ms.
            full_size = capture.image.size == (capture.rect.width, capture.rect.height)
            try:
                full = for_text() if for_text is not None and not full_size else None
            except Exception:  # the full-size grab failed: read the capture the caption has
                log.debug("full-size capture for reading failed", exc_info=True)
                full = None
            self._add_text_part(request, (full or capture).image, compose.where(app, title))

    def _add_text_part(self, request: Request, image: Any, where: str = "") -> None:
        """Say ``where`` with the caption of ``request`` and the text on ``image`` after it. Reading
        starts once the caption is out (_on_described): on a machine with few cores, reading beside the
        captioner delayed the first word by a third (tests/benchmarks/ocr.py)."""
        if getattr(self.worker, "load_error", None):
            return  # no caption will come to queue the text behind
        self._screen_parts[request.id] = {
            "where": where, "text": None, "result": None,
            "read": TextRequest(image=image, label=request.label, purpose="describe",
                                context={"request": request.id})}

    def _describe_region(self) -> None:
        if self._pick_region is None:
            self.say("Picking a region needs the desktop app.", "describe-region")
            return

        def picked(rect: Any) -> None:
            if rect is None:
                self.say("Region cancelled.", "describe-region", keep=False)
                return
            from assistant.capture import CaptureError

            try:
                capture = self._capturer_or_none().region(rect)
            except CaptureError as exc:
                self.say(str(exc), "describe-region")
                return
            self._describe_capture(capture, "describe-region", lambda: self._grab_for_text("region", rect))

        self._pick_region(picked)

    def _describe_clipboard(self) -> None:
        image = self._clipboard_image() if self._clipboard_image else None
        if image is None:
            self.say("There is no image on the clipboard.", "describe-clipboard")
            return
        request = Request(image=image, label="clipboard image", action="describe-clipboard")
        self._submit(request)
        if self.settings["describe.read_text"]:
            self._add_text_part(request, image)

    def _open_image(self, args: list[str]) -> None:
        path = args[0] if args else (self._choose_file() if self._choose_file else None)
        if not path:
            return
        self.open_file(path)

    def open_file(self, path: str) -> None:
        """Describe an image file (Open, Open with, drag and drop, ``blip-assistant open FILE``).

        The file is decoded in the worker; an unreadable file comes back as a specific sentence."""
        self._opened = Path(path).absolute()  # where next-image / previous-image go on from
        request = Request(image=str(path), label=Path(path).name, action="open-image")
        self._submit(request)
        if self.settings["describe.read_text"]:
            self._add_text_part(request, str(path))

    def open_image_data(self, image: Any, label: str) -> None:
        """Describe an image in memory (dropped from a browser, pasted): never written to disk."""
        self._submit(Request(image=image, label=label, action="open-image"))

    def _step_image(self, step: int) -> None:
        from assistant.folder_images import neighbour

        action = "next-image" if step > 0 else "previous-image"
        opened = self._opened
        if opened is None:
            self.say("Open an image first; then this goes through the other images in its folder.", action)
            return
        path, position, count = neighbour(opened, step)
        if path is None:
            where = "last" if step > 0 else "first"
            self.say(f"{opened.name} is the {where} of the {count} images in its folder." if count > 1 else
                     f"There are no other images in the folder of {opened.name}.", action, keep=False)
            return
        self._opened = path
        self._submit(Request(image=str(path), label=f"{path.name}, {position} of {count}", action=action))

    def ask_question(self, question: str) -> None:
        """Answer a typed question about the last image described; questions about its text ("what does
        it say?", "what's the title?") are answered from what OCR read, not by the captioner."""
        about_text = questions.route(question)
        image = self.last_image(with_text=about_text is not None)
        if image is None:
            self.say("There is no image to ask about yet: describe something first.", "ask")
            return
        if about_text is not None:
            if image.text_read is not None:
                self.say(questions.answer(about_text, image.text_read), "ask", label=image.label)
            else:
                self._read(TextRequest(image=image.image, label=image.label, purpose="ask",
                                       context={"question": about_text, "result": image}))
            return
        self._submit(Request(image=image.image, label=image.label, action="ask", kind="ask",
                             question=question))

    def last_image(self, with_text: bool = False) -> Result | None:
        """The newest result with an image (``with_text``: or with text read from one, as read-text's)."""
        recent = [*self.history, self.last] if self.last is not None else self.history
        return next((r for r in reversed(recent)
                     if r.image is not None or (with_text and r.text_read is not None)), None)

    def forget(self, result: Result) -> None:
        self.history = [r for r in self.history if r is not result]
        if self.last is result:
            self.last = self.history[-1] if self.history else None

    def _submit(self, request: Request) -> None:
        failed = getattr(self.worker, "load_error", None)
        if failed:  # no model: say why at every request, never leave it waiting forever
            self.say(f"{failed}. Reading text and the settings still work.", request.action, keep=False)
            return
        request.detail = self.settings["describe.detail"]
        request_id = self.worker.submit(request)
        self._requests[request_id] = request
        self._working.start(int(earcon_sounds.WORKING_AFTER_S * 1000))
        if not self.worker.is_ready:
            self.speaker.say("The model is still loading; your description follows when it is ready.",
                             action=request.action, interrupt=True)
        self.status.emit("Describing")

    # --- results ------------------------------------------------------------------------------
    @Slot(str)
    def _on_ready(self, model: str) -> None:
        self.status.emit("Ready")
        # a damaged personal model that loading skipped, said once
        for notice in getattr(getattr(self.worker, "describer", None), "notices", []):
            log.warning("model: %s", notice)
            self.say(notice[:1].upper() + notice[1:] + ".", None, keep=False, interrupt=False)
        if not self.worker.busy:  # a waiting request's answer says more than "ready"
            self.speaker.say("Ready.", action=None, interrupt=False)

    @Slot(str)
    def _on_load_failed(self, message: str) -> None:
        self.status.emit("Model not loaded")
        self._working.stop()  # a request made while it loaded will never be answered: no ticks for it
        self.say(message, None)

    @Slot(int, object)
    def _on_described(self, request_id: int, description: Any) -> None:
        request = self._requests.pop(request_id, None)
        self.status.emit("Ready")
        if not self._requests:
            self._working.stop()
        if request is None:
            return
        # Timings only, never the text: logs must not hold what was on the user's screen.
        log.info("timing action=%s capture_ms=%.1f model_s=%.3f queued_s=%.3f", request.action,
                 request.capture_ms, description.seconds or 0.0,
                 time.time() - request.requested_at - (description.seconds or 0.0))
        parts = self._screen_parts.get(request_id)
        if not description.ok:
            result = self.say(_failure_sentence(description, request.image), request.action,
                              label=request.label, requested_at=request.requested_at)
        else:
            text = " ".join(p for p in (parts["where"] if parts else "", description.text) if p)
            if request.action in ("next-image", "previous-image"):  # which file, then what is in it
                text = f"{request.label}: {text}"
            result = self.say(text, request.action, label=request.label, image=request.image,
                              caption=getattr(description, "caption", None),
                              confidence=description.confidence, requested_at=request.requested_at)
        if parts is not None:
            parts["result"] = result
            self._read(parts.pop("read"))

    def _forget_request(self, request_id: int) -> None:
        self._requests.pop(request_id, None)
        self._screen_parts.pop(request_id, None)

    # --- reading text -------------------------------------------------------------------------
    def _read_text(self, args: list[str]) -> None:
        """Read the text in the active window (the "read.area" setting), or in ``args[0]``: screen,
        window, pointer, region or an image file."""
        from assistant.capture import CaptureError

        what = args[0] if args else self.settings["read.area"]
        if what not in ("screen", "window", "pointer", "region"):
            self._read(TextRequest(image=str(what), label=Path(what).name, purpose="read"))
            return
        if what == "region":
            if self._pick_region is None:
                self.say("Picking a region needs the desktop app.", "read-text")
                return
            self._pick_region(lambda rect: None if rect is None else self._read_captured("region", rect))
            return
        try:
            self._read_captured(what)
        except CaptureError as exc:
            self.say(str(exc), "read-text")

    def _read_captured(self, what: str, rect: Any = None) -> None:
        from assistant.capture import CaptureError, blank_reason

        try:
            capture = self._grab_for_text(what, rect)
        except CaptureError as exc:
            self.say(str(exc), "read-text")
            return
        blank = capture.blank or blank_reason(capture.image)
        if blank:
            self.say(blank, "read-text", label=capture.kind)
            return
        label = capture.kind if not capture.window_title else f"{capture.kind}: {capture.window_title}"
        self._read(TextRequest(image=capture.image, label=label, purpose="read",
                               context={"requested_at": self._asked_at or time.time()}))

    def _grab_for_text(self, what: str, rect: Any = None) -> Any:
        """A capture at full resolution (up to 4096 pixels a side): small text must keep its pixels."""
        if self._ocr_capturer is None:
            try:
                # No blank check here: a description has done it on its own capture already, and
                # read-text does it itself (it costs tens of ms on a full-size screen).
                self._ocr_capturer = self._capturer_factory(max_side=OCR_MAX_SIDE, check_blank=False)
            except TypeError:  # a capturer without sizes: the one descriptions use
                self._ocr_capturer = self._capturer_or_none()
        grab = {"screen": self._ocr_capturer.screen, "window": self._ocr_capturer.window,
                "pointer": self._ocr_capturer.pointer_area}
        return self._ocr_capturer.region(rect) if what == "region" else grab[what]()

    def _active_window(self) -> tuple[str | None, str | None]:
        """(app name, title) of the active window, for a screen description; (None, None) if unknown."""
        try:
            info = self._capturer_or_none().active_window_info()
        except Exception:  # a desktop that does not say: the description goes without it
            log.debug("no active window info", exc_info=True)
            return None, None
        return getattr(info, "app", None), getattr(info, "title", None)

    def _read(self, request: TextRequest) -> None:
        self._text_requests[self.ocr.submit(request)] = request
        if request.purpose == "read":
            self.status.emit("Reading")

    @Slot(int, object)
    def _on_text_read(self, request_id: int, text: Any) -> None:
        request = self._text_requests.pop(request_id, None)
        if request is None:
            return
        log.info("timing action=read-text purpose=%s ocr_s=%.3f engine=%s", request.purpose,
                 text.seconds or 0.0, text.engine)
        if request.purpose == "describe":
            parts = self._screen_parts.get(request.context["request"])
            if parts is not None:
                parts["text"] = text
                self._say_screen_text(request.context["request"])
        elif request.purpose == "ask":
            request.context["result"].text_read = text
            self.say(questions.answer(request.context["question"], text), "ask", label=request.label)
        else:
            self.status.emit("Ready")
            if not text.ok or not text.paragraphs:
                self.say(text.spoken, "read-text", label=request.label)
                return
            # Shown and kept with its line breaks (to copy); spoken paragraph by paragraph (to pause).
            result = Result(text=text.text, action="read-text", label=request.label, at=time.time())
            logs.content("read (read-text)", text.text)  # written only with "Debug logging" on
            result.text_read = text
            self.last = result
            limit = int(self.settings["history.length"])
            self.history = ([*self.history, result])[-limit:] if limit else []
            self.spoken.emit(result)
            self.reading.start(text.paragraphs, request.context.get("requested_at"))

    def _say_screen_text(self, request_id: int) -> None:
        """The text part of a screen description, queued after its caption once both are there."""
        parts = self._screen_parts[request_id]
        result, text = parts["result"], parts["text"]
        if result is None or text is None:
            return
        del self._screen_parts[request_id]
        result.text_read = text
        quote = compose.quote(text, self.settings["describe.detail"])
        if quote:
            result.text = f"{result.text} {quote}"
            self.say(quote, result.action, label=result.label, keep=False, interrupt=False)

    def close(self) -> None:
        self._stop_sounds()
        self.ocr.close(timeout=2.0)
        for capturer in {id(c): c for c in (self._capturer, self._ocr_capturer) if c is not None}.values():
            capturer.close()


def _listen_to_speech(speaker: Any, emit: Callable[[str, str, Any], None]) -> None:
    """Chain onto the speaker's start/finish callbacks (they run on its thread; ``emit`` is a signal)."""
    for event, name in (("started", "on_started"), ("finished", "on_finished")):
        previous = getattr(speaker, name, None)
        if previous is None:
            continue

        def chained(text: str, action: Any, _previous: Any = previous, _event: str = event) -> None:
            _previous(text, action)
            emit(_event, text, action)

        setattr(speaker, name, chained)


def _failure_sentence(description: Any, source: Any = None) -> str:
    from assistant.image_messages import sentence  # what kind of file, and what is wrong with it

    error = str(description.error or "")
    # the engine names the file by its full path; the sentence names it once, by the name the user knows
    for prefix in (f"{source}: " if isinstance(source, str) else None, f"{description.image}: "):
        error = error.removeprefix(prefix) if prefix else error
    return sentence(description.image, getattr(description, "error_code", None), error, source)
