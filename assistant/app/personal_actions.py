"""The app's side of personalization (issue #24): saving a correction of the last caption, and running
"Personalize now" in the background with its progress in words.

The controller owns one :class:`PersonalActions`; the result window and the corrections window call it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from PySide6.QtCore import QObject, Signal

from assistant.app.personalize_job import PersonalizeJob

log = logging.getLogger(__name__)

SPEAK_EVERY_S = 30.0  # progress is shown at once, spoken at most this often: speech must not nag


class PersonalActions(QObject):
    progress = Signal(str, bool)  # words, whether a run is going on

    def __init__(self, controller: Any) -> None:
        super().__init__(controller)
        self._controller = controller
        self.job = PersonalizeJob(self)
        self.job.progress.connect(self._on_progress)
        self.job.finished.connect(self._on_finished)
        self._spoken_at = 0.0

    # --- correcting ---------------------------------------------------------------------------
    def correctable(self) -> Any:
        """The last result with an image and a caption (what F2 corrects), or None."""
        last = self._controller.last_image()
        return last if last is not None and last.caption else None

    def last_caption(self) -> str | None:
        result = self.correctable()
        return result.caption if result is not None else None

    def save_correction(self, caption: str) -> None:
        from assistant.personal.corrections import CorrectionError, CorrectionStore

        result = self.correctable()
        if result is None:
            self._controller.say("There is no caption to correct yet: describe something first.",
                                 "corrections")
            return
        try:
            with CorrectionStore() as store:
                store.add(result.image, caption, model_caption=result.caption or "",
                          model=self._controller.worker.model_name)
                count = store.count()
        except (CorrectionError, OSError) as exc:
            log.warning("correction not saved: %s", exc)  # the reason only, never the caption
            kept = " Your earlier corrections are all kept." if "could not save" in str(exc) else ""
            self._controller.say(f"The correction was not saved: {exc}.{kept}", "corrections")
            return
        log.info("correction saved (%d in all)", count)  # never the caption: logs hold no screen text
        self._controller.say(f"Correction saved. {count} corrections so far; Personalize now teaches them "
                             "to the model.", "corrections")

    # --- personalizing --------------------------------------------------------------------------
    def personalize(self) -> None:
        from assistant.personal.corrections import MIN_CORRECTIONS, CorrectionStore, database_path

        if self.job.running:
            self._controller.say("Personalizing is already going on.", "personalize")
            return
        count = 0
        if database_path().exists():
            with CorrectionStore() as store:
                count = store.count()
        if count < MIN_CORRECTIONS:
            self._controller.say(f"There are {count} corrections; personalizing needs at least "
                                 f"{MIN_CORRECTIONS}. In the results window, F2 corrects the last "
                                 "caption.", "personalize")
            return
        self.job.start()

    def stop(self) -> None:
        if self.job.running:
            self.job.stop()

    def _on_progress(self, text: str) -> None:
        self.progress.emit(text, self.job.running)
        self._controller.status.emit(text)
        now = time.monotonic()
        if now - self._spoken_at >= SPEAK_EVERY_S:
            self._spoken_at = now
            self._controller.say(text, "personalize", keep=False, interrupt=False)

    def _on_finished(self, accepted: bool, summary: str) -> None:
        self.progress.emit(summary, False)
        self._controller.status.emit("Ready")
        self._controller.say(summary, "personalize")
        if accepted:
            self.reload_model()

    def reload_model(self) -> None:
        """Load the model again with the new personal version, in a thread, and swap it in when loaded:
        the description in flight finishes on the old one, the next uses the new one."""
        worker = self._controller.worker
        old = worker.describer

        def load() -> None:
            from assistant.describe import Describer

            fresh = Describer(old.model_name, threads=old.threads, device=old.device)
            try:
                fresh.load()
            except Exception:  # the old model keeps working; the next start tries again
                log.exception("reloading the model with the personal version failed")
                return
            worker.describer = fresh

        threading.Thread(target=load, name="personal-reload", daemon=True).start()
