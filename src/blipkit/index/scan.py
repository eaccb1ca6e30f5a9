"""Find the image files to index and tell which of them changed since the last run."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from blipkit import defaults
from blipkit.io import expand_sources, is_url


@dataclass(frozen=True)
class FileInfo:
    path: str  # absolute, symlinks resolved: the index's key
    size: int
    mtime_ns: int


def content_hash(data: bytes) -> str:
    """blake2b-256 of a file's bytes: identifies the same image under another name or after a touch."""
    return hashlib.blake2b(data, digest_size=32).hexdigest()


def find_images(items: Iterable[str | os.PathLike[str]]) -> tuple[list[FileInfo], list[str]]:
    """Image files under folders/globs/files ``items`` (see :func:`blipkit.io.expand_sources`), each
    once, and the items that are not local files (missing paths, URLs), which an index cannot track."""
    found: dict[str, FileInfo] = {}
    missing: list[str] = []
    for source in expand_sources(list(items)):
        if not isinstance(source, str | os.PathLike) or is_url(source):
            missing.append(str(source))
            continue
        try:
            path = Path(source).resolve()
            st = path.stat()
        except (OSError, ValueError):
            missing.append(os.fsdecode(source))
            continue
        if not path.is_file():
            missing.append(os.fsdecode(source))
            continue
        found.setdefault(str(path), FileInfo(str(path), st.st_size, st.st_mtime_ns))
    return list(found.values()), missing


def read_bytes(info: FileInfo) -> bytes:
    """The file's bytes; an :class:`OSError` for a file that vanished or is over the size limit."""
    if info.size > defaults.MAX_IMAGE_BYTES:
        raise OSError(f"{info.size} bytes is more than the limit of {defaults.MAX_IMAGE_BYTES}")
    with open(info.path, "rb") as f:
        return f.read(defaults.MAX_IMAGE_BYTES + 1)
