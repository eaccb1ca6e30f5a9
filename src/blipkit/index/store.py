"""The on-disk image index: a LanceDB database folder with an ``images`` table, a ``failures`` table and
a metadata file recording which model made the embeddings.

Every write is a LanceDB ``merge_insert`` keyed on the file path. A LanceDB commit is atomic (a new
manifest appears or it does not), and an upsert of a row that is already there replaces it, so a
writer killed at any moment leaves a table that opens, and re-running the same writes cannot create
duplicates: that is what makes ``blipkit index add`` resumable.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from blipkit import defaults
from blipkit.errors import IndexModelMismatchError, IndexNotFoundError, SearchIndexError
from blipkit.index import ann
from blipkit.index.schema import (
    FAILURES_TABLE,
    FORMAT_VERSION,
    IMAGES_TABLE,
    KEY,
    META_FILE,
    STATE_COLUMNS,
    failures_schema,
    images_schema,
)

# Fingerprint keys that must agree for two sets of embeddings to be comparable. The model's *name* is
# left out on purpose: `builtin` and the folder it resolves to are the same model.
_COMPARED_KEYS = ("architecture", "image_size", "image_mean", "image_std", "embed_dim", "weights")
_IN_CHUNK = 500  # paths per `path IN (...)` filter: keeps SQL strings a sane size


@dataclass(frozen=True)
class FileState:
    """What the index knows about a file: enough to tell whether it changed."""

    hash: str
    size: int
    mtime_ns: int
    failed: bool = False


def sql_string(value: str) -> str:
    """A SQL string literal (single quotes doubled), for LanceDB filters."""
    return "'" + value.replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN ({', '.join(sql_string(v) for v in values)})"


def same_model(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """True when two checkpoint fingerprints describe the same embedding space."""
    return all(_jsonable(stored.get(k)) == _jsonable(current.get(k)) for k in _COMPARED_KEYS)


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value))


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` so that a crash leaves either the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


class ImageIndex:
    """An image index folder. Open it with :meth:`open`; :mod:`blipkit.index.builder` fills it and
    :mod:`blipkit.index.search` queries it."""

    def __init__(self, path: Path, db: Any, meta: dict[str, Any]) -> None:
        self.path = path
        self.db = db
        self.meta = meta
        self._images: Any = None
        self._failures: Any = None

    # --- opening ------------------------------------------------------------------------------
    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, fingerprint: dict[str, Any] | None = None,
        dim: int | None = None, create: bool = False,
    ) -> ImageIndex:
        """Open the index at ``path``.

        With ``create``, a missing index is created for the model ``fingerprint`` (embedding size
        ``dim``). With a ``fingerprint``, an index made by another model or preprocessing raises
        :class:`~blipkit.errors.IndexModelMismatchError`.
        """
        import lancedb

        path = Path(path)
        meta_file = path / META_FILE
        if meta_file.exists():
            try:
                meta = json.loads(meta_file.read_text())
            except (OSError, ValueError) as exc:
                raise SearchIndexError(f"{meta_file} is unreadable: {exc}") from exc
            if meta.get("format") != FORMAT_VERSION:
                raise SearchIndexError(f"{path} is an index of format {meta.get('format')!r}; this blipkit "
                                       f"reads format {FORMAT_VERSION}")
            if fingerprint is not None and not same_model(meta["fingerprint"], fingerprint):
                raise IndexModelMismatchError(_mismatch_message(path, meta["fingerprint"], fingerprint))
        elif create:
            if fingerprint is None or dim is None:
                raise ValueError("creating an index needs the model's fingerprint and embedding size")
            if path.exists() and (not path.is_dir() or any(path.iterdir())):
                raise SearchIndexError(f"{path} exists and is not a blipkit index; use a new folder")
            meta = {
                "format": FORMAT_VERSION, "fingerprint": _jsonable(fingerprint), "dim": int(dim),
                "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), "ann_rows": 0,
            }
            try:
                write_json_atomic(meta_file, meta)  # first, so that no table ever exists without it
            except OSError as exc:
                raise SearchIndexError(f"cannot create an index at {path}: {exc}") from exc
        else:
            raise IndexNotFoundError(f"no blipkit index at {path}; build one with "
                                     f"`blipkit index add DIR --db {path}`")
        return cls(path, lancedb.connect(str(path)), meta)

    @property
    def model_name(self) -> str:
        return str(self.meta["fingerprint"].get("model"))

    @property
    def dim(self) -> int:
        return int(self.meta["dim"])

    def save_meta(self) -> None:
        write_json_atomic(self.path / META_FILE, self.meta)

    # --- tables -------------------------------------------------------------------------------
    def _table(self, name: str, schema: pa.Schema, create: bool) -> Any:
        if name in self.db.list_tables().tables:
            return self.db.open_table(name)
        if not create:
            return None
        return self.db.create_table(name, schema=schema, exist_ok=True)

    def images(self, create: bool = False) -> Any:
        """The ``images`` table (None if nothing was ever indexed and ``create`` is False)."""
        if self._images is None:
            self._images = self._table(IMAGES_TABLE, images_schema(self.dim), create)
        return self._images

    def failures(self, create: bool = False) -> Any:
        if self._failures is None:
            self._failures = self._table(FAILURES_TABLE, failures_schema(), create)
        return self._failures

    def count(self) -> int:
        table = self.images()
        return 0 if table is None else int(table.count_rows())

    # --- reading ------------------------------------------------------------------------------
    @staticmethod
    def read(table: Any, columns: Sequence[str], where: str | None = None) -> pa.Table:
        """Some columns of the rows matching ``where`` (all rows when None)."""
        query = table.search()
        if where:
            query = query.where(where)
        return query.select(list(columns)).limit(None).to_arrow()

    def file_states(self) -> dict[str, FileState]:
        """Every known file (indexed or failed) and its size, mtime and hash."""
        states: dict[str, FileState] = {}
        failures = self.failures()
        if failures is not None:
            for row in self.read(failures, STATE_COLUMNS).to_pylist():
                states[row["path"]] = FileState(row["hash"], row["size"], row["mtime_ns"], failed=True)
        images = self.images()
        if images is not None:
            for row in self.read(images, STATE_COLUMNS).to_pylist():
                states[row["path"]] = FileState(row["hash"], row["size"], row["mtime_ns"])
        return states

    def rows_where(self, column: str, values: Iterable[str], columns: Sequence[str] | None = None
                   ) -> list[dict[str, Any]]:
        """Rows of ``images`` whose ``column`` is one of ``values``."""
        table = self.images()
        values = list(dict.fromkeys(values))
        if table is None or not values:
            return []
        columns = list(columns or table.schema.names)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(values), _IN_CHUNK):
            where = sql_in(column, values[start : start + _IN_CHUNK])
            rows.extend(self.read(table, columns, where).to_pylist())
        return rows

    def paths(self) -> list[str]:
        table = self.images()
        return [] if table is None else self.read(table, [KEY])[KEY].to_pylist()

    # --- writing ------------------------------------------------------------------------------
    def upsert(self, rows: Sequence[dict[str, Any]]) -> None:
        """Insert or replace image rows, keyed on path, in one atomic commit."""
        if rows:
            table = self.images(create=True)
            _merge(table, pa.Table.from_pylist(_last_per_key(rows), schema=table.schema))

    def record_failures(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            table = self.failures(create=True)
            _merge(table, pa.Table.from_pylist(_last_per_key(rows), schema=table.schema))

    def delete(self, paths: Iterable[str], *, failures: bool = False) -> int:
        """Delete rows by path from ``images`` (or ``failures``); returns how many were asked for."""
        table = self.failures() if failures else self.images()
        paths = list(dict.fromkeys(paths))
        if table is None or not paths:
            return 0
        for start in range(0, len(paths), _IN_CHUNK):
            table.delete(sql_in(KEY, paths[start : start + _IN_CHUNK]))
        return len(paths)

    # --- maintenance --------------------------------------------------------------------------
    def maintain(self) -> dict[str, Any]:
        """Bring the secondary indexes up to date: full-text on captions, B-trees on path and hash, the ANN
        vector index past :data:`~blipkit.defaults.ANN_INDEX_MIN_ROWS` rows; then compact small
        fragments. Every step is its own atomic commit, so a crash here costs nothing but the step."""
        from lancedb.index import FTS

        table = self.images()
        done: dict[str, Any] = {}
        rows = self.count()
        if table is None or rows == 0:
            return done
        names = {idx.name: idx for idx in table.list_indices()}
        if "caption_idx" not in names:
            table.create_index("caption", config=FTS(), replace=True)
            done["fts"] = "created"
        for column in (KEY, "hash"):  # B-trees for upserts by path and look-ups of known content
            if f"{column}_idx" not in names:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a deprecation notice of the older index API
                    table.create_scalar_index(column, replace=True)
                done[f"{column}_index"] = "created"
        ann_rows = int(self.meta.get("ann_rows") or 0)
        has_ann = ann.has_vector_index(table)
        if rows >= defaults.ANN_INDEX_MIN_ROWS and (not has_ann or rows >= 2 * max(ann_rows, 1)):
            # Built once, rebuilt when the table has doubled (its partitions no longer fit the data);
            # in between, optimize() adds new rows to the existing index.
            ann.create_vector_index(table, rows)
            self.meta["ann_rows"] = rows
            self.save_meta()
            done["ann"] = f"built for {rows} rows"
        table.optimize()
        done["optimized"] = True
        return done

    def stats(self) -> dict[str, Any]:
        """Counts, sizes and index state, for ``blipkit index stats``."""
        table = self.images()
        failures = self.failures()
        out: dict[str, Any] = {
            "db": str(self.path), "model": self.model_name, "dim": self.dim,
            "images": self.count(), "failed": 0 if failures is None else int(failures.count_rows()),
            "created_at": self.meta.get("created_at"),
        }
        if table is not None and out["images"]:
            sizes = self.read(table, ["size", "width", "height"])
            out["image_bytes"] = int(sum(v or 0 for v in sizes["size"].to_pylist()))
            out["version"] = int(table.version)
            out["indexes"] = sorted(f"{i.name} ({i.index_type})" for i in table.list_indices())
            out["ann_index"] = ann.has_vector_index(table)
        out["disk_bytes"] = sum(p.stat().st_size for p in self.path.rglob("*") if p.is_file())
        out["fingerprint"] = self.meta["fingerprint"]
        return out


def _merge(table: Any, data: pa.Table) -> None:
    table.merge_insert(KEY).when_matched_update_all().when_not_matched_insert_all().execute(data)


def _last_per_key(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per path (the last one): a merge source with duplicate keys is ambiguous."""
    return list({row[KEY]: row for row in rows}.values())


def _mismatch_message(path: Path, stored: dict[str, Any], current: dict[str, Any]) -> str:
    diffs = [f"{k}: index has {stored.get(k)!r}, model has {current.get(k)!r}"
             for k in _COMPARED_KEYS if _jsonable(stored.get(k)) != _jsonable(current.get(k))]
    return (f"{path} was built with model {stored.get('model')!r}, whose embeddings differ from "
            f"{current.get('model')!r} ({'; '.join(diffs)}). Use the index's model (--model "
            f"{stored.get('model')}) or build a new index with --db NEW_FOLDER.")
