"""Download a model from the Hugging Face hub, on the user's request only: sized first, resumable,
cancellable, verified, and never half-used.

Qt-free (the settings window wraps it in a thread with signals). The steps:

1. :func:`fetch_plan` asks the hub which files the model has, their sizes and checksums (the same listing
   as ``HfApi.model_info(files_metadata=True)``), pinned to one commit, so the user hears the exact size
   before anything is downloaded. Only configs, tokenizer files and safetensors weights are taken.
2. :class:`Downloader` fetches each file into ``models/.incomplete/<name>/<file>.part``. An interruption
   (a dropped connection, a cancel, a crash) keeps the part; the next run asks the server for the rest
   with an HTTP ``Range`` header, so no byte is fetched twice.
3. Each file is checked against the hub's size and checksum (sha256 for weights, the git blob id for
   small files) before it loses its ``.part``; a mismatch deletes the part and fails.
4. The manifest is written last and the folder is renamed to ``models/<name>`` in one step. The engine
   loads only folders with a manifest (:func:`assistant.model_store.is_complete`).

The server is ``HF_ENDPOINT`` (the hub's own variable) or the ``endpoint`` argument, so tests run it
against a local server. ``HF_HUB_OFFLINE=1`` refuses every download.
"""

from __future__ import annotations

import fnmatch
import hashlib
import http.client
import json
import logging
import os
import shutil
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from assistant import model_store

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://huggingface.co"
ALLOW_PATTERNS = model_store.ALLOW_PATTERNS
CHUNK = 256 * 1024
TIMEOUT_S = 30.0
RETRIES = 3  # a dropped connection is resumed this many times in one run before the run gives up
STATE_FILE = "download.json"


class DownloadError(Exception):
    """A download failed; the message is for the user."""


class ChecksumError(DownloadError):
    pass


class DownloadCancelled(DownloadError):
    pass


class OfflineError(DownloadError):
    pass


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None = None  # weights (LFS files): the hub's sha256 of the content
    git_sha1: str | None = None  # small files: the git blob id, sha1 of "blob <size>\0" + content


@dataclass
class Plan:
    """What one download fetches: the files of ``repo`` at one commit."""

    name: str
    repo: str
    revision: str
    endpoint: str
    files: list[RemoteFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    def url(self, file: RemoteFile) -> str:
        quoted = urllib.parse.quote(file.path)
        return f"{self.endpoint}/{self.repo}/resolve/{self.revision}/{quoted}"

    def to_json(self) -> dict:
        return {"name": self.name, "repo": self.repo, "revision": self.revision,
                "files": [asdict(f) for f in self.files]}


def endpoint(override: str | None = None) -> str:
    return (override or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _open(url: str, headers: dict[str, str] | None = None) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "blip-assistant", **(headers or {})})
    return urllib.request.urlopen(request, timeout=TIMEOUT_S)


def fetch_plan(name: str, *, endpoint_url: str | None = None) -> Plan:
    """Ask the hub for ``name``'s files, sizes and checksums (one small request, made when the user asks
    to download). Raises :class:`DownloadError` with words for the user."""
    choice = model_store.choice_for(name)
    if choice is None or choice.repo is None:
        raise DownloadError(f"{name!r} is not a model that can be downloaded")
    if _offline():
        raise OfflineError("downloads are off: HF_HUB_OFFLINE is set")
    base = endpoint(endpoint_url)
    url = f"{base}/api/models/{choice.repo}/revision/main?blobs=true"
    try:
        with _open(url) as response:
            info = json.loads(response.read().decode("utf-8"))
    except (OSError, ValueError, http.client.HTTPException) as exc:
        raise DownloadError(f"could not reach the model hub at {base} ({_reason(exc)})") from exc
    revision = info.get("sha") or "main"
    files = []
    for sibling in info.get("siblings") or []:
        path = sibling.get("rfilename", "")
        if "/" in path or not any(fnmatch.fnmatch(path, p) for p in ALLOW_PATTERNS):
            continue  # only top-level configs, tokenizer files and safetensors weights
        lfs = sibling.get("lfs") or {}
        size = lfs.get("size", sibling.get("size"))
        if not isinstance(size, int):
            raise DownloadError(f"the hub did not give the size of {path}; try again later")
        files.append(RemoteFile(path, size, sha256=lfs.get("sha256"),
                                git_sha1=None if lfs else sibling.get("blobId")))
    if not any(f.path == "config.json" for f in files) or not any(f.path.endswith(".safetensors")
                                                                  for f in files):
        raise DownloadError(f"{choice.repo} has no config.json and safetensors weights to download")
    return Plan(choice.name, choice.repo, revision, base, files)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


