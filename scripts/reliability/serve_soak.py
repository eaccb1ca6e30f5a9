#!/usr/bin/env python
"""Soak ``blipkit serve``: N concurrent clients on loopback for a bounded time, server RSS and fds watched.

Each client loops over a mix of requests until the time is up: captions (JSON and multipart), questions,
embeddings, search, thumbnails, info, health, a broken image (422) and a wrong key (401). The server runs
in its own process (tiny model, a small index); its RSS and open file descriptors are sampled twice a
second. After a warm-up (not counted: first model calls, allocator pools, caches filling), growth from the
start of the measured window to its end must stay under ``--rss-bound-mb``, and no request may get a 5xx
or a broken connection.

    python scripts/reliability/serve_soak.py                       # 16 clients, 30 s
    python scripts/reliability/serve_soak.py --clients 32 --seconds 300

Exit status 1 when a bound is broken.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import base64
import io
import json
import random
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_harness import ServerProcess, prepare

DEFAULT_RSS_BOUND_MB = 64.0


def _png(seed: int, size: tuple[int, int] = (40, 32)) -> bytes:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(out, "PNG")
    return out.getvalue()


@dataclass
class SoakResult:
    clients: int
    seconds: float
    warmup_s: float
    requests: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    by_kind: dict[str, int] = field(default_factory=dict)
    transport_errors: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_peak_mb: float = 0.0
    fds_start: int = 0
    fds_end: int = 0
    threads_start: int = 0
    threads_end: int = 0
    server_alive: bool = True

    @property
    def rss_growth_mb(self) -> float:
        return self.rss_end_mb - self.rss_start_mb

    def problems(self, rss_bound_mb: float) -> list[str]:
        out = []
        if not self.server_alive:
            out.append("the server died")
        five = {s: n for s, n in self.by_status.items() if s.startswith("5")}
        if five:
            out.append(f"5xx answers: {five}")
        if self.transport_errors:
            out.append(f"{len(self.transport_errors)} broken requests, e.g. {self.transport_errors[:3]}")
        if self.unexpected:
            out.append(f"{len(self.unexpected)} unexpected answers, e.g. {self.unexpected[:3]}")
        if self.rss_growth_mb > rss_bound_mb:
            out.append(f"RSS grew {self.rss_growth_mb:.1f} MB over the measured window "
                       f"(bound {rss_bound_mb:g})")
        if self.fds_end > self.fds_start + self.clients + 8:
            out.append(f"open fds grew from {self.fds_start} to {self.fds_end}")
        return out


def _requests(server: ServerProcess, image_id: str) -> list[tuple[str, int, Callable[[Any], Any]]]:
    """(kind, expected status, call) for every request of the mix; a call takes an httpx.Client."""
    pngs = [_png(i) for i in range(8)]
    b64 = [base64.b64encode(p).decode() for p in pngs]
    broken = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 50).decode()
    small = {"decoding": "greedy", "max_new_tokens": 5}

    def caption(c: Any) -> Any:
        return c.post("/v1/caption", json={"images": [{"base64": random.choice(b64)}], **small})

    def caption_form(c: Any) -> Any:
        files = [("images", ("a.png", random.choice(pngs), "image/png"))]
        return c.post("/v1/caption", files=files, data={"decoding": "greedy", "max_new_tokens": "5"})

    def ask(c: Any) -> Any:
        return c.post("/v1/ask", json={"images": [{"base64": random.choice(b64)}], "question": "what is it?"})

    def embed(c: Any) -> Any:
        body = {"images": [{"base64": random.choice(b64)}], "texts": ["a dog", "a cat"]}
        return c.post("/v1/embed", json=body)

    def search(c: Any) -> Any:
        return c.get("/v1/search", params={"q": random.choice(["dog", "a red car", "people on a beach"]),
                                           "limit": 3})

    def thumbnail(c: Any) -> Any:
        return c.get(f"/v1/images/{image_id}/thumbnail")

    return [
        ("caption", 200, caption), ("caption", 200, caption), ("caption-multipart", 200, caption_form),
        ("ask", 200, ask), ("embed", 200, embed), ("search", 200, search), ("thumbnail", 200, thumbnail),
        ("info", 200, lambda c: c.get("/v1/info")), ("healthz", 200, lambda c: c.get("/healthz")),
        ("broken-image", 422, lambda c: c.post("/v1/caption", json={"images": [{"base64": broken}]})),
        ("wrong-key", 401, lambda c: c.get("/v1/info", headers={"X-API-Key": "wrong"})),
    ]


def soak(server: ServerProcess, *, clients: int, seconds: float, warmup_s: float = 3.0,
         seed: int = 0) -> SoakResult:
    """Run the soak against a running server."""
    import httpx
    import psutil

    random.seed(seed)
    r = httpx.get(server.url + "/v1/search", params={"q": "a photo", "limit": 1}, headers=server.headers,
                  timeout=60)
    image_id = r.json()["results"][0]["id"]
    mix = _requests(server, image_id)
    result = SoakResult(clients, seconds, warmup_s)
    process = psutil.Process(server.pid)
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    latencies: list[float] = []
    rss: list[float] = []
    start = time.monotonic()
    measure_from = start + warmup_s
    stop_at = measure_from + seconds
    stop = threading.Event()

    def client(number: int) -> None:
        rng = random.Random(seed * 1000 + number)
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as c:
            while time.monotonic() < stop_at:
                kind, expected, call = rng.choice(mix)
                t0 = time.monotonic()
                try:
                    response = call(c)
                except httpx.TransportError as exc:
                    with lock:
                        result.transport_errors.append(f"{kind}: {type(exc).__name__}: {exc}")
                    continue
                elapsed = time.monotonic() - t0
                with lock:
                    if t0 >= measure_from:
                        statuses[str(response.status_code)] += 1
                        kinds[kind] += 1
                        latencies.append(elapsed)
                    if response.status_code != expected:
                        result.unexpected.append(f"{kind}: {response.status_code} {response.text[:200]}")

    def sampler() -> None:
        while not stop.is_set():
            try:
                rss.append(process.memory_info().rss / 2**20)
            except psutil.Error:
                return
            stop.wait(0.5)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    result.rss_start_mb = process.memory_info().rss / 2**20
    result.fds_start, result.threads_start = process.num_fds(), process.num_threads()
    watcher = threading.Thread(target=sampler, daemon=True)
    watcher.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    result.server_alive = server.alive()
    if result.server_alive:
        time.sleep(0.5)  # let the last answers' buffers go
        result.rss_end_mb = process.memory_info().rss / 2**20
        result.fds_end, result.threads_end = process.num_fds(), process.num_threads()
    result.rss_peak_mb = max([*rss, result.rss_end_mb])
    result.requests = sum(statuses.values())
    result.by_status = dict(sorted(statuses.items()))
    result.by_kind = dict(sorted(kinds.items()))
    if latencies:
        ordered = sorted(latencies)
        result.latency_ms = {q: round(1000 * ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1)
                             for q, p in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))}
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time, after the warm-up")
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--rss-bound-mb", type=float, default=DEFAULT_RSS_BOUND_MB)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve_soak_") as tmp:
        fixture = prepare((args.workdir or Path(tmp)) / "fixture")
        with ServerProcess(fixture) as server:
            result = soak(server, clients=args.clients, seconds=args.seconds, warmup_s=args.warmup)
    problems = result.problems(args.rss_bound_mb)
    if args.json:
        print(json.dumps({**asdict(result), "rss_growth_mb": result.rss_growth_mb, "problems": problems},
                         indent=2))
    else:
        print(f"{result.clients} clients, {result.seconds:g} s measured after {result.warmup_s:g} s warm-up: "
              f"{result.requests} requests ({result.requests / result.seconds:.1f}/s)")
        print(f"  by status: {result.by_status}")
        print(f"  by kind:   {result.by_kind}")
        print(f"  latency:   {result.latency_ms} ms")
        print(f"  server RSS: {result.rss_start_mb:.1f} -> {result.rss_end_mb:.1f} MB "
              f"(growth {result.rss_growth_mb:+.1f} MB, peak {result.rss_peak_mb:.1f}); "
              f"fds {result.fds_start} -> {result.fds_end}; "
              f"threads {result.threads_start} -> {result.threads_end}")
        for problem in problems:
            print(f"  PROBLEM: {problem}")
        print("OK" if not problems else "FAILED")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
