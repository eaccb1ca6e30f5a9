"""``blipkit serve`` as a real process on a loopback port: fuzzed against its own OpenAPI document,
probed for path traversal, for its API key and its body limit, and soaked by concurrent clients.

One server (tiny all-heads model, a four-image index, an API key, a 1 MiB body limit) runs for the
module, under an audit hook that logs every file it opens (scripts/reliability/serve_harness.py). The
long variants are scripts/reliability/serve_fuzz.py and serve_soak.py (figures in docs/reliability.md);
the slow-marked soak here runs the latter's default.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import sys
import urllib.parse
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "scripts" / "reliability"


def _load(name: str):  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


harness = _load("serve_harness")
serve_fuzz = _load("serve_fuzz")
serve_soak = _load("serve_soak")
bombs = _load("bombs")


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return harness.prepare(tmp_path_factory.mktemp("serve_reliability"))


@pytest.fixture(scope="module")
def server(fixture: Any) -> Iterator[Any]:
    with harness.ServerProcess(fixture, max_body_mb=1.0) as running:
        yield running
    assert running.proc.returncode in (0, -15), running.log()[-3000:]


@pytest.fixture(scope="module")
def image_id(server: Any) -> str:
    return serve_fuzz.indexed_image_id(server)


def _png(seed: int = 0, size: tuple[int, int] = (40, 32)) -> bytes:
    return serve_soak._png(seed, size)


def _raw_get(server: Any, target: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """GET ``target`` exactly as written: http.client sends the path as given (httpx would normalise
    dot segments and re-quote the escapes away before the server ever saw them)."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        conn.putrequest("GET", target, skip_accept_encoding=True)
        for name, value in {**server.headers, **(headers or {})}.items():
            conn.putheader(name, value)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


# --- schemathesis -------------------------------------------------------------------------------------


def test_schemathesis_finds_no_5xx_and_no_schema_violation(server: Any, tmp_path: Path) -> None:
    pytest.importorskip("schemathesis", minversion="4")  # serve_fuzz.py drives the v4 command line
    summary = serve_fuzz.run(server, tmp_path, max_examples=10, seed=0)
    problems = []
    for name, p in summary["passes"].items():
        assert p["test_cases"] > 0 and p["operations"] > 0, (name, p)
        for failure in p["failures"] + p["errors"]:
            problems.append(f"{name}: {failure}")
    details = "\n".join(Path(p["output"]).read_text()[-4000:] for p in summary["passes"].values())
    assert not problems, "\n".join(problems) + "\n" + details
    assert summary["server_errors"] == {}
    assert summary["server_alive"]
    assert summary["ok"]


def test_multipart_over_the_form_limits_is_a_documented_error(server: Any) -> None:
    """What schemathesis found: a form with more parts than the server's limits, or a body that is not the
    multipart it claims, is refused by Starlette's parser with a 400 that the OpenAPI document does not
    list (JSON bodies over the same limits get 422)."""
    doc = httpx.get(server.url + "/openapi.json", timeout=30).json()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
        too_many_files = [("images", (f"{i}.png", _png(i), "image/png")) for i in range(17)]
        too_many_fields = {"choices": [f"c{i}" for i in range(97)], "question": "what?"}
        one_image = [("images", ("a.png", _png(), "image/png"))]
        for path, files, data in (("/v1/match", too_many_files, {"texts": ["a dog"]}),
                                  ("/v1/ask", one_image, too_many_fields)):
            r = c.post(path, files=files, data=data)
            documented = {int(s) for s in doc["paths"][path]["post"]["responses"]}
            assert r.status_code in documented, (path, r.status_code, r.text, sorted(documented))
            assert r.status_code == 422, (path, r.status_code, r.text)
        # a body that is not the multipart it says it is
        r = c.post("/v1/caption", content=b'{"images": []}',
                   headers={"Content-Type": "multipart/form-data; boundary=xyz"})
        assert r.status_code == 422, (r.status_code, r.text)


