"""Reading text aloud with pause, resume and moving by line or paragraph.

Each paragraph is queued as its own utterance, so speech knows where it is: when the speaker starts a
paragraph, the cursor moves there. Pausing stops the voice and keeps the place; resuming reads on from
the start of that paragraph (or from the line moved to). GUI thread only; the speaker's callbacks reach
it through the controller's queued signal.
"""

from __future__ import annotations

import time
from typing import Any

from assistant.ocr.navigation import TextCursor
from assistant.ocr.result import NO_TEXT

ACTION = "read-text"
END, START = "End of text.", "Start of text."


class Reading:
    def __init__(self, speaker: Any) -> None:
        self.speaker = speaker
        self.cursor = TextCursor([])
        self._queue: list[tuple[int, str]] = []  # queued (paragraph, text) not started yet
        self.paused = False
        self.finished = False

    @property
    def has_text(self) -> bool:
        return not self.cursor.empty

    def start(self, paragraphs: list[list[str]], requested_at: float | None = None) -> None:
        self.cursor = TextCursor(paragraphs)
        self.read_on(requested_at)

    def read_on(self, requested_at: float | None = None) -> None:
        """Read from the cursor to the end, cutting off whatever is being said."""
        items = self.cursor.rest()
        if not items:
            self.speaker.say(NO_TEXT, action=ACTION, interrupt=True, requested_at=requested_at)
            return
        self.paused = self.finished = False
        self._queue = list(items)
        for i, (_index, text) in enumerate(items):
            self.speaker.say(text, action=ACTION, interrupt=i == 0, requested_at=requested_at or time.time())

    def pause_or_resume(self) -> None:
        if not self.has_text:
            self.speaker.say("There is no text to read yet: use Read text first.", action=ACTION)
        elif self.paused or self.finished or not self.speaker.busy:
            if self.finished and not self.paused:
                self.speaker.say(END, action=ACTION)
            else:
                self.read_on()
        else:
            self.paused = True
            self._queue = []
            self.speaker.stop()

    def move(self, step: str) -> None:
        """``step``: next-line, previous-line, next-paragraph, previous-paragraph; says what it moved to."""
        if not self.has_text:
            self.speaker.say("There is no text to read yet: use Read text first.", action=ACTION)
            return
        text = {"next-line": self.cursor.next_line, "previous-line": self.cursor.previous_line,
                "next-paragraph": self.cursor.next_paragraph,
                "previous-paragraph": self.cursor.previous_paragraph}[step]()
        self.paused, self._queue = True, []  # "resume" goes on from here
        self.speaker.say(text or (END if step.startswith("next") else START), action=ACTION, interrupt=True)

    def speech_event(self, event: str, text: str, action: str | None) -> None:
        """The speaker started or finished ``text`` (called on the GUI thread)."""
        if action != ACTION or self.paused:
            return
        if event == "started":
            for i, (index, queued) in enumerate(self._queue):
                if queued == text:
                    if index != self.cursor.paragraph:
                        self.cursor.seek(index)
                    self._queue = self._queue[i + 1:]
                    break
        elif event == "finished" and not self._queue:
            self.finished = True
