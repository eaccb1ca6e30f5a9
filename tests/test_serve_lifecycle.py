"""A server's life: /healthz at once, /readyz when the model is loaded (or never, if it fails), graceful
shutdown that finishes the requests in flight, and ``blipkit serve`` as a real process stopped by SIGTERM."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from test_serve_support import build_tiny_model, png_bytes, start_server, wait_for

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("serve_model") / "builtin"
    build_tiny_model(path)
    return path


@pytest.fixture(scope="module")
def blip(model_dir: Path) -> Any:
    return build_tiny_model(model_dir)


def caption_body(seed: int) -> dict[str, Any]:
    return {"images": [{"base64": base64.b64encode(png_bytes(seed)).decode()}], "num_beams": 2}


def test_ready_only_once_the_model_is_loaded(blip: Any) -> None:
    release = threading.Event()

    def slow_loader() -> Any:
        release.wait(30)
        return blip

    running = start_server(loader=slow_loader, wait_ready=False)
    try:
        with running.client() as c:
            assert c.get("/healthz").status_code == 200
            r = c.get("/readyz")
            assert r.status_code == 503 and r.json()["ready"] is False
            r = c.post("/v1/caption", json=caption_body(0))
            assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
            assert r.headers["retry-after"] == "5"
            assert "blipkit_model_ready 0.0" in c.get("/metrics").text
            release.set()
            wait_for(lambda: c.get("/readyz").status_code == 200)
            assert c.post("/v1/caption", json=caption_body(0)).status_code == 200
    finally:
        release.set()
        running.stop()


def test_a_model_that_fails_to_load_is_reported(tmp_path: Path) -> None:
    fatal: list[str] = []
    running = start_server(wait_ready=False, on_fatal=fatal.append, model=str(tmp_path / "no-such-model"))
    try:
        with running.client() as c:
            wait_for(lambda: bool(fatal))
            r = c.get("/readyz")
            assert r.status_code == 503 and "no-such-model" in r.json()["error"]
            r = c.post("/v1/caption", json=caption_body(0))
            assert r.status_code == 503 and "failed to load" in r.json()["error"]["message"]
    finally:
        running.stop()
    assert "no-such-model" in fatal[0]


def test_a_bad_policy_stops_the_server(blip: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("categories: []\n")
    fatal: list[str] = []
    running = start_server(blip, wait_ready=False, on_fatal=fatal.append, policy=policy)
    try:
        wait_for(lambda: bool(fatal))
        assert "PolicyError" in fatal[0] and "categories" in fatal[0]
    finally:
        running.stop()


def test_shutdown_finishes_requests_in_flight(blip: Any) -> None:
    # max_batch 1: the requests queue up behind each other, so most are still waiting at shutdown
    running = start_server(blip, max_batch=1, batch_wait_ms=0.0)
    n = 6

    def one(seed: int) -> int:
        with httpx.Client(base_url=running.url, timeout=60) as c:
            return c.post("/v1/caption", json=caption_body(seed)).status_code

    with cf.ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(one, i) for i in range(n)]
        wait_for(lambda: running.state.batcher.depth >= n - 1 or all(f.done() for f in futures))
        assert not all(f.done() for f in futures)
        running.server.should_exit = True  # what SIGTERM does
        statuses = [f.result() for f in futures]
    running.thread.join(60)
    assert statuses == [200] * n
    assert not running.thread.is_alive()
    assert running.state.batcher.closing and running.state.batcher.depth == 0
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.url + "/healthz", timeout=2)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from blipkit.cli.main import app; app()", *args]


def test_cli_serves_until_sigterm(model_dir: Path, tmp_path: Path) -> None:
    key = "cli-secret-key-0123"
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    port = _free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        _cli("serve", "--model", str(model_dir), "--port", str(port), "--api-key-file", str(key_file),
             "--max-batch", "4", "--batch-wait-ms", "2"),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.2)
        assert httpx.post(url + "/v1/caption", json=caption_body(0)).status_code == 401
        r = httpx.post(url + "/v1/caption", json=caption_body(0), headers={"X-API-Key": key}, timeout=60)
        assert r.status_code == 200, r.text
        info = httpx.get(url + "/v1/info", headers={"Authorization": f"Bearer {key}"}).json()
        assert info["limits"]["max_batch"] == 4 and info["limits"]["batch_wait_ms"] == 2.0
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    # uvicorn re-raises the signal once it has shut down cleanly, so the exit status says "SIGTERM"
    assert proc.returncode in (0, -signal.SIGTERM), out
    assert "Application shutdown complete" in out
    assert key not in out


def test_cli_refuses_a_missing_index(tmp_path: Path) -> None:
    r = subprocess.run(_cli("serve", "--db", str(tmp_path / "nope"), "--port", "0"), capture_output=True,
                       text=True, timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"}, cwd=REPO)
    assert r.returncode == 1
    assert "no such index" in r.stderr
