"""The server's guards on a real server: API key (header or Bearer, never logged), image URLs (off by
default; public hosts only; fetched with the size cap), CORS (off unless configured)."""

from __future__ import annotations

import base64
import contextlib
import http.server
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from test_serve_support import build_tiny_model, png_bytes, serving

KEY = "k3y-Th4t-Must-N0t-Leak"


@pytest.fixture(scope="module")
def blip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tiny_model(tmp_path_factory.mktemp("serve_model") / "builtin")


@contextlib.contextmanager
def image_host(files: dict[str, bytes]) -> Iterator[str]:
    """A local HTTP server of ``files`` (path -> bytes)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def image_json(data: bytes) -> dict[str, Any]:
    return {"images": [{"base64": base64.b64encode(data).decode()}], "num_beams": 1, "max_new_tokens": 5}


def test_api_key_is_required_compared_and_never_logged(blip: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with serving(blip, api_key=KEY) as running, running.client() as c:
        # open: liveness, readiness, the page and the OpenAPI document
        for path in ("/healthz", "/readyz", "/", "/openapi.json"):
            assert c.get(path).status_code == 200, path
        # closed: every /v1 endpoint and /metrics
        for method, path in (("POST", "/v1/caption"), ("GET", "/v1/info"), ("GET", "/metrics"),
                             ("GET", "/v1/search?q=x"), ("GET", "/v1/images/" + "a" * 64)):
            r = c.request(method, path)
            assert r.status_code == 401, (path, r.text)
            assert r.json()["error"]["code"] == "unauthorized"
            assert r.headers["www-authenticate"] == "Bearer"
        for headers in ({"X-API-Key": KEY + "x"}, {"X-API-Key": KEY[:-1]}, {"Authorization": "Bearer nope"},
                        {"Authorization": KEY}, {"Authorization": "Basic " + KEY}, {"X-API-Key": ""}):
            r = c.post("/v1/caption", json=image_json(png_bytes(0)), headers=headers)
            assert r.status_code == 401, headers
            assert KEY not in r.text
        good = ({"X-API-Key": KEY}, {"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"})
        for headers in good:
            r = c.post("/v1/caption", json=image_json(png_bytes(0)), headers=headers)
            assert r.status_code == 200, (headers, r.text)
        assert c.get("/metrics", headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/v1/info", headers={"X-API-Key": KEY}).json()["auth"] is True
    assert "/v1/caption" in caplog.text  # the access log was captured...
    assert KEY not in caplog.text and KEY[:-1] not in caplog.text  # ...and holds no key
    assert KEY not in repr(running.state.settings)


def test_image_urls_are_fetched_only_when_allowed(blip: Any) -> None:
    picture = png_bytes(3)
    with image_host({"/cat.png": picture, "/huge.png": b"\x89PNG" + b"\0" * 200_000}) as host:
        url_body = {"images": [{"url": f"{host}/cat.png"}], "num_beams": 1, "max_new_tokens": 5}
        with serving(blip) as running, running.client() as c:  # default: no URLs at all
            r = c.post("/v1/caption", json=url_body)
            assert r.status_code == 403 and r.json()["error"]["code"] == "urls_disabled"
        with serving(blip, allow_urls=True) as running, running.client() as c:  # URLs, public hosts only
            for url in (f"{host}/cat.png", "http://localhost:9/x.png", "http://169.254.169.254/latest/meta-data",
                        "http://[::1]:80/a.png", "http://10.0.0.1/a.png"):
                r = c.post("/v1/caption", json={"images": [{"url": url}]})
                assert r.status_code == 403, (url, r.text)
                assert r.json()["error"]["code"] == "url_not_allowed"
        with serving(blip, allow_urls=True, allow_private_urls=True, max_body_bytes=100_000,
                     url_timeout_s=5.0) as running, running.client() as c:
            fetched = c.post("/v1/caption", json=url_body)
            uploaded = c.post("/v1/caption", json=image_json(picture))
            assert fetched.status_code == 200, fetched.text
            assert fetched.json()["results"] == uploaded.json()["results"]
            missing = c.post("/v1/caption", json={"images": [{"url": f"{host}/nope.png"}]})
            assert missing.status_code == 422 and missing.json()["error"]["code"] == "image_fetch_error"
            assert "404" in missing.json()["error"]["message"]
            huge = c.post("/v1/caption", json={"images": [{"url": f"{host}/huge.png"}]})
            assert huge.status_code == 413 and huge.json()["error"]["code"] == "image_too_large"
            assert c.get("/v1/info").json()["allow_urls"] is True


def test_cors_is_off_by_default_and_on_for_configured_origins(blip: Any) -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "x-api-key, content-type"}
    with serving(blip) as running, running.client() as c:
        r = c.get("/healthz", headers={"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in r.headers
        r = c.options("/v1/caption", headers=preflight)
        assert "access-control-allow-origin" not in r.headers
    with serving(blip, cors_origins=("https://app.example",), api_key=KEY) as running, running.client() as c:
        r = c.options("/v1/caption", headers=preflight)
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert "x-api-key" in r.headers["access-control-allow-headers"].lower()
        # errors carry the CORS header too, so a browser client can read them
        r = c.post("/v1/caption", json={}, headers={"Origin": "https://app.example"})
        assert r.status_code == 401
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/v1/caption", headers={**preflight, "Origin": "https://evil.example"})
        assert other.headers.get("access-control-allow-origin") != "https://evil.example"


def test_read_api_key_file(tmp_path: Any) -> None:
    from blipkit.serve.settings import read_api_key

    good = tmp_path / "key"
    good.write_text(f"  {KEY}\n")
    assert read_api_key(good) == KEY
    for bad in ("", "\n", "two words", "tab\there"):
        path = tmp_path / "bad"
        path.write_text(bad)
        with pytest.raises(ValueError):
            read_api_key(path)