def test_a_client_that_hangs_up_mid_body_is_no_server_error(server: Any) -> None:
    """Clients give up on uploads (timeouts, closed tabs): the server must not log it as an internal
    error with a traceback, nor count a 5xx for it."""
    import socket
    import time

    before, log_before = serve_fuzz.statuses(server), len(server.log())
    json_start = b'{"images": [{"base64": "iVBORw0KGgo'
    form_start = (b'--xyz\r\nContent-Disposition: form-data; name="images"; filename="a.png"\r\n'
                  b"Content-Type: image/png\r\n\r\n" + _png()[:200])
    for path, content_type, start in (("/v1/match", "application/json", json_start),
                                      ("/v1/caption", "multipart/form-data; boundary=xyz", form_start)):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-API-Key: {server.fixture.key}\r\n"
                    f"Content-Type: {content_type}\r\nContent-Length: 100000\r\n\r\n")
            sock.sendall(head.encode() + start)
            time.sleep(0.3)  # the server is reading the body when the client goes away
    time.sleep(1.0)
    new_log = server.log()[log_before:]
    answered = serve_fuzz.statuses(server) - before
    assert server.alive()
    assert not {s: n for s, n in answered.items() if s >= 500}, (answered, new_log[-2000:])
    assert "Traceback" not in new_log and "internal error" not in new_log, new_log[-2000:]


# --- path traversal ------------------------------------------------------------------------------------

TRAVERSALS = [
    "../../etc/passwd", "..%2F..%2Fetc%2Fpasswd", "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "%2E%2E/%2E%2E/etc/passwd",
    "..%252F..%252Fetc%252Fpasswd", "....//....//etc/passwd", "..\\..\\etc\\passwd", "..%5C..%5Cetc%5Cpasswd",
    "/etc/passwd", "%2Fetc%2Fpasswd", "..;/..;/etc/passwd", "%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "..%00/etc/passwd", "%00", "..", ".", "~root", "file:///etc/passwd", "..%2F" * 8 + "etc%2Fpasswd",
    "%EF%BC%8E%EF%BC%8E%EF%BC%8Fetc%EF%BC%8Fpasswd",  # fullwidth ．．／
    # the canary next to the photos (the server's working directory), by relative and absolute path
    "secret-canary.png", "../secret-canary.png", "..%2Fsecret-canary.png", "photos/../secret-canary.png",
]


def _traversal_targets(payloads: list[str], fixture: Any) -> list[tuple[str, str]]:
    """(what, request target) for every payload in every path and query parameter."""
    absolute = [urllib.parse.quote(str(fixture.canary), safe=""), urllib.parse.quote(str(fixture.canary)),
                urllib.parse.quote(str(fixture.photos / "p0.png"), safe="")]
    targets = []
    for p in payloads + absolute:
        targets += [
            ("image id", f"/v1/images/{p}"),
            ("thumbnail id", f"/v1/images/{p}/thumbnail"),
            ("static file", f"/static/{p}"),
            ("any path", f"/{p}"),
            ("search q", f"/v1/search?q={p}&limit=3"),
            ("search limit", f"/v1/search?q=dog&limit={p}"),
            ("docs query", f"/openapi.json?file={p}"),
        ]
    return targets


def _suspicious(opened: list[str], fixture: Any) -> list[str]:
    """Files opened that a traversal aimed at: /etc, the canary, anything with a dot-dot or an escape."""
    canary = str(fixture.canary)
    return [p for p in opened if "passwd" in p or "/etc/" in p or p == canary or "secret-canary" in p
            or "/.." in p or "..\\" in p or "%2" in p.lower() or "\x00" in p]


