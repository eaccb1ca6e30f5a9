"""Moving through read text by line and by paragraph, like a screen reader's review cursor.

Qt-free: the app's controller speaks what these methods return. Moving says just the line or paragraph
moved to; "continue" reads on from there to the end.
"""

from __future__ import annotations

from assistant.ocr.layout import join_lines
from assistant.ocr.result import as_sentence


class TextCursor:
    def __init__(self, paragraphs: list[list[str]]) -> None:
        self.paragraphs = [lines for lines in paragraphs if lines]
        self.paragraph = 0
        self.line = 0

    @property
    def empty(self) -> bool:
        return not self.paragraphs

    def current_line(self) -> str | None:
        return None if self.empty else self.paragraphs[self.paragraph][self.line]

    def current_paragraph(self) -> str | None:
        return None if self.empty else join_lines(self.paragraphs[self.paragraph])

    def next_line(self) -> str | None:
        """The next line (into the next paragraph at a paragraph's end); None at the end of the text."""
        if self.empty:
            return None
        if self.line + 1 < len(self.paragraphs[self.paragraph]):
            self.line += 1
        elif self.paragraph + 1 < len(self.paragraphs):
            self.paragraph, self.line = self.paragraph + 1, 0
        else:
            return None
        return self.current_line()

    def previous_line(self) -> str | None:
        if self.empty:
            return None
        if self.line > 0:
            self.line -= 1
        elif self.paragraph > 0:
            self.paragraph -= 1
            self.line = len(self.paragraphs[self.paragraph]) - 1
        else:
            return None
        return self.current_line()

    def next_paragraph(self) -> str | None:
        if self.empty or self.paragraph + 1 >= len(self.paragraphs):
            return None
        self.paragraph, self.line = self.paragraph + 1, 0
        return self.current_paragraph()

    def previous_paragraph(self) -> str | None:
        """The paragraph before; from inside a paragraph, its own start first (as in a word processor)."""
        if self.empty:
            return None
        if self.line == 0:
            if self.paragraph == 0:
                return None
            self.paragraph -= 1
        self.line = 0
        return self.current_paragraph()

    def seek(self, paragraph: int, line: int = 0) -> None:
        """Move to where speech has got to (the paragraph the speaker started)."""
        if not self.empty:
            self.paragraph = max(0, min(paragraph, len(self.paragraphs) - 1))
            self.line = max(0, min(line, len(self.paragraphs[self.paragraph]) - 1))

    def rest(self) -> list[tuple[int, str]]:
        """(paragraph index, sentence text) from the cursor to the end: what "continue reading" says."""
        if self.empty:
            return []
        first = as_sentence(join_lines(self.paragraphs[self.paragraph][self.line:]))
        return [(self.paragraph, first)] + [
            (i, as_sentence(join_lines(lines)))
            for i, lines in enumerate(self.paragraphs[self.paragraph + 1:], start=self.paragraph + 1)]
