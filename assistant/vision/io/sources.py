"""Expand what a user typed (folders, globs, ``@list.txt`` files) into a flat list of images.

Expansion never fails on a bad item: a path that does not exist, a glob that matches nothing or
an unreadable list file is passed through unchanged, so that loading it later reports one
per-item ``ImageNotFoundError`` while the rest of the batch goes on.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from assistant.vision import defaults
from assistant.vision.io.images import ImageInput, is_url

__all__ = ["expand_sources"]

_GLOB_CHARS = frozenset("*?[")


def expand_sources(
    items: Iterable[ImageInput],
    *,
    recursive: bool = True,
    extensions: Iterable[str] = defaults.IMAGE_EXTENSIONS,
) -> list[ImageInput]:
    """Expand folders, glob patterns and ``@list`` files in ``items``, keeping their order.

    - A folder becomes the image files inside it (those whose extension is in ``extensions``,
      compared case-insensitively), sorted, descending into sub-folders when ``recursive``;
      hidden files and folders (name starting with ``.``) are skipped.
    - A string containing ``*``, ``?`` or ``[`` that is not an existing path is a glob pattern
      (``**`` matches any depth); its matches are sorted, matched folders are expanded as above
      and matched files are kept when their extension is in ``extensions``. A file matched again
      by a later glob is not repeated.
    - ``@path`` names a text file with one path, URL, folder or glob per line; blank lines and
      lines starting with ``#`` are skipped, and relative paths are taken relative to the list
      file's folder. Lists do not nest.
    - URLs, bytes, images, arrays, existing files and paths that do not exist pass through as given.

    Expanded files are returned as path strings. A single source given instead of a list of them
    (a string, path, bytes, image or array: each of them iterable) is taken as a list of one.
    """
    if isinstance(items, str | os.PathLike | bytes | bytearray | memoryview | Image.Image | np.ndarray):
        items = [items]
    suffixes = _normalise_extensions(extensions)
    globbed: set[str] = set()
    result: list[ImageInput] = []
    for item in items:
        if isinstance(item, str) and item.startswith("@") and not os.path.exists(item):
            list_file = Path(item[1:]).expanduser()
            entries = _read_list(list_file) if list_file.is_file() else None
            if entries is not None:
                for entry in entries:
                    result.extend(_expand_one(entry, recursive, suffixes, globbed))
                continue
        result.extend(_expand_one(item, recursive, suffixes, globbed))
    return result


def _expand_one(
    item: ImageInput, recursive: bool, suffixes: frozenset[str], globbed: set[str]
) -> list[ImageInput]:
    if not isinstance(item, str | os.PathLike) or is_url(item):
        return [item]
    try:
        path = Path(os.fsdecode(item)).expanduser()
        if path.is_dir():
            return list(_walk(path, recursive, suffixes))
        if path.exists():
            return [item]
    except (OSError, ValueError):
        # A name too long or with a NUL byte is nothing to expand; loading it reports why.
        return [item]
    if isinstance(item, str) and _GLOB_CHARS.intersection(item):
        matches = _expand_glob(item, recursive, suffixes, globbed)
        if matches is not None:
            return matches
    return [item]


def _expand_glob(
    pattern: str, recursive: bool, suffixes: frozenset[str], globbed: set[str]
) -> list[ImageInput] | None:
    """The new image files ``pattern`` matches; None when it matches no image file at all."""
    found: list[ImageInput] = []
    matched = False
    for match in sorted(glob.glob(os.path.expanduser(pattern), recursive=True)):
        path = Path(match)
        if path.is_dir():
            candidates: Iterable[str] = _walk(path, recursive, suffixes)
        elif path.suffix.lower() in suffixes:
            candidates = [match]
        else:
            continue
        for candidate in candidates:
            matched = True
            # Overlapping globs ("*.jpg" then "a*") would list a file twice; each file once.
            if candidate not in globbed:
                globbed.add(candidate)
                found.append(candidate)
    return found if matched else None


def _walk(root: Path, recursive: bool, suffixes: frozenset[str]) -> Iterator[str]:
    """Image files under ``root``, sorted by their path components, hidden entries skipped."""
    found: list[tuple[tuple[str, ...], str]] = []
    for folder, dirnames, filenames in os.walk(root):
        # Pruning dirnames in place stops os.walk from entering hidden folders at all.
        dirnames[:] = [] if not recursive else [d for d in dirnames if not d.startswith(".")]
        relative = Path(folder).relative_to(root).parts
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in suffixes:
                found.append(((*relative, name), os.path.join(folder, name)))
    found.sort()
    return (path for _, path in found)


def _read_list(list_file: Path) -> list[str] | None:
    """The entries of a list file, relative paths anchored at the list file's folder.

    None when the file cannot be read as text: the ``@`` item then passes through as one bad item.
    """
    try:
        text = list_file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError):
        return None
    base = list_file.parent
    entries: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if is_url(line) or os.path.isabs(os.path.expanduser(line)):
            entries.append(line)
        else:
            entries.append(os.path.join(base, line) if str(base) != "." else line)
    return entries


def _normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    if isinstance(extensions, str):
        extensions = [extensions]
    return frozenset(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
