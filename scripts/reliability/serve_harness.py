"""A real ``blipkit serve`` process for the reliability checks: tiny model, a small index, an API key.

:func:`prepare` builds what the server needs in a folder (a tiny all-heads checkpoint, a few photos and an
index of them, a key file, a moderation policy, and a canary file next to the photos that no request may
ever read). :class:`ServerProcess` starts ``blipkit serve`` on a free loopback port under an audit hook
that logs every file the server opens, so that a test can tell whether a request reached the file system;
it also reads the server's RSS.

Used by scripts/reliability/serve_fuzz.py, scripts/reliability/serve_soak.py and
tests/test_reliability_serve.py.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

KEY = "rel-KEY-0123456789abcdef"
POLICY = """\
method: itc
categories:
  - name: animal
    positive: ["a photo of a dog", "a photo of a cat"]
    negative: ["a photo of a car", "a photo of a table"]
    threshold: 0.5
"""

# Runs the CLI with an audit hook (PEP 578) that appends every path opened by the process to a log.
# The log file is opened before the hook is installed, and written with os.write, so that the hook
# never re-enters itself.
_WRAPPER = r"""
import os, sys
log = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
del sys.argv[1]
def hook(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes)):
        try:
            os.write(log, os.fsencode(args[0]) + b"\n")
        except Exception:
            pass
sys.addaudithook(hook)
from blipkit.cli.main import app
app(prog_name="blipkit")
"""


@dataclass
class Fixture:
    root: Path
    model: Path
    photos: Path
    db: Path
    key_file: Path
    policy: Path
    canary: Path  # an image outside the index: no request may read it

    @property
    def key(self) -> str:
        return KEY


def _png(path: Path, seed: int, size: tuple[int, int] = (48, 40)) -> None:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)


def prepare(root: Path, n_photos: int = 4) -> Fixture:
    """Build the model, photos, index, key file, policy and canary under ``root`` (once; reused after)."""
    import blipkit
    from blipkit.index import add_images, open_for
    from blipkit.testing import make_tiny_checkpoint

    root.mkdir(parents=True, exist_ok=True)
    model = root / "model"
    if not (model / "config.json").exists():
        make_tiny_checkpoint("builtin", model)
    photos = root / "photos"
    photos.mkdir(exist_ok=True)
    for i in range(n_photos):
        if not (photos / f"p{i}.png").exists():
            _png(photos / f"p{i}.png", i)
    canary = root / "secret-canary.png"
    _png(canary, 99)
    db = root / "index"
    if not db.exists():
        blip = blipkit.load(model)
        from blipkit.tasks.generation import GenerationSettings

        add_images(open_for(blip, str(db)), blip, [str(photos)],
                   settings=GenerationSettings(decoding="greedy", max_new_tokens=5))
    key_file = root / "api-key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    policy = root / "policy.yaml"
    policy.write_text(POLICY)
    return Fixture(root, model, photos, db, key_file, policy, canary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """``blipkit serve`` in its own process, on 127.0.0.1 only."""

    def __init__(self, fixture: Fixture, *, max_body_mb: float = 1.0, api_key: bool = True,
                 extra: tuple[str, ...] = (), ready_timeout_s: float = 300.0) -> None:
        self.fixture = fixture
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.opened_log = fixture.root / f"opened-{self.port}.log"
        self.output = fixture.root / f"server-{self.port}.log"
        argv = ["serve", "--model", str(fixture.model), "--db", str(fixture.db),
                "--policy", str(fixture.policy),
                "--host", "127.0.0.1", "--port", str(self.port), "--max-body-mb", str(max_body_mb),
                "--threads", "1", "--log-level", "warning", *extra]
        if api_key:
            argv += ["--api-key-file", str(fixture.key_file)]
        env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
        with self.output.open("wb") as out:
            self.proc = subprocess.Popen([sys.executable, "-c", _WRAPPER, str(self.opened_log), *argv],
                                         stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=env, cwd=fixture.root)
        self.headers = {"X-API-Key": KEY} if api_key else {}
        self._wait_ready(ready_timeout_s)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _wait_ready(self, timeout: float) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"blipkit serve exited with {self.proc.returncode}:\n{self.log()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"blipkit serve was not ready after {timeout:g} s:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def log(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def rss_mb(self) -> float:
        import psutil

        return psutil.Process(self.pid).memory_info().rss / 2**20

    def opened_mark(self) -> int:
        """A bookmark in the log of opened files: :meth:`opened_since` lists what was opened after it."""
        return self.opened_log.stat().st_size if self.opened_log.exists() else 0

    def opened_since(self, mark: int) -> list[str]:
        with self.opened_log.open("rb") as f:
            f.seek(mark)
            return [line.decode("utf-8", "backslashreplace") for line in f.read().splitlines() if line]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end in ``timeout`` seconds."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
