"""Helpers for the server tests (no tests here): a real uvicorn server on a free 127.0.0.1 port, in a
thread, around an app built with a tiny all-heads checkpoint."""

from __future__ import annotations

import io
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image


@dataclass
class RunningServer:
    url: str
    app: Any
    server: Any  # uvicorn.Server
    thread: threading.Thread

    @property
    def state(self) -> Any:
        return self.app.state.blipkit

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=60.0, **kwargs)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=60)


def free_socket() -> socket.socket:
    """A listening-ready socket bound to a free port on 127.0.0.1 (handed to uvicorn: no port race)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def start_server(blip: Any = None, *, loader: Callable[[], Any] | None = None, wait_ready: bool = True,
                 on_fatal: Callable[[str], None] | None = None, **settings: Any) -> RunningServer:
    import uvicorn

    from blipkit.serve import ServeSettings, create_app
    from blipkit.serve.runner import uvicorn_config

    sock = free_socket()
    port = sock.getsockname()[1]
    settings.setdefault("drain_timeout_s", 30.0)
    config_settings = ServeSettings(host="127.0.0.1", port=port, **settings)
    app = create_app(config_settings, blip=blip, loader=loader, on_fatal=on_fatal)
    # log_config=None: uvicorn leaves logging alone, so its records reach pytest's caplog
    config = uvicorn_config(app, config_settings, log_level="info")
    config.log_config = None
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    running = RunningServer(f"http://127.0.0.1:{port}", app, server, thread)
    deadline = time.monotonic() + 60
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.01)
    if wait_ready:
        wait_for(lambda: httpx.get(running.url + "/readyz").status_code == 200)
    return running


@contextmanager
def serving(blip: Any = None, **kwargs: Any) -> Iterator[RunningServer]:
    running = start_server(blip, **kwargs)
    try:
        yield running
    finally:
        running.stop()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0, interval: float = 0.01) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def make_image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def png_bytes(seed: int = 0, size: tuple[int, int] = (48, 40)) -> bytes:
    out = io.BytesIO()
    make_image(seed, size).save(out, "PNG")
    return out.getvalue()


def build_tiny_model(path: Path) -> Any:
    """Load the tiny ``builtin`` checkpoint (all heads) at ``path``, building it first if needed."""
    import torch

    import blipkit
    from blipkit.testing import make_tiny_checkpoint

    torch.set_num_threads(1)
    if not (path / "config.json").exists():
        make_tiny_checkpoint("builtin", path)
    return blipkit.load(path)