def test_path_traversal_never_reaches_the_file_system(server: Any, fixture: Any) -> None:
    canary = fixture.canary.read_bytes()
    passwd = Path("/etc/passwd").read_bytes()[:64] if Path("/etc/passwd").exists() else b"root:x:0:0"
    mark = server.opened_mark()
    answers: Counter[tuple[str, int]] = Counter()
    targets = _traversal_targets(TRAVERSALS, fixture)
    for what, target in targets:
        status, body = _raw_get(server, target)
        answers[(what, status)] += 1
        assert status < 500, (what, target, status, body[:300])
        assert canary not in body and passwd not in body, (what, target)
        if what in ("image id", "thumbnail id", "static file", "any path"):
            assert status in (400, 404, 405, 422), (what, target, status, body[:200])
    # image sources in bodies: URLs (fetching is off) and base64 are never paths
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
        for p in [*TRAVERSALS, str(fixture.canary)]:
            for ref in ({"url": p}, {"base64": p}):
                r = c.post("/v1/caption", json={"images": [ref]})
                assert r.status_code in (403, 422), (ref, r.status_code, r.text)
            # a multipart file name is only a label: the bytes uploaded are what is captioned
            r = c.post("/v1/caption", files=[("images", (p, _png(1), "image/png"))],
                       data={"decoding": "greedy", "max_new_tokens": "3"})
            assert r.status_code == 200, (p, r.text)
    opened = server.opened_since(mark)
    assert not _suspicious(opened, fixture), _suspicious(opened, fixture)
    assert server.alive()
    # Every id-taking route answered "no such image", the search ran the text as a query.
    assert sum(n for (what, status), n in answers.items() if what == "image id" and status == 404) == len(
        targets) // 7
    assert sum(n for (what, status), n in answers.items() if what == "search q" and status == 200) == len(
        targets) // 7


def test_the_audit_log_does_see_file_reads(server: Any, fixture: Any, image_id: str) -> None:
    """The traversal test's evidence is only as good as the audit log: a real thumbnail request must
    show up in it as the indexed photo being opened."""
    mark = server.opened_mark()
    status, body = _raw_get(server, f"/v1/images/{image_id}")
    assert status == 200 and body[:4] == b"\x89PNG"
    assert any(str(fixture.photos) in p for p in server.opened_since(mark))
    assert _suspicious([str(fixture.canary), "/srv/photos/../../etc/passwd"], fixture)


# --- API key -------------------------------------------------------------------------------------------


def test_wrong_or_missing_api_key_is_401(server: Any, image_id: str) -> None:
    key = server.fixture.key
    protected = [("GET", "/v1/info"), ("GET", "/metrics"), ("GET", "/v1/search?q=dog"),
                 ("GET", f"/v1/images/{image_id}"), ("GET", f"/v1/images/{image_id}/thumbnail")]
    protected += [("POST", f"/v1/{name}") for name in ("caption", "ask", "match", "embed", "tag", "moderate")]
    wrong = [{}, {"X-API-Key": ""}, {"X-API-Key": key + "x"}, {"X-API-Key": key[:-1]},
             {"X-API-Key": key.upper()}, {"X-API-Key": "x" * 10_000}, {"Authorization": key},
             {"Authorization": f"Basic {key}"}, {"Authorization": "Bearer"},
             {"Authorization": f"Bearer {key[:8]}"}, {"X-Api-Key": f"{key}\u00e9"}]
    body = json.dumps({"images": [{"base64": base64.b64encode(_png()).decode()}]})
    with httpx.Client(base_url=server.url, timeout=60) as c:
        for method, path in protected:
            for headers in wrong:
                try:
                    r = c.request(method, path, content=body if method == "POST" else None,
                                  headers={"Content-Type": "application/json", **headers})
                except (UnicodeEncodeError, httpx.LocalProtocolError):
                    continue  # the client cannot even send this header
                assert r.status_code == 401, (method, path, headers, r.status_code, r.text[:200])
                assert r.json()["error"]["code"] == "unauthorized"
                assert key not in r.text
            # the key in the URL is not a key; a bad body with no key is still a 401, not a 422
            assert c.request(method, f"{path}{'&' if '?' in path else '?'}api_key={key}").status_code == 401
            if method == "POST":
                r = c.post(path, content=b"{not json", headers={"Content-Type": "application/json"})
                assert r.status_code == 401, (path, r.text)
        for good in ({"X-API-Key": key}, {"Authorization": f"Bearer {key}"}):
            assert c.get("/v1/info", headers=good).status_code == 200
        for open_path in ("/healthz", "/readyz", "/openapi.json"):
            assert c.get(open_path).status_code == 200, open_path


