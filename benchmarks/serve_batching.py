"""Benchmark ``blipkit serve``'s micro-batching: throughput and latency with batching on and off.

Starts a real server (``blipkit serve`` in a subprocess, on 127.0.0.1) twice — batching on
(``--max-batch 16 --batch-wait-ms 5``, the defaults) and off (``--max-batch 1 --batch-wait-ms 0``) — and
drives each with ``--clients`` concurrent clients, each sending ``--requests`` one-image requests back to
back (a closed loop: the way a page or a worker pool calls it). Reports requests/s, p50/p99 latency, errors
and the mean batch size (from /metrics), then the on/off throughput ratio of this run (the goal: >= 1.5).

    python benchmarks/serve_batching.py                      # tiny random model: measures the server
    python benchmarks/serve_batching.py --model builtin      # the real built-in model (once installed)
    python benchmarks/serve_batching.py --task ask --clients 32 --json
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

ON = {"max_batch": 16, "batch_wait_ms": 5.0}
OFF = {"max_batch": 1, "batch_wait_ms": 0.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_images(n: int, size: int) -> list[str]:
    """``n`` distinct random PNGs, base64-encoded (distinct, so that nothing can be cached)."""
    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, "PNG")
        out.append(base64.b64encode(buf.getvalue()).decode())
    return out


def request_body(task: str, image: str, num_beams: int) -> tuple[str, dict[str, Any]]:
    images = [{"base64": image}]
    if task == "caption":
        return "/v1/caption", {"images": images, "num_beams": num_beams}
    if task == "ask":
        return "/v1/ask", {"images": images, "question": "what is in the picture?"}
    if task == "match":
        return "/v1/match", {"images": images, "texts": ["a dog running on the grass"]}
    return "/v1/embed", {"images": images}


class Server:
    """``blipkit serve`` in a subprocess."""

    def __init__(self, model: str, port: int, threads: int | None, **options: Any) -> None:
        args = [sys.executable, "-c", "from blipkit.cli.main import app; app()", "serve", "--model", model,
                "--port", str(port), "--log-level", "warning",
                "--max-batch", str(options["max_batch"]), "--batch-wait-ms", str(options["batch_wait_ms"])]
        if threads:
            args += ["--threads", str(threads)]
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def wait_ready(self, timeout: float = 300.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read() if self.proc.stderr else ""
                raise RuntimeError(f"the server exited: {err}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError("the server did not become ready")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def drive(url: str, task: str, images: list[str], clients: int, requests: int, num_beams: int
                ) -> dict[str, Any]:
    """``clients`` concurrent closed-loop clients; every latency, error and the wall time."""
    latencies: list[float] = []
    errors: list[str] = []
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:
        # warm-up: first calls pay for lazy initialisation, in both configurations alike
        for image in images[:2]:
            path, body = request_body(task, image, num_beams)
            (await client.post(path, json=body)).raise_for_status()

        async def one_client(c: int) -> None:
            for r in range(requests):
                path, body = request_body(task, images[(c * requests + r) % len(images)], num_beams)
                t0 = time.perf_counter()
                try:
                    response = await client.post(path, json=body)
                    if response.status_code != 200:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                        continue
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                    continue
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(one_client(c) for c in range(clients)))
        wall = time.perf_counter() - start
        metrics = (await client.get("/metrics")).text
    return {"latencies": latencies, "errors": errors, "wall_s": wall, "mean_batch": mean_batch(metrics, task)}


def mean_batch(metrics: str, task: str) -> float | None:
    task_name = {"ask": "ask", "match": "match", "embed": "embed"}.get(task, "caption")
    total = re.search(rf'blipkit_batch_size_sum{{task="{task_name}"}} ([0-9.e+]+)', metrics)
    count = re.search(rf'blipkit_batch_size_count{{task="{task_name}"}} ([0-9.e+]+)', metrics)
    if not total or not count or float(count.group(1)) == 0:
        return None
    return float(total.group(1)) / float(count.group(1))


def summarize(name: str, run: dict[str, Any], options: dict[str, Any]) -> dict[str, Any]:
    lat = sorted(run["latencies"])
    done = len(lat)
    return {
        "config": name, **options, "requests": done + len(run["errors"]), "errors": len(run["errors"]),
        "throughput_rps": done / run["wall_s"] if run["wall_s"] else 0.0,
        "p50_ms": 1000 * statistics.median(lat) if lat else None,
        "p99_ms": 1000 * lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))] if lat else None,
        "mean_batch": run["mean_batch"], "wall_s": run["wall_s"], "first_errors": run["errors"][:3],
    }


def measure(model: str, name: str, options: dict[str, Any], args: argparse.Namespace, images: list[str]
            ) -> dict[str, Any]:
    server = Server(model, free_port(), args.threads, **options)
    try:
        server.wait_ready()
        run = asyncio.run(drive(server.url, args.task, images, args.clients, args.requests, args.num_beams))
    finally:
        server.stop()
    return summarize(name, run, options)


def resolve_model(model: str, workdir: Path) -> str:
    if model != "tiny":
        return model
    from blipkit.testing import make_tiny_checkpoint

    return str(make_tiny_checkpoint("builtin", workdir / "tiny-builtin"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny",
                        help="tiny (a random all-heads checkpoint made on the fly), builtin, or a checkpoint")
    parser.add_argument("--task", default="caption", choices=("caption", "ask", "match", "embed"))
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients")
    parser.add_argument("--requests", type=int, default=10, help="requests per client")
    parser.add_argument("--num-beams", type=int, default=3, help="caption beams (the server's default: 3)")
    parser.add_argument("--image-size", type=int, default=224, help="side of the random test images")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the server")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads or 1))

    with tempfile.TemporaryDirectory() as tmp:
        model = resolve_model(args.model, Path(tmp))
        images = test_images(min(64, args.clients * args.requests), args.image_size)
        on = measure(model, "batching on", ON, args, images)
        off = measure(model, "batching off", OFF, args, images)
    ratio = on["throughput_rps"] / off["throughput_rps"] if off["throughput_rps"] else float("inf")
    result = {"model": args.model, "task": args.task, "clients": args.clients, "runs": [on, off],
              "throughput_ratio": ratio}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"model {args.model}, task {args.task}, {args.clients} clients x {args.requests} requests")
        print(f"{'config':<14}{'req/s':>9}{'p50 ms':>10}{'p99 ms':>10}{'batch':>8}{'errors':>8}")
        for r in (on, off):
            batch = f"{r['mean_batch']:.1f}" if r["mean_batch"] else "-"
            print(f"{r['config']:<14}{r['throughput_rps']:>9.1f}{r['p50_ms']:>10.0f}{r['p99_ms']:>10.0f}"
                  f"{batch:>8}{r['errors']:>8}")
        print(f"throughput ratio (on / off): {ratio:.2f}x  (goal >= 1.5x)")
    failed = on["errors"] or off["errors"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
