"""The user's corrected captions, in one SQLite database under ``BLIP_ASSISTANT_HOME``.

A correction holds a downscaled copy of the image (enough for training: the models read 224 or 384
pixels), the model's caption, the user's caption, the time and the model's name. The database runs in
WAL mode with ``synchronous=FULL`` and writes each correction in its own transaction, so a correction
the store has returned an id for survives a crash or a kill of the process, and a half-written one
never appears.

No torch and no Qt: the CLI and the corrections window import this cheaply.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant import home

DB_NAME = "corrections.sqlite3"
MAX_SIDE = 384  # the built-in model reads 224 px, BLIP-large 384: more would only cost disk
JPEG_QUALITY = 90
MAX_CAPTION_CHARS = 500
MIN_CORRECTIONS = 5  # personalizing keeps some aside to check the result, so it needs a few
# CSV import limits: a corrections file is hand-made or exported, never this big
MAX_CSV_BYTES = 20 * 1024 * 1024
MAX_CSV_ROWS = 10_000
MAX_IMAGE_BYTES = 50 * 1024 * 1024

_SCHEMA = """
CREATE TABLE IF NOT EXISTS corrections (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    model_caption TEXT NOT NULL DEFAULT '',
    caption TEXT NOT NULL,
    image BLOB NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL
)
"""


class CorrectionError(ValueError):
    """A correction or a corrections file that cannot be used; the message says why, for the user."""


@dataclass(frozen=True)
class Correction:
    id: int
    created: float
    updated: float
    model: str
    model_caption: str
    caption: str
    width: int
    height: int

    @property
    def when(self) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.created))


def storage_error(exc: BaseException) -> CorrectionError:
    """A failed write of the corrections file, in words: a full disk is said to be one."""
    text = str(exc).lower()
    if getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) or "full" in text:
        return CorrectionError("could not save: the disk is full")
    if isinstance(exc, PermissionError) or "readonly" in text or "read-only" in text:
        return CorrectionError("could not save: the data folder cannot be written to")
    return CorrectionError(f"could not save: the corrections file could not be written ({exc})")


def database_path() -> Path:
    return home.home() / DB_NAME


def clean_caption(caption: str) -> str:
    text = " ".join(str(caption).split())
    if not text:
        raise CorrectionError("the caption is empty")
    if len(text) > MAX_CAPTION_CHARS:
        raise CorrectionError(f"the caption is {len(text)} characters long; at most {MAX_CAPTION_CHARS}")
    return text


def downscaled_jpeg(image: Any) -> tuple[bytes, int, int]:
    """The image as JPEG bytes, its longer side at most :data:`MAX_SIDE`. Takes anything
    :func:`assistant.vision.io.load_image` takes (a path, bytes, a PIL image, an array)."""
    from PIL import Image

    from assistant.vision.errors import ImageError
    from assistant.vision.io import load_image

    try:
        picture = load_image(image)
    except ImageError as exc:
        raise CorrectionError(str(exc)) from None
    picture = picture.convert("RGB")
    picture.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    picture.save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue(), picture.width, picture.height


class CorrectionStore:
    """Add, edit, delete and list corrections. One connection per store; use it from one thread."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else database_path()
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            os.chmod(self.path, 0o600)
        except (sqlite3.Error, OSError) as exc:
            raise storage_error(exc) from exc

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CorrectionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _write(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        # isolation_level=None: we open and commit the transaction ourselves, one per correction
        try:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(sql, params)
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # SQLite may have rolled back by itself (a full disk)
                    self._db.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:  # the earlier corrections are untouched: this one was never committed
            raise storage_error(exc) from exc
        return cursor

    def add(self, image: Any, caption: str, *, model_caption: str = "", model: str = "",
            created: float | None = None) -> int:
        """Store one correction; the id returned means it is on disk."""
        caption = clean_caption(caption)
        blob, width, height = downscaled_jpeg(image)
        now = time.time() if created is None else created
        cursor = self._write(
            "INSERT INTO corrections (created, updated, model, model_caption, caption, image, width, height) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (now, now, model, " ".join(str(model_caption).split()), caption, blob, width, height),
        )
        return int(cursor.lastrowid or 0)

    def edit(self, correction_id: int, caption: str) -> None:
        caption = clean_caption(caption)
        cursor = self._write("UPDATE corrections SET caption = ?, updated = ? WHERE id = ?",
                             (caption, time.time(), correction_id))
        if cursor.rowcount == 0:
            raise CorrectionError(f"there is no correction number {correction_id}")

    def delete(self, correction_id: int) -> None:
        cursor = self._write("DELETE FROM corrections WHERE id = ?", (correction_id,))
        if cursor.rowcount == 0:
            raise CorrectionError(f"there is no correction number {correction_id}")

    def delete_all(self) -> int:
        return int(self._write("DELETE FROM corrections").rowcount)

    def count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM corrections").fetchone()[0])

    def list(self) -> list[Correction]:
        rows = self._db.execute(
            "SELECT id, created, updated, model, model_caption, caption, width, height FROM corrections "
            "ORDER BY id"
        ).fetchall()
        return [Correction(*row) for row in rows]

    def get(self, correction_id: int) -> Correction:
        row = self._db.execute(
            "SELECT id, created, updated, model, model_caption, caption, width, height FROM corrections "
            "WHERE id = ?", (correction_id,)
        ).fetchone()
        if row is None:
            raise CorrectionError(f"there is no correction number {correction_id}")
        return Correction(*row)

    def image_bytes(self, correction_id: int) -> bytes:
        row = self._db.execute("SELECT image FROM corrections WHERE id = ?", (correction_id,)).fetchone()
        if row is None:
            raise CorrectionError(f"there is no correction number {correction_id}")
        return bytes(row[0])

    def image(self, correction_id: int) -> Any:
        """The stored image as an RGB PIL image."""
        from PIL import Image

        with Image.open(io.BytesIO(self.image_bytes(correction_id))) as picture:
            return picture.convert("RGB")

    def items(self) -> Iterator[tuple[Correction, bytes]]:
        for correction in self.list():
            yield correction, self.image_bytes(correction.id)

    def fingerprint(self) -> str:
        """Changes whenever a correction is added, edited or deleted: a resumed personalization checks it."""
        row = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0), COALESCE(SUM(updated), 0) "
                               "FROM corrections").fetchone()
        return f"{row[0]}-{row[1]}-{row[2]:.6f}"

    # --- CSV ----------------------------------------------------------------------------------
    def export_csv(self, csv_path: str | os.PathLike[str]) -> int:
        """Write ``FILE.csv`` (columns ``image``, ``caption``, ``model_caption``, ``model``, ``time``) and
        the images into ``FILE_images/`` beside it, named by correction number; paths are relative."""
        target = Path(csv_path)
        folder = target.with_name(target.stem + "_images")
        folder.mkdir(parents=True, exist_ok=True)
        rows = 0
        tmp = target.with_name(target.name + ".part")
        with tmp.open("w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["image", "caption", "model_caption", "model", "time"])
            for correction, blob in self.items():
                name = f"{correction.id:05d}.jpg"
                (folder / name).write_bytes(blob)
                writer.writerow([f"{folder.name}/{name}", correction.caption, correction.model_caption,
                                 correction.model, time.strftime("%Y-%m-%dT%H:%M:%S",
                                                                 time.localtime(correction.created))])
                rows += 1
        os.replace(tmp, target)
        return rows

    def import_csv(self, csv_path: str | os.PathLike[str]) -> tuple[int, list[str]]:
        """Add a correction for each row of a CSV file with ``image`` and ``caption`` columns (paths
        relative to the CSV's folder). Returns (rows added, one message per row refused). A file too big,
        with too many rows or without those columns is refused whole."""
        source = Path(csv_path)
        try:
            size = source.stat().st_size
        except OSError as exc:
            raise CorrectionError(f"{source}: {exc.strerror or exc}") from None
        if size > MAX_CSV_BYTES:
            raise CorrectionError(f"{source} is {size // 1_000_000} MB; a corrections file may be at most "
                                  f"{MAX_CSV_BYTES // 1_000_000} MB")
        folder = source.resolve().parent
        with source.open(newline="", encoding="utf-8-sig") as f:
            try:
                rows = list(csv.DictReader(f))
            except (csv.Error, UnicodeDecodeError) as exc:
                raise CorrectionError(f"{source} is not a readable CSV file: {exc}") from None
        if len(rows) > MAX_CSV_ROWS:
            raise CorrectionError(f"{source} has {len(rows)} rows; at most {MAX_CSV_ROWS} can be imported")
        if rows and not {"image", "caption"} <= set(rows[0]):
            raise CorrectionError(f"{source} needs the columns 'image' and 'caption'")
        added, refused = 0, []
        for line, row in enumerate(rows, start=2):
            try:
                image = _inside(folder, row.get("image") or "")
                self.add(image, row.get("caption") or "", model_caption=row.get("model_caption") or "",
                         model=row.get("model") or "")
                added += 1
            except CorrectionError as exc:
                refused.append(f"line {line}: {exc}")
        return added, refused


def _inside(folder: Path, name: str) -> Path:
    """The image a CSV row names, refused unless it is a file inside the CSV's folder."""
    if not name.strip():
        raise CorrectionError("no image named")
    path = (folder / name).resolve()
    if not path.is_relative_to(folder):
        raise CorrectionError(f"{name!r} is outside the CSV file's folder; only images beside the CSV file "
                              "or in folders below it are imported")
    if not path.is_file():
        raise CorrectionError(f"{name!r}: no such file")
    if path.stat().st_size > MAX_IMAGE_BYTES:
        raise CorrectionError(f"{name!r} is more than {MAX_IMAGE_BYTES // 1_000_000} MB")
    return path