Progress = Callable[[int, int, str], None]  # (bytes done, bytes in all, the file being fetched)


class Downloader:
    """Fetch ``plan`` into the model store. :meth:`run` blocks (call it from a thread); ``cancel`` (an
    Event) stops it between chunks, keeping what was fetched for the next run."""

    def __init__(self, plan: Plan, *, progress: Progress | None = None,
                 cancel: threading.Event | None = None, retries: int = RETRIES) -> None:
        self.plan = plan
        self.progress = progress or (lambda done, total, file: None)
        self.cancel = cancel or threading.Event()
        self.retries = retries
        self.resumed_from: dict[str, int] = {}  # file -> the offset a Range request continued from
        self.staging = model_store.incomplete_dir(plan.name)
        self.target = model_store.models_dir() / plan.name

    def run(self) -> Path:
        if _offline():
            raise OfflineError("downloads are off: HF_HUB_OFFLINE is set")
        self._prepare_staging()
        done = sum(self._have(f) for f in self.plan.files)
        self.progress(done, self.plan.total_bytes, "")
        for file in self.plan.files:
            final = self.staging / file.path
            if final.is_file() and final.stat().st_size == file.size:
                continue  # verified before it lost its .part
            done = self._fetch(file, done)
        self._check_cancel()
        return self._install()

    # --- staging ------------------------------------------------------------------------------
    def _prepare_staging(self) -> None:
        """Keep an interrupted download's parts only when they belong to the same commit's files."""
        state = self.staging / STATE_FILE
        wanted = self.plan.to_json()
        if state.is_file():
            try:
                same = json.loads(state.read_text(encoding="utf-8")) == wanted
            except (OSError, ValueError):
                same = False
            if not same:
                log.info("a partial download of %s is for other files; starting again", self.plan.name)
                shutil.rmtree(self.staging)
        elif self.staging.exists():
            shutil.rmtree(self.staging)
        self.staging.mkdir(parents=True, exist_ok=True)
        state.write_text(json.dumps(wanted, indent=1), encoding="utf-8")

    def _have(self, file: RemoteFile) -> int:
        final, part = self.staging / file.path, self.staging / (file.path + ".part")
        if final.is_file():
            return final.stat().st_size
        return min(part.stat().st_size, file.size) if part.is_file() else 0

    def _check_cancel(self) -> None:
        if self.cancel.is_set():
            raise DownloadCancelled("the download was cancelled; what was fetched is kept to resume later")

    # --- one file -----------------------------------------------------------------------------
    def _fetch(self, file: RemoteFile, done: int) -> int:
        part = self.staging / (file.path + ".part")
        if part.is_file() and part.stat().st_size > file.size:
            part.unlink()  # longer than the file can be: not ours
        failures = 0
        while True:
            self._check_cancel()
            have = part.stat().st_size if part.is_file() else 0
            if have == file.size:
                break
            try:
                done = self._fetch_range(file, part, have, done)
            except DownloadCancelled:
                raise
            except (OSError, http.client.HTTPException) as exc:
                failures += 1
                done = sum(self._have(f) for f in self.plan.files)
                if isinstance(exc, urllib.error.HTTPError) and exc.code in (401, 403, 404):
                    raise DownloadError(f"the hub refused {file.path} ({_reason(exc)})") from exc
                if failures > self.retries:
                    raise DownloadError(
                        f"the connection broke while downloading {file.path} ({_reason(exc)}). What was "
                        "fetched is kept: downloading again continues from there.") from exc
                log.info("download of %s interrupted (%s); resuming", file.path, _reason(exc))
                time.sleep(min(2.0 ** failures, 10.0) * 0.25)
        self._verify(file, part)
        os.replace(part, self.staging / file.path)
        return done

    def _fetch_range(self, file: RemoteFile, part: Path, have: int, done: int) -> int:
        headers = {"Range": f"bytes={have}-"} if have else {}
        with _open(self.plan.url(file), headers) as response:
            if have and response.status == 206:
                start = _range_start(response.headers.get("Content-Range", ""))
                if start != have:
                    raise DownloadError(f"the server resumed {file.path} at the wrong place")
                self.resumed_from[file.path] = have
                mode = "ab"
            else:  # a server that ignores Range sends it all again: start the file over
                done -= have
                mode = "wb"
            with open(part, mode) as out:
                while True:
                    if self.cancel.is_set():
                        out.flush()
                        self._check_cancel()
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    self.progress(done, self.plan.total_bytes, file.path)
        if part.stat().st_size < file.size:
            raise http.client.IncompleteRead(b"", file.size - part.stat().st_size)
        return done

    def _verify(self, file: RemoteFile, part: Path) -> None:
        size = part.stat().st_size
        if size != file.size:
            part.unlink()
            raise ChecksumError(f"{file.path} is {size} bytes, but the hub says {file.size}; it was deleted")
        if file.sha256:
            digest, expected = hashlib.sha256(), file.sha256
        elif file.git_sha1:
            digest, expected = hashlib.sha1(f"blob {size}\0".encode()), file.git_sha1
        else:
            return
        with open(part, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        if digest.hexdigest() != expected.lower():
            part.unlink()
            raise ChecksumError(f"{file.path} does not match the hub's checksum: it was damaged on the way "
                                "and was deleted. Download again.")

    # --- the one step that makes it usable ----------------------------------------------------
    def _install(self) -> Path:
        (self.staging / STATE_FILE).unlink(missing_ok=True)
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        manifest = {**self.plan.to_json(), "downloaded_at": when}
        manifest_file = self.staging / model_store.MANIFEST
        with open(manifest_file, "w", encoding="utf-8") as f:
            json.dump(manifest, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        if self.target.exists():  # a newer download replaces the old one; never mixes with it
            old = self.staging.with_name(self.plan.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(self.target, old)
            os.replace(self.staging, self.target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.staging, self.target)
        return self.target


def _range_start(content_range: str) -> int | None:
    """The first byte of ``bytes 100-199/200``."""
    try:
        unit, rest = content_range.split(" ", 1)
        return int(rest.split("-", 1)[0]) if unit == "bytes" else None
    except ValueError:
        return None


class ProgressWords:
    """Progress in words at sensible intervals: every ``step`` percent, never twice within ``min_gap_s``
    seconds (a fast download is not read out percent by percent), and nothing for the last step (the
    "downloaded and verified" message follows at once)."""

    def __init__(self, step: int = 10, min_gap_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.step, self.min_gap_s, self.clock = step, min_gap_s, clock
        self._next = step
        self._last = float("-inf")

    def __call__(self, done: int, total: int) -> str | None:
        if total <= 0:
            return None
        percent = done * 100 // total
        if percent < self._next or percent >= 100 or self.clock() - self._last < self.min_gap_s:
            return None
        self._next = (percent // self.step + 1) * self.step
        self._last = self.clock()
        return (f"{percent} percent, {model_store.size_words(done)} of "
                f"{model_store.size_words(total)}.")
