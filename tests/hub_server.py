"""A local stand-in for the Hugging Face hub, for download tests (there is no network here, and tests
must not use it anyway): the model-info API with file metadata, and ``resolve`` URLs with HTTP Range.

It logs every request (path, Range header, bytes sent) so a test can show what was fetched, and it can
drop the connection part-way through a file, or lie about a checksum, to test resuming and refusals.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

LFS_SUFFIXES = (".safetensors", ".bin")


@dataclass
class Sent:
    path: str
    range: str | None
    status: int
    bytes: int


@dataclass
class FakeHub:
    repos: dict[str, dict[str, bytes]]  # repo id -> file name -> content
    url: str = ""
    log: list[Sent] = field(default_factory=list)
    drop_after: dict[str, int] = field(default_factory=dict)  # file name -> bytes sent before a drop (once)
    wrong_sha: set[str] = field(default_factory=set)  # files whose advertised checksum is wrong
    ignore_range: bool = False
    slow_s: float = 0.0  # a pause per chunk, so a test can cancel mid-file
    redirect: bool = False  # weights answered with a 302 to /cdn/..., as the real hub sends LFS files
    revision: str = "0123456789abcdef0123456789abcdef01234567"

    def info(self, repo: str) -> dict:
        siblings = []
        for name, data in self.repos[repo].items():
            entry: dict = {"rfilename": name, "size": len(data)}
            if name.endswith(LFS_SUFFIXES):
                sha = hashlib.sha256(data).hexdigest()
                if name in self.wrong_sha:
                    sha = "0" * 64
                entry["lfs"] = {"sha256": sha, "size": len(data), "pointerSize": 134}
                entry["blobId"] = "f" * 40
            else:
                blob = hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()
                entry["blobId"] = "0" * 40 if name in self.wrong_sha else blob
            siblings.append(entry)
        return {"id": repo, "sha": self.revision, "siblings": siblings}

    def sent_bytes(self, name: str) -> int:
        return sum(s.bytes for s in self.log if s.path.endswith("/" + name))


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


@contextlib.contextmanager
def fake_hub(repos: dict[str, dict[str, bytes]], **options) -> Iterator[FakeHub]:
    hub = FakeHub(repos, **options)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/models/"):
                repo = path.removeprefix("/api/models/").split("/revision/")[0]
                if repo not in hub.repos:
                    return self._plain(404, b"no such repo")
                body = json.dumps(hub.info(repo)).encode()
                hub.log.append(Sent(path, None, 200, len(body)))
                return self._plain(200, body, "application/json")
            if path.startswith("/cdn/"):
                repo, _, name = path.removeprefix("/cdn/").rpartition("/")
                with contextlib.suppress(ConnectionError):
                    self._send_file(path, name, hub.repos[repo][name])
                return None
            repo, sep, rest = path.lstrip("/").partition("/resolve/")
            if hub.redirect and rest.endswith(LFS_SUFFIXES):
                hub.log.append(Sent(path, self.headers.get("Range"), 302, 0))
                self.send_response(302)
                self.send_header("Location", f"/cdn/{repo}/{rest.split('/', 1)[1]}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            name = rest.split("/", 1)[1] if "/" in rest else ""
            if not sep or repo not in hub.repos or name not in hub.repos[repo]:
                return self._plain(404, b"not found")
            with contextlib.suppress(ConnectionError):  # the client cancelled: nothing to report
                self._send_file(path, name, hub.repos[repo][name])

        def _plain(self, status: int, body: bytes, kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _send_file(self, path: str, name: str, data: bytes) -> None:
            asked = self.headers.get("Range")
            start = 0
            if asked and not hub.ignore_range:
                start = int(asked.removeprefix("bytes=").split("-", 1)[0])
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Accept-Ranges", "bytes")
            self.end_headers()
            limit = hub.drop_after.pop(name, None)
            if limit is not None:
                limit = max(0, limit - start)
            sent = 0
            for i in range(0, len(body), 65536):
                piece = body[i:i + 65536]
                if limit is not None and sent + len(piece) > limit:
                    piece = piece[:limit - sent]
                    self.wfile.write(piece)
                    sent += len(piece)
                    self.wfile.flush()
                    self.close_connection = True
                    hub.log.append(Sent(path, asked, 206 if start else 200, sent))
                    return  # the connection drops mid-file
                self.wfile.write(piece)
                sent += len(piece)
                if hub.slow_s:
                    import time

                    time.sleep(hub.slow_s)
            hub.log.append(Sent(path, asked, 206 if start else 200, sent))

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    hub.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield hub
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
