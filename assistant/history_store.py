"""The history on disk: earlier descriptions and answers, their time and a small copy of the image. Qt-free.

One SQLite file under ``BLIP_ASSISTANT_HOME`` (``history.sqlite3``). Every change is one transaction, so a
crash leaves the file as it was before or after it, never half-written. Images are stored downscaled
(``THUMB_SIDE`` pixels on the long side, JPEG): enough to remind the user what it was, not the screen.

The setting "Keep no history" means nothing of this exists: the app then never opens a store, and
``erase`` removes the file with its journal.
"""

from __future__ import annotations

import io
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant import home

FILE_NAME = "history.sqlite3"
THUMB_SIDE = 320
_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at REAL NOT NULL,
    action TEXT,
    label TEXT NOT NULL DEFAULT '',
    text TEXT NOT NULL,
    image BLOB
)
"""


@dataclass(frozen=True)
class Entry:
    id: int
    at: float
    action: str | None
    label: str
    text: str
    has_image: bool


def default_path() -> Path:
    return home.home() / FILE_NAME


def erase(path: Path | None = None) -> None:
    """Remove the history file and SQLite's side files ("Keep no history" means none on disk)."""
    path = path or default_path()
    for suffix in ("", "-journal", "-wal", "-shm"):
        Path(str(path) + suffix).unlink(missing_ok=True)


def thumbnail_bytes(image: Any) -> bytes | None:
    """A small JPEG of a PIL image, or None when there is no image (or it cannot be encoded)."""
    if isinstance(image, bytes | bytearray) and image:
        # a pasted or dropped image is kept encoded (the worker decoded it); decoded again for its thumbnail
        from assistant.vision.errors import ImageError
        from assistant.vision.io import load_image

        try:
            image = load_image(image)
        except ImageError:
            return None
    if image is None or not hasattr(image, "convert"):
        return None
    small = image.convert("RGB")
    small.thumbnail((THUMB_SIDE, THUMB_SIDE))
    out = io.BytesIO()
    small.save(out, format="JPEG", quality=80)
    return out.getvalue()


class HistoryStore:
    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=DELETE")  # one file at rest: nothing left beside it
        self._db.execute("PRAGMA secure_delete=ON")  # deleted text is overwritten in the file
        self._db.execute(_SCHEMA)
        self.path.chmod(0o600)

    def add(self, text: str, *, at: float | None = None, action: str | None = None, label: str = "",
            image: Any = None, limit: int | None = None) -> int:
        """Store one result; with ``limit``, keep only that many newest entries. Returns the new id."""
        thumb = thumbnail_bytes(image)
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO entries (at, action, label, text, image) VALUES (?, ?, ?, ?, ?)",
                (at if at is not None else time.time(), action, label or "", text, thumb))
            if limit is not None:
                self._trim(limit)
        return int(cursor.lastrowid or 0)

    def list(self) -> list[Entry]:
        """Every entry, oldest first."""
        rows = self._db.execute(
            "SELECT id, at, action, label, text, image IS NOT NULL FROM entries ORDER BY id").fetchall()
        return [Entry(r[0], r[1], r[2], r[3], r[4], bool(r[5])) for r in rows]

    def image(self, entry_id: int) -> Any:
        """The stored small image as a PIL image, or None."""
        row = self._db.execute("SELECT image FROM entries WHERE id = ?", (entry_id,)).fetchone()
        if not row or row[0] is None:
            return None
        from PIL import Image

        return Image.open(io.BytesIO(row[0])).convert("RGB")

    def delete(self, entry_id: int) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM entries WHERE id = ?", (entry_id,))

    def clear(self) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM entries")
        self._db.execute("VACUUM")  # deleted text must not linger in free pages of the file

    def trim(self, limit: int) -> None:
        with self._transaction():
            self._trim(limit)

    def close(self) -> None:
        self._db.close()

    def _trim(self, limit: int) -> None:
        self._db.execute("DELETE FROM entries WHERE id NOT IN (SELECT id FROM entries ORDER BY id DESC "
                         "LIMIT ?)", (max(0, int(limit)),))

    def _transaction(self) -> Any:
        db = self._db

        class _Tx:
            def __enter__(self) -> None:
                db.execute("BEGIN IMMEDIATE")

            def __exit__(self, kind: Any, *_rest: Any) -> None:
                db.execute("COMMIT" if kind is None else "ROLLBACK")

        return _Tx()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