# --- body limit ----------------------------------------------------------------------------------------


def test_bodies_over_the_limit_are_413(server: Any) -> None:
    limit = 2**20  # the server runs with --max-body-mb 1
    blob = base64.b64encode(b"\0" * (limit + limit // 2)).decode()
    big_json = json.dumps({"images": [{"base64": blob}]}).encode()
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
        for path in ("/v1/caption", "/v1/embed", "/v1/tag"):
            r = c.post(path, content=big_json, headers={"Content-Type": "application/json"})
            assert r.status_code == 413, (path, r.text[:200])
            assert r.json()["error"]["code"] == "payload_too_large"

        def chunks() -> Iterator[bytes]:  # no Content-Length: the server must count as it reads
            for start in range(0, len(big_json), 65536):
                yield big_json[start : start + 65536]

        r = c.post("/v1/caption", content=chunks(), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text[:200]
        r = c.post("/v1/caption", files=[("images", ("big.png", b"\0" * (limit + 1), "image/png"))])
        assert r.status_code == 413, r.text[:200]
        # just under the limit is read, and judged on its content (not an image: 422)
        under = json.dumps({"images": [{"base64": base64.b64encode(b"\0" * (limit // 2)).decode()}]})
        r = c.post("/v1/caption", content=under, headers={"Content-Type": "application/json"})
        assert r.status_code == 422, r.text[:200]
        assert c.get("/readyz").status_code == 200


def test_decompression_bombs_are_413_with_bounded_server_memory(server: Any) -> None:
    """A 420 KB PNG that inflates to 432 MB, and huge canvases, fit the body limit: refused from their
    header, the server's memory does not move."""
    side = 12_000
    payloads = [bombs.png_bomb(side, side, bit_depth=8, colour_type=2), bombs.webp_canvas_bomb(side, side),
                bombs.gif_canvas_bomb(side, side), bombs.jpeg_header_bomb(side, side),
                bombs.tiff_header_bomb(side, side)]
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
        c.post("/v1/caption", json={"images": [{"base64": base64.b64encode(_png()).decode()}]})  # warm
        before = server.rss_mb()
        for data in payloads * 3:
            r = c.post("/v1/caption", json={"images": [{"base64": base64.b64encode(data).decode()}]})
            assert r.status_code == 413 and r.json()["error"]["code"] == "image_too_large", r.text[:200]
            r = c.post("/v1/embed", files=[("images", ("bomb", data, "application/octet-stream"))])
            assert r.status_code == 413, r.text[:200]
        growth = server.rss_mb() - before
    assert growth < 32, f"server RSS grew {growth:.1f} MB"


# --- soak ----------------------------------------------------------------------------------------------


def _assert_soak(result: Any, bound_mb: float) -> None:
    problems = result.problems(bound_mb)
    assert not problems, (problems, result)
    assert result.requests > 0
    assert set(result.by_status) <= {"200", "401", "422"}, result.by_status


def test_short_soak(server: Any) -> None:
    result = serve_soak.soak(server, clients=4, seconds=8, warmup_s=2)
    _assert_soak(result, serve_soak.DEFAULT_RSS_BOUND_MB)


@pytest.mark.slow
def test_soak_16_clients_30_seconds(server: Any) -> None:
    result = serve_soak.soak(server, clients=16, seconds=30, warmup_s=5)
    _assert_soak(result, serve_soak.DEFAULT_RSS_BOUND_MB)


def test_server_survives_all_this_and_never_logs_the_key(server: Any) -> None:
    assert server.alive()
    assert server.fixture.key not in server.log()

