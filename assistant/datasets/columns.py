"""Column names the row-based formats (CSV, JSONL, JSON lists, HF imagefolder metadata) accept."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from assistant.vision.errors import DataError

# In order of preference when a file has more than one of them.
IMAGE_COLUMNS: tuple[str, ...] = ("image", "image_path", "file_name", "path", "filepath", "filename")
CAPTION_COLUMNS: tuple[str, ...] = ("caption", "captions", "text")
QUESTION_COLUMNS: tuple[str, ...] = ("question",)
ANSWER_COLUMNS: tuple[str, ...] = ("answers", "answer", "multiple_choice_answer")
ID_COLUMNS: tuple[str, ...] = ("image_id",)
SPLIT_COLUMN = "split"


def pick_column(
    present: Iterable[str],
    candidates: Sequence[str],
    *,
    what: str,
    source: str,
    explicit: str | None = None,
    option: str | None = None,
) -> str:
    """The column to read for ``what``: ``explicit`` if given, else the first candidate present.

    Raises a DataError naming the accepted and the found columns, so that a typo ("captoin") is
    obvious from the message alone.
    """
    names = list(dict.fromkeys(present))
    if explicit is not None:
        if explicit not in names:
            raise DataError(
                f"{source} has no column {explicit!r}; its columns are: {', '.join(names) or 'none'}"
            )
        return explicit
    for candidate in candidates:
        if candidate in names:
            return candidate
    hint = f" (or name it with {option})" if option else ""
    raise DataError(
        f"{source} has no {what} column: expected one of {', '.join(candidates)}{hint}; "
        f"its columns are: {', '.join(names) or 'none'}"
    )
