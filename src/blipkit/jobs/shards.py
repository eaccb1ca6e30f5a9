"""Split a job's input into deterministic shards: the unit of work, of output and of resumption.

The same input always gives the same shards, in the same order, so that a shard's output file
(``part-<index>``) means the same images in every run: that is what lets a re-run skip finished shards
and still produce, row for row, the output of an uninterrupted run.

Three kinds of shard:

- ``items``: a list of image sources (paths, URLs, ``s3://`` objects), from a folder, a glob, a list file
  or a JSONL file: the sources are listed in input order (folders and globs sorted) and cut into runs of
  ``shard_size``.
- ``table``: a row range of a Parquet file, read by the worker itself (the image column may hold paths,
  URLs or the encoded image bytes).
- ``tar``: one WebDataset-style tar file, streamed by the worker; a tar is already the shard its writer
  meant it to be.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from blipkit import defaults
from blipkit.data.columns import CAPTION_COLUMNS, IMAGE_COLUMNS, pick_column
from blipkit.errors import DataError
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.storage import Location, display_name, locate

# Columns that may name an image, best first: the dataset loaders' names, then URL columns (img2dataset,
# LAION) and WebDataset's extension-named binary columns.
IMAGE_SOURCE_COLUMNS: tuple[str, ...] = (*IMAGE_COLUMNS, "url", "image_url", "URL", "jpg", "png", "webp")
TEXT_COLUMNS: tuple[str, ...] = (*CAPTION_COLUMNS, "TEXT", "alt", "txt")
KEY_COLUMN = "key"
TABLE_SUFFIXES = (".parquet", ".jsonl")
TAR_SUFFIX = ".tar"
LIST_SUFFIXES = (".txt", ".lst", ".list")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")


@dataclass(frozen=True)
class Item:
    """One image to process: where it is, the key its output row carries, and its text (CapFilt)."""

    source: str
    key: str
    text: str | list[str] | None = None


@dataclass(frozen=True)
class Shard:
    """A deterministic slice of the input. ``kind`` says which of the other fields apply."""

    index: int
    kind: str  # items | table | tar
    items: tuple[Item, ...] = ()
    file: str = ""
    start: int = 0
    stop: int = 0
    # Facts about the file (size, rows) that identify the input in the job's digest.
    stamp: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def name(self) -> str:
        return f"part-{self.index:05d}"

    @property
    def size(self) -> int | None:
        """Images in the shard, when known before reading it (a tar's count is not)."""
        if self.kind == "items":
            return len(self.items)
        if self.kind == "table":
            return self.stop - self.start
        return None

    def to_json(self) -> str:
        return json.dumps({
            "index": self.index, "kind": self.kind, "items": [[i.source, i.key, i.text] for i in self.items],
            "file": self.file, "start": self.start, "stop": self.stop, "stamp": self.stamp,
        })

    @classmethod
    def from_json(cls, text: str) -> Shard:
        d = json.loads(text)
        items = tuple(Item(s, k, t) for s, k, t in d["items"])
        return cls(d["index"], d["kind"], items, d["file"], d["start"], d["stop"], d.get("stamp", {}))


def plan_shards(spec: JobSpec) -> list[Shard]:
    """The shards of ``spec.input``, in order. Raises DataError when the input holds nothing to run on."""
    names = expand_braces(spec.input)
    # A URI's ?query (endpoint, region) is no part of the file name, and its "?" is no wildcard.
    shown = display_name(names[0])
    if len(names) > 1 or (shown.lower().endswith(TAR_SUFFIX) and not _has_glob(shown)):
        return _plan_files(spec, [locate(n) for n in names])
    name = names[0]
    loc = locate(name)
    if name.startswith("@") and not loc.exists():
        return _plan_items(spec, _list_file(locate(name[1:])))
    if loc.is_dir():
        return _plan_folder(spec, loc)
    if loc.is_file():
        lower = shown.lower()
        if lower.endswith(LIST_SUFFIXES):
            return _plan_items(spec, _list_file(loc))
        if lower.endswith(TABLE_SUFFIXES) or lower.endswith(TAR_SUFFIX):
            return _plan_files(spec, [loc])
        return _plan_items(spec, [Item(name, shown)])
    if _has_glob(shown):
        if loc.is_local:
            matches = sorted(glob.glob(os.path.expanduser(loc.name), recursive=True))
        else:
            matches = _remote_glob(loc)
        containers = [m for m in matches if display_name(m).lower().endswith((*TABLE_SUFFIXES, TAR_SUFFIX))]
        if containers and len(containers) == len(matches):
            return _plan_files(spec, [locate(m) for m in containers])
        if loc.is_local:
            from blipkit.io import expand_sources

            # expand_sources hands back a pattern that matched nothing as it was: that is no image.
            found = [str(s) for s in expand_sources([loc.name])]
            return _plan_items(spec, [Item(s, s) for s in found if os.path.exists(s)])
        images = [m for m in matches if display_name(m).lower().endswith(defaults.IMAGE_EXTENSIONS)]
        return _plan_items(spec, [Item(m, display_name(m)) for m in images])
    raise DataError(f"input not found: {shown}")


def input_digest(shards: Iterable[Shard]) -> str:
    """A fingerprint of the input as cut into shards: a resumed job must see the same one."""
    h = hashlib.sha256()
    for shard in shards:
        h.update(shard.to_json().encode())
        h.update(b"\n")
    return h.hexdigest()[:32]


def expand_braces(name: str) -> list[str]:
    """WebDataset's shard notation: ``shards-{000..099}.tar`` names 100 files (zero-padding kept)."""
    match = _BRACES.search(name)
    if not match:
        return [name]
    first, last = match.group(1), match.group(2)
    width = len(first)
    head, tail = name[: match.start()], name[match.end():]
    step = 1 if int(last) >= int(first) else -1
    out: list[str] = []
    for n in range(int(first), int(last) + step, step):
        out.extend(expand_braces(f"{head}{n:0{width}d}{tail}"))
    return out


# --- planners ---------------------------------------------------------------------------------------------


def _chunked(spec: JobSpec, items: list[Item], start_index: int = 0) -> list[Shard]:
    size = spec.shard_size
    return [Shard(start_index + n, "items", tuple(items[i : i + size]))
            for n, i in enumerate(range(0, len(items), size))]


def _plan_items(spec: JobSpec, items: list[Item]) -> list[Shard]:
    if not items:
        raise DataError(f"no images found in {spec.input}")
    return _chunked(spec, items)


def _plan_folder(spec: JobSpec, folder: Location) -> list[Shard]:
    files = folder.walk_files()
    lower = [f.lower() for f in files]
    images = [f for f, lo in zip(files, lower, strict=True) if lo.endswith(defaults.IMAGE_EXTENSIONS)]
    if images:
        if folder.is_local:
            from blipkit.io import expand_sources

            found = [str(s) for s in expand_sources([folder.name])]
        else:
            return _plan_items(spec, [Item(folder.child(f).uri, folder.child(f).name) for f in images])
        return _plan_items(spec, [Item(s, s) for s in found])
    containers = [f for f, lo in zip(files, lower, strict=True) if lo.endswith((*TABLE_SUFFIXES, TAR_SUFFIX))]
    if not containers:
        raise DataError(f"no images, tar shards, Parquet or JSONL files found in {folder.name}")
    return _plan_files(spec, [folder.child(f) for f in containers])


def _plan_files(spec: JobSpec, files: list[Location]) -> list[Shard]:
    """Tar shards, Parquet row ranges and JSONL items, numbered in the order the files are given."""
    shards: list[Shard] = []
    for loc in files:
        if not loc.is_file():
            raise DataError(f"input not found: {loc.name}")
        lower = loc.name.lower()
        if lower.endswith(TAR_SUFFIX):
            size = loc.fs.get_file_info(loc.path).size
            shards.append(Shard(len(shards), "tar", file=loc.uri, stamp={"bytes": size}))
        elif lower.endswith(".parquet"):
            shards.extend(_parquet_shards(spec, loc, len(shards)))
        elif lower.endswith(".jsonl"):
            items = list(_jsonl_items(spec, loc))
            if items:
                shards.extend(_chunked(spec, items, len(shards)))
        else:
            raise DataError(f"{loc.name}: expected .tar, .parquet or .jsonl files")
    if not shards:
        raise DataError(f"no images found in {spec.input}")
    return shards


def _parquet_shards(spec: JobSpec, loc: Location, first: int) -> list[Shard]:
    import pyarrow.parquet as pq

    try:
        with loc.fs.open_input_file(loc.path) as f:
            meta = pq.ParquetFile(f)
            names = meta.schema_arrow.names
            rows = meta.metadata.num_rows
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {loc.name} as Parquet: {exc}") from exc
    table_columns(spec, names, loc.name)  # fail now, not in a worker
    stamp = {"rows": rows, "bytes": loc.fs.get_file_info(loc.path).size}
    return [Shard(first + n, "table", file=loc.uri, start=start, stop=min(start + spec.shard_size, rows),
                  stamp=stamp)
            for n, start in enumerate(range(0, rows, spec.shard_size))]


def table_columns(spec: JobSpec, names: Iterable[str], source: str) -> tuple[str, str | None, str | None]:
    """(image column, text column or None, key column or None) of a table input."""
    names = list(names)
    image = pick_column(names, IMAGE_SOURCE_COLUMNS, what="image path or URL", source=source,
                        explicit=spec.image_column, option="--image-column")
    text = None
    if spec.op == "capfilt" or spec.text_column:
        text = pick_column(names, TEXT_COLUMNS, what="text", source=source, explicit=spec.text_column,
                           option="--text-column")
    key = KEY_COLUMN if KEY_COLUMN in names and KEY_COLUMN not in (image, text) else None
    return image, text, key


def _jsonl_items(spec: JobSpec, loc: Location) -> Iterator[Item]:
    try:
        lines = loc.read_bytes().decode("utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {loc.name}: {exc}") from exc
    columns: tuple[str, str | None, str | None] | None = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{loc.name} line {number} is not valid JSON: {exc}") from exc
        if not isinstance(row, dict):
            raise DataError(f"{loc.name} line {number} is not a JSON object")
        if columns is None:
            columns = table_columns(spec, row.keys(), loc.name)
        image_col, text_col, key_col = columns
        value = row.get(image_col)
        if not isinstance(value, str) or not value:
            raise DataError(f"{loc.name} line {number}: {image_col!r} must be a path or URL string")
        source = loc.relative(value)
        text = row.get(text_col) if text_col else None
        key = str(row[key_col]) if key_col and row.get(key_col) is not None else display_name(value)
        if text is not None:
            text = [str(t) for t in text] if isinstance(text, list) else str(text)
        yield Item(source, key, text)


def _list_file(loc: Location) -> list[Item]:
    """Entries of a list file, one path, URL, folder or glob a line (local folders and globs expanded)."""
    if loc.is_local:
        from blipkit.io import expand_sources

        if not loc.is_file():
            raise DataError(f"list file not found: {loc.name}")
        return [Item(str(s), str(s)) for s in expand_sources(["@" + loc.name])]
    try:
        text = loc.read_bytes().decode("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read list file {loc.name}: {exc}") from exc
    entries = [line.strip() for line in text.splitlines()]
    entries = [e for e in entries if e and not e.startswith("#")]
    return [Item(loc.relative(e), display_name(loc.relative(e))) for e in entries]


def _has_glob(name: str) -> bool:
    return any(ch in name for ch in "*?[")


def _remote_glob(loc: Location) -> list[str]:
    """Matches of a glob on an object store: the part before the first wildcard is listed, then filtered."""
    import fnmatch

    path = loc.path
    cut = min(i for i, ch in enumerate(path) if ch in "*?[")
    base = path[: path.rfind("/", 0, cut) + 1] if "/" in path[:cut] else ""
    root = Location(loc.name, base.rstrip("/"), loc.fs, loc.query)
    scheme = loc.name.split("://", 1)[0] + "://"
    out = []
    for rel in root.walk_files():
        full = f"{base}{rel}"
        if fnmatch.fnmatchcase(full, path):
            out.append(scheme + full + loc.query)
    return sorted(out)
