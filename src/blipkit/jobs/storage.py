"""Where a job reads and writes: local paths, and object stores (s3://, gs://...) through pyarrow.fs.

A job's inputs and outputs are named by strings. One with a ``scheme://`` (``s3://bucket/x``,
``gs://bucket/x``, ``file:///x``) goes to :func:`pyarrow.fs.FileSystem.from_uri`; anything else is a local
path. Every location is a :class:`Location`: a file system plus a path on it, so that readers and writers
never care which kind they have.
"""

from __future__ import annotations

import os
import posixpath
import re
import uuid
from dataclasses import dataclass

import pyarrow.fs as pafs

from blipkit.errors import JobError

_SCHEME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")
# http(s) names are image URLs that load_image fetches itself; they are never a job's input or output folder.
_WEB_RE = re.compile(r"^https?://", re.IGNORECASE)


def is_uri(name: str) -> bool:
    """True for ``scheme://...`` names other than http(s) URLs."""
    return bool(_SCHEME_RE.match(name)) and not _WEB_RE.match(name)


def display_name(name: str) -> str:
    """``name`` as output rows and messages show it: a URI loses its ``?query`` (endpoints, regions and
    possibly credentials, which pyarrow accepts there)."""
    return name.split("?", 1)[0] if is_uri(name) else name


@dataclass(frozen=True)
class Location:
    """A path on a file system. ``name`` is the string the user gave (or one derived from it), without a
    URI's ``?query``, which ``query`` keeps so that :attr:`uri` reopens the same file system."""

    name: str
    path: str
    fs: pafs.FileSystem
    query: str = ""

    @property
    def uri(self) -> str:
        """The full name to :func:`locate` this again, on any worker."""
        return self.name + self.query

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def exists(self) -> bool:
        return self.fs.get_file_info(self.path).type != pafs.FileType.NotFound

    def is_dir(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.Directory

    def is_file(self) -> bool:
        return self.fs.get_file_info(self.path).type == pafs.FileType.File

    def child(self, name: str) -> Location:
        """The location ``name`` inside this one (a folder)."""
        sep = os.sep if self.is_local else "/"
        joined = os.path.join(self.path, name) if self.is_local else posixpath.join(self.path, name)
        shown = self.name.rstrip("/" + sep) + "/" + name
        return Location(shown, joined, self.fs, self.query)

    def relative(self, entry: str) -> str:
        """``entry`` (a path read from a list or table next to this file) as a name a job can open.

        Absolute paths, URLs and URIs are kept; a relative path is taken relative to this file's folder.
        """
        if _WEB_RE.match(entry) or is_uri(entry) or os.path.isabs(os.path.expanduser(entry)):
            return entry
        if self.is_local:
            return os.path.join(os.path.dirname(self.name), entry) if os.path.dirname(self.name) else entry
        return posixpath.join(posixpath.dirname(self.name), entry) + self.query

    def read_bytes(self, limit: int | None = None) -> bytes:
        with self.fs.open_input_stream(self.path) as stream:
            return stream.read(limit) if limit is not None else stream.read()

    def write_atomic(self, data: bytes) -> None:
        """Write ``data`` so that readers see either no file or all of it, never a part.

        The bytes go to a hidden temporary file next to the target (``.<name>.<random>.tmp``), which is
        then renamed into place: ``os.replace`` locally, a server-side copy on object stores (pyarrow's
        ``move``), both of which publish the whole object or nothing. A writer killed before the rename
        leaves only the temporary file, which :func:`remove_temporaries` clears.
        """
        parent = posixpath.dirname(self.path) if not self.is_local else os.path.dirname(self.path)
        tmp_name = f".{posixpath.basename(self.path.replace(os.sep, '/'))}.{uuid.uuid4().hex[:12]}.tmp"
        if self.is_local:
            os.makedirs(parent, exist_ok=True)
            tmp = os.path.join(parent, tmp_name)
            try:
                with open(tmp, "wb") as f:
                    f.write(data)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            return
        self.fs.create_dir(parent, recursive=True)
        tmp = posixpath.join(parent, tmp_name)
        try:
            with self.fs.open_output_stream(tmp) as out:
                out.write(data)
            self.fs.move(tmp, self.path)
        finally:
            if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                self.fs.delete_file(tmp)

    def listdir(self) -> list[str]:
        """Names of the entries directly inside this folder (empty when it does not exist)."""
        if not self.is_dir():
            return []
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=False))
        return sorted(posixpath.basename(i.path.rstrip("/")) for i in infos)

    def walk_files(self) -> list[str]:
        """Every file under this folder as a path relative to it, sorted; hidden entries are skipped."""
        infos = self.fs.get_file_info(pafs.FileSelector(self.path, recursive=True))
        base = self.path.rstrip("/" + os.sep)
        found = []
        for info in infos:
            if info.type != pafs.FileType.File:
                continue
            rel = info.path[len(base):].lstrip("/" + os.sep).replace(os.sep, "/")
            if not any(part.startswith(".") for part in rel.split("/")):
                found.append(rel)
        return sorted(found, key=lambda r: tuple(r.split("/")))

    def delete(self) -> None:
        if self.is_file():
            self.fs.delete_file(self.path)


def remove_temporaries(folder: Location, prefix: str) -> None:
    """Delete the temporary files :meth:`Location.write_atomic` left in ``folder`` for names starting with
    ``prefix``: the attempts of writers that died before they committed."""
    for name in folder.listdir():
        if name.startswith("." + prefix) and name.endswith(".tmp"):
            folder.child(name).delete()


def locate(name: str | os.PathLike[str]) -> Location:
    """The :class:`Location` a user-given name refers to (a local path or a file-system URI)."""
    text = os.fspath(name)
    if is_uri(text):
        try:
            fs, path = pafs.FileSystem.from_uri(text)
        except (ValueError, OSError) as exc:  # pyarrow's ArrowInvalid is a ValueError
            raise JobError(f"cannot open {text!r}: {exc}") from exc
        if isinstance(fs, pafs.LocalFileSystem):
            return Location(path, path, fs)  # file:// names are plain paths from here on
        base, mark, query = text.partition("?")
        return Location(base, path, fs, mark + query)
    return Location(text, os.path.abspath(os.path.expanduser(text)), pafs.LocalFileSystem())
