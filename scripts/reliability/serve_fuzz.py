#!/usr/bin/env python
"""Schemathesis against ``blipkit serve``'s own OpenAPI document, on a real loopback port, tiny model.

Two passes of ``schemathesis run`` (v4) with the coverage and fuzzing phases, positive and negative data:

1. every operation, its parameters generated (image ids are random, so /v1/images answers 404);
2. the two /v1/images operations with the id of an indexed image, so their 200 answers are checked too.

Checks: no 5xx (``not_a_server_error``), every status documented (``status_code_conformance``), and the
content type, headers and body of every answer as the document says (``*_conformance``). The server's own
``/metrics`` counts the requests it answered, by status, as a cross-check.

    python scripts/reliability/serve_fuzz.py                 # 25 examples per operation and pass
    python scripts/reliability/serve_fuzz.py --max-examples 200 --seed 1

Exit status 1 when schemathesis reports a failure or the server answered a 5xx.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_harness import Fixture, ServerProcess, prepare

CHECKS = ("not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_headers_conformance", "response_schema_conformance")
_METRIC = re.compile(r'^blipkit_http_requests_total\{[^}]*status="(\d+)"[^}]*\}\s+([0-9.e+]+)$')


def schemathesis_cli() -> list[str]:
    exe = shutil.which("schemathesis", path=str(Path(sys.executable).parent)) or shutil.which("schemathesis")
    if exe is None:
        raise RuntimeError("schemathesis is not installed: pip install 'schemathesis>=4,<5'")
    return [exe]


def statuses(server: ServerProcess) -> Counter[int]:
    """Requests the server has answered so far, by status (from its Prometheus metrics)."""
    import httpx

    text = httpx.get(server.url + "/metrics", headers=server.headers, timeout=30).text
    counts: Counter[int] = Counter()
    for line in text.splitlines():
        match = _METRIC.match(line)
        if match:
            counts[int(match.group(1))] += int(float(match.group(2)))
    return counts


def run_pass(server: ServerProcess, out: Path, *, max_examples: int, seed: int, extra: Sequence[str] = (),
             config: str | None = None, timeout_s: float = 600) -> dict[str, Any]:
    """One ``schemathesis run``; returns the summary of its JSON report (plus its exit code)."""
    out.mkdir(parents=True, exist_ok=True)
    report = out / "report.json"
    command = [*schemathesis_cli()]
    if config is not None:
        config_file = out / "schemathesis.toml"
        config_file.write_text(config)
        command += ["--config-file", str(config_file)]
    command += ["run", server.url + "/openapi.json", "--max-examples", str(max_examples), "--seed", str(seed),
                "--workers", "1", "--phases", "coverage,fuzzing", "--mode", "all",
                "--checks", ",".join(CHECKS), "--header", f"X-API-Key: {server.fixture.key}",
                "--request-timeout", "60", "--report", "json", "--report-json-path", str(report),
                "--no-color", "--output-truncate", "true", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SCHEMATHESIS_TELEMETRY": "false"}
    proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s, env=env)
    (out / "output.txt").write_text(proc.stdout + proc.stderr)
    if not report.exists():
        raise RuntimeError(f"schemathesis wrote no report (exit {proc.returncode}):\n{proc.stdout[-3000:]}"
                           f"{proc.stderr[-3000:]}")
    data = json.loads(report.read_text())
    return {
        "exit_code": proc.returncode,
        "seconds": round(float(data.get("running_time", 0.0)), 1),
        "operations": data["operations"]["tested"],
        "test_cases": data["test_cases"]["generated"],
        "failures": data.get("failures", []),
        "errors": data.get("errors", []),
        "warnings": {k: v for k, v in data.get("warnings", {}).items() if v},
        "output": str(out / "output.txt"),
    }


def indexed_image_id(server: ServerProcess) -> str:
    import httpx

    r = httpx.get(server.url + "/v1/search", params={"q": "a photo", "limit": 1}, headers=server.headers,
                  timeout=60)
    r.raise_for_status()
    return str(r.json()["results"][0]["id"])


def run(server: ServerProcess, out: Path, *, max_examples: int, seed: int) -> dict[str, Any]:
    """Both passes against a running server; the summary and whether it passed."""
    before = statuses(server)
    image_id = indexed_image_id(server)
    passes = {
        "all operations": run_pass(server, out / "all", max_examples=max_examples, seed=seed),
        "/v1/images with an indexed id": run_pass(
            server, out / "images", max_examples=max_examples, seed=seed,
            extra=["--include-path-regex", "^/v1/images/"],
            config=f'[parameters]\n"path.image_id" = "{image_id}"\n'),
    }
    after = statuses(server)
    answered = after - before
    server_errors = {s: n for s, n in answered.items() if s >= 500}
    ok = (all(not p["failures"] and not p["errors"] and p["exit_code"] == 0 for p in passes.values())
          and not server_errors and server.alive())
    return {"passes": passes, "requests_by_status": dict(sorted(answered.items())),
            "server_errors": server_errors, "server_alive": server.alive(), "ok": ok}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=25, help="per operation and pass (default 25)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, help="keep the fixture and reports here")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="serve_fuzz_") as tmp:
        root = args.workdir or Path(tmp)
        fixture: Fixture = prepare(root / "fixture")
        with ServerProcess(fixture) as server:
            summary = run(server, root / "schemathesis", max_examples=args.max_examples, seed=args.seed)
        if args.json:
            print(json.dumps(summary, indent=2))
        else:
            for name, p in summary["passes"].items():
                print(f"{name}: {p['test_cases']} test cases over {p['operations']} operations in "
                      f"{p['seconds']} s; failures: {len(p['failures'])}; exit {p['exit_code']}")
                for failure in p["failures"]:
                    print(f"  FAILURE {failure.get('code')} {failure.get('title')}: "
                          f"{failure.get('operations')}")
                for kind, items in p["warnings"].items():
                    print(f"  warning {kind}: {items}")
            print(f"requests answered, by status: {summary['requests_by_status']}")
            print("OK: no 5xx, no schema violation" if summary["ok"] else
                  f"FAILED (5xx: {summary['server_errors']}; details in {root}/schemathesis/*/output.txt)")
            if not summary["ok"] and not args.workdir:
                print("(re-run with --workdir DIR to keep the reports)")
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
