"""The HTTP API against a real uvicorn server on 127.0.0.1 with a tiny all-heads checkpoint: every
endpoint, both body forms, the 4xx codes of bad input, limits, batching, metrics and the OpenAPI document."""

from __future__ import annotations

import base64
import concurrent.futures as cf
import io
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image

from test_serve_support import RunningServer, build_tiny_model, png_bytes, serving, wait_for

MAX_PIXELS = 20_000  # test images are 48x40 = 1920 px; a 200x200 one is over the limit
MAX_BODY = 300_000


@pytest.fixture(scope="module")
def blip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return build_tiny_model(tmp_path_factory.mktemp("serve_model") / "builtin")


POLICY = """
method: itc
categories:
  - name: animal
    positive: ["a photo of a dog", "a photo of a cat"]
    negative: ["a photo of a car", "a photo of a table"]
    threshold: 0.0
  - name: beach
    positive: ["a photo of the beach"]
    negative: ["a photo of a room"]
    threshold: 1.0
"""


@pytest.fixture(scope="module")
def server(blip: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    policy = tmp_path_factory.mktemp("policy") / "policy.yaml"
    policy.write_text(POLICY)
    with serving(blip, max_pixels=MAX_PIXELS, max_body_bytes=MAX_BODY, batch_wait_ms=20.0,
                 max_images_per_request=4, policy=policy) as running:
        yield running


@pytest.fixture()
def client(server: RunningServer) -> Any:
    with server.client() as c:
        yield c


def b64(data: bytes) -> dict[str, str]:
    return {"base64": base64.b64encode(data).decode()}


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, str]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] == code, body
    assert body["error"]["message"]
    return body["error"]


# --- service endpoints --------------------------------------------------------------------------


def test_health_ready_and_info(client: httpx.Client, blip: Any) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["ready"] is True and "caption" in ready.json()["tasks"]
    info = client.get("/v1/info").json()
    assert info["tasks"] == ["caption", "itc", "itm", "vqa"]
    assert set(info["endpoints"]) >= {"caption", "ask", "match", "embed", "tag"}
    assert "search" not in info["endpoints"] and info["search"] is False
    assert info["embedding_dim"] == blip.embedding_dim
    assert info["limits"]["max_pixels"] == MAX_PIXELS
    assert info["auth"] is False and info["allow_urls"] is False


# --- the model endpoints -----------------------------------------------------------------------


def test_caption_json_and_multipart_agree_with_the_library(client: httpx.Client, blip: Any) -> None:
    data = png_bytes(1)
    expected = blip.caption(Image.open(io.BytesIO(data)))[0]
    by_json = client.post("/v1/caption", json={"images": [b64(data)]})
    by_form = client.post("/v1/caption", files=[("images", ("x.png", data, "image/png"))])
    for response in (by_json, by_form):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["model"] == blip.checkpoint.name
        [item] = body["results"]
        assert item["index"] == 0 and item["caption"] == expected.caption
        assert item["confidence"] == pytest.approx(expected.confidence, rel=1e-4)


def test_caption_options_and_several_images(client: httpx.Client) -> None:
    form = [("images", (f"{i}.png", png_bytes(i), "image/png")) for i in range(3)]
    r = client.post("/v1/caption", files=form, data={"decoding": "greedy", "max_new_tokens": "6"})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["index"] for x in results] == [0, 1, 2]
    assert all(0 < len(x["caption"].split()) <= 6 for x in results)
    # a data: URL is accepted as base64 too; a prompt starts the caption
    data_url = "data:image/png;base64," + base64.b64encode(png_bytes(0)).decode()
    r = client.post("/v1/caption", json={"images": [{"base64": data_url}], "prompt": "a picture of",
                                          "max_new_tokens": 500 // 100})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["caption"].startswith("a picture of")


def test_caption_length_is_capped_by_the_model(client: httpx.Client) -> None:
    # the tiny model reads 64 positions: asking for 128 new tokens is capped instead of crashing it
    body = {"images": [b64(png_bytes(0))], "max_new_tokens": 128, "num_beams": 1}
    r = client.post("/v1/caption", json=body)
    assert r.status_code == 200, r.text
    assert len(r.json()["results"][0]["caption"].split()) < 64
    long_prompt = client.post("/v1/caption", json={"images": [b64(png_bytes(0))], "prompt": "dog " * 100})
    assert_error(long_prompt, 422, "bad_text")


def test_ask_open_and_with_choices(client: httpx.Client) -> None:
    data = png_bytes(2)
    r = client.post("/v1/ask", json={"images": [b64(data)], "question": "what is in the picture?"})
    assert r.status_code == 200, r.text
    [item] = r.json()["results"]
    assert item["question"] == "what is in the picture?" and item["answer"] and item["scores"] is None
    form = [("images", ("a.png", data, "image/png")), ("images", ("b.png", png_bytes(3), "image/png"))]
    fields = {"question": "which animal?", "choices": ["dog", "cat", "dog"]}
    r = client.post("/v1/ask", files=form, data=fields)
    assert r.status_code == 200, r.text
    for item in r.json()["results"]:
        assert set(item["scores"]) == {"dog", "cat"}
        assert sum(item["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert item["answer"] == max(item["scores"], key=item["scores"].get)


def test_match_scores_every_pair(client: httpx.Client, blip: Any) -> None:
    images = [png_bytes(4), png_bytes(5)]
    texts = ["a dog on the grass", "a red car"]
    r = client.post("/v1/match", json={"images": [b64(d) for d in images], "texts": texts})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [(x["image"], x["text"]) for x in results] == [(i, t) for i in range(2) for t in texts]
    expected = blip.match([Image.open(io.BytesIO(d)) for d in images], texts)
    assert [x["score"] for x in results] == pytest.approx([m.score for m in expected], abs=1e-5)


def test_embed_images_texts_and_their_similarity(client: httpx.Client, blip: Any) -> None:
    r = client.post("/v1/embed", json={"images": [b64(png_bytes(6))], "texts": ["a dog", "a cat"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["dim"] == blip.embedding_dim
    images, texts = np.array(body["images"]), np.array(body["texts"])
    assert images.shape == (1, blip.embedding_dim) and texts.shape == (2, blip.embedding_dim)
    assert np.linalg.norm(images, axis=1) == pytest.approx(1.0, abs=1e-5)
    assert np.array(body["similarity"]) == pytest.approx(images @ texts.T, abs=1e-5)
    assert np.allclose(texts, blip.embed_texts(["a dog", "a cat"]), atol=1e-5)
    only_texts = client.post("/v1/embed", json={"texts": ["a dog"]}).json()
    assert only_texts["images"] == [] and only_texts["similarity"] is None


def test_tag_returns_sorted_vocabulary_tags(client: httpx.Client) -> None:
    r = client.post("/v1/tag", json={"images": [b64(png_bytes(7))], "top_k": 3})
    assert r.status_code == 200, r.text
    tags = r.json()["results"][0]["tags"]
    assert len(tags) == 3
    scores = [t["score"] for t in tags]
    assert scores == sorted(scores, reverse=True)
    high = client.post("/v1/tag", json={"images": [b64(png_bytes(7))], "threshold": 0.99}).json()
    assert high["results"][0]["tags"] == []


def test_moderate_scores_every_category_of_the_policy(client: httpx.Client) -> None:
    form = [("images", (f"{i}.png", png_bytes(i), "image/png")) for i in range(2)]
    r = client.post("/v1/moderate", files=form)
    assert r.status_code == 200, r.text
    for i, item in enumerate(r.json()["results"]):
        assert item["index"] == i
        assert set(item["categories"]) == {"animal", "beach"}
        assert all(0.0 <= s <= 1.0 for s in item["categories"].values())
        # thresholds 0 and 1: "animal" is always flagged, "beach" never (its score is below 1)
        assert item["flagged"] is True and item["flagged_categories"] == ["animal"]
        assert item["caption"] is None
    explained = client.post("/v1/moderate", json={"images": [b64(png_bytes(0))], "explain": True}).json()
    assert explained["results"][0]["caption"]


def test_search_without_an_index_is_404(client: httpx.Client) -> None:
    assert_error(client.get("/v1/search", params={"q": "dog"}), 404, "no_index")
    assert_error(client.get("/v1/images/" + "ab" * 32 + "/thumbnail"), 404, "no_index")


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "status", "code"), [
    ({"images": [{"base64": "not base64!"}]}, 422, "invalid_base64"),
    ({"images": [{"base64": base64.b64encode(b"hello, not an image").decode()}]}, 422, "image_decode_error"),
    ({"images": [{"base64": base64.b64encode(png_bytes(0)[:60]).decode()}]}, 422, "image_decode_error"),
    ({"images": [{"base64": base64.b64encode(png_bytes(0, (200, 200))).decode()}]}, 413, "image_too_large"),
    ({"images": [{"url": "http://example.com/cat.jpg"}]}, 403, "urls_disabled"),
    ({"images": [{"url": "file:///etc/passwd"}]}, 422, "invalid_request"),
    ({"images": []}, 422, "invalid_request"),
    ({}, 422, "invalid_request"),
    ({"images": [{"base64": "AAAA", "url": "http://x.test/a.png"}]}, 422, "invalid_request"),
    ({"images": [{"path": "/etc/passwd"}]}, 422, "invalid_request"),
    ({"images": [b64(png_bytes(0))], "num_beams": 0}, 422, "invalid_request"),
    ({"images": [b64(png_bytes(0))], "decoding": "telepathy"}, 422, "invalid_request"),
    ({"images": [b64(png_bytes(0))], "prompt": "   "}, 422, "bad_text"),
    ({"images": [b64(png_bytes(0))], "surprise": 1}, 422, "invalid_request"),
    ({"images": [b64(png_bytes(i)) for i in range(5)]}, 422, "too_many_images"),
])
def test_bad_caption_requests(client: httpx.Client, body: dict[str, Any], status: int, code: str) -> None:
    assert_error(client.post("/v1/caption", json=body), status, code)


def test_bad_bodies_and_texts(client: httpx.Client) -> None:
    image = b64(png_bytes(0))
    as_json = {"content-type": "application/json"}
    assert_error(client.post("/v1/caption", content=b"{not json", headers=as_json), 422, "invalid_request")
    assert_error(client.post("/v1/caption", content=b"x", headers={"content-type": "text/plain"}),
                 415, "unsupported_media_type")
    assert_error(client.post("/v1/ask", json={"images": [image], "question": "  "}), 422, "bad_text")
    assert_error(client.post("/v1/ask", json={"images": [image], "question": "q?", "choices": []}),
                 422, "invalid_request")
    assert_error(client.post("/v1/match", json={"images": [image], "texts": ["ok", " "]}), 422, "bad_text")
    assert_error(client.post("/v1/embed", json={}), 422, "invalid_request")
    assert_error(client.post("/v1/embed", json={"texts": ["x"] * 65}), 422, "too_many_texts")
    # a form field holding text where a file belongs, and a file where text belongs
    assert_error(client.post("/v1/caption", files={"images": (None, "not a file")}), 422, "invalid_request")
    assert_error(client.post("/v1/ask", files=[("images", ("a.png", png_bytes(0), "image/png")),
                                                ("question", ("q.txt", b"what?", "text/plain"))]),
                 422, "invalid_request")
    assert_error(client.get("/v1/caption"), 405, "method_not_allowed")
    assert_error(client.get("/no/such/page"), 404, "not_found")


def test_body_limit_by_length_and_by_stream(client: httpx.Client) -> None:
    big = b"\0" * (MAX_BODY + 1)
    as_json = {"content-type": "application/json"}
    error = assert_error(client.post("/v1/caption", content=big, headers=as_json), 413, "payload_too_large")
    assert str(MAX_BODY) in error["message"]

    def chunks() -> Any:  # no Content-Length: the limit must hold while streaming
        for _ in range(40):
            yield b"\0" * 10_000

    r = client.post("/v1/caption", content=chunks(), headers=as_json)
    assert_error(r, 413, "payload_too_large")
    upload = [("images", ("big.png", b"\x89PNG" + b"\0" * MAX_BODY, "image/png"))]
    assert_error(client.post("/v1/caption", files=upload), 413, "payload_too_large")
    # the server is still fine afterwards
    assert client.post("/v1/caption", json={"images": [b64(png_bytes(0))]}).status_code == 200


# --- batching and metrics -----------------------------------------------------------------------


def test_concurrent_requests_share_batches_and_match_solo_results(server: RunningServer, blip: Any) -> None:
    images = [png_bytes(10 + i) for i in range(6)]
    solo = [r.caption for r in blip.caption([Image.open(io.BytesIO(d)) for d in images], num_beams=1)]
    before = server.state.batcher.stats.batches

    def one(data: bytes) -> str:
        with server.client() as c:
            r = c.post("/v1/caption", json={"images": [b64(data)], "num_beams": 1})
            assert r.status_code == 200, r.text
            return r.json()["results"][0]["caption"]

    with cf.ThreadPoolExecutor(len(images)) as pool:
        got = list(pool.map(one, images))
    assert got == solo
    batches = server.state.batcher.stats.batches - before
    assert batches < len(images)  # at least two requests went through one model call


def test_metrics_count_requests_batches_and_queue(client: httpx.Client) -> None:
    client.post("/v1/caption", json={"images": [b64(png_bytes(0))], "num_beams": 1})
    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    text = r.text
    assert 'blipkit_http_requests_total{method="POST",route="/v1/caption",status="200"}' in text
    assert 'blipkit_http_requests_total{method="POST",route="/v1/caption",status="422"}' in text
    assert 'blipkit_http_request_duration_seconds_bucket{le="0.005",route="/v1/caption"}' in text
    assert 'blipkit_batch_size_count{task="caption"}' in text
    assert "blipkit_queue_depth 0.0" in text
    assert "blipkit_model_ready 1.0" in text
    # raw paths never become labels: an unknown path is counted under one template
    client.get("/nonexistent/" + "x" * 20)
    assert "x" * 20 not in client.get("/metrics").text


def test_queue_full_is_503_with_retry_after(blip: Any) -> None:
    with serving(blip, queue_size=1, max_batch=16, batch_wait_ms=0.0) as running, running.client() as c:
        slow = {"images": [b64(png_bytes(i)) for i in range(16)], "num_beams": 6, "max_new_tokens": 50}
        with cf.ThreadPoolExecutor(1) as pool:
            busy = pool.submit(c.post, "/v1/caption", json=slow)
            wait_for(lambda: running.state.batcher.depth == 1 or busy.done())
            r = c.post("/v1/caption", json={"images": [b64(png_bytes(0))]})
            assert not busy.done(), "the slow request ended before the queue could be seen full"
            error = assert_error(r, 503, "queue_full")
            assert "busy" in error["message"]
            assert int(r.headers["Retry-After"]) >= 1
            assert busy.result().status_code == 200
        assert c.post("/v1/caption", json={"images": [b64(png_bytes(0))]}).status_code == 200
        assert "blipkit_queue_rejected_total 1.0" in c.get("/metrics").text


# --- the page and the OpenAPI document ----------------------------------------------------------


def test_page_and_its_files(client: httpx.Client) -> None:
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff"
    assert 'src="/static/app.js"' in r.text and 'aria-live="polite"' in r.text
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")
    assert client.get("/static/style.css").status_code == 200
    for bad in ("/static/secret.txt", "/static/..%2F..%2Fsettings.py", "/static/%2e%2e/app.py"):
        assert client.get(bad).status_code == 404


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_document_is_complete(client: httpx.Client) -> None:
    doc = client.get("/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    for name in ("caption", "ask", "match", "embed", "tag", "moderate"):
        op = doc["paths"][f"/v1/{name}"]["post"]
        content = op["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}
        ok = op["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
        assert ok.endswith("Response")
        for status in ("401", "413", "422", "503"):
            assert op["responses"][status]["content"]["application/json"]["schema"]["$ref"].endswith(
                "/ErrorResponse")
    form = schemas["CaptionRequestForm"]
    assert form["properties"]["images"]["items"] == {"type": "string", "format": "binary"}
    assert "ImageRef" in json.dumps(schemas["CaptionRequest"])
    search = doc["paths"]["/v1/search"]["get"]
    assert {p["name"] for p in search["parameters"]} == {"q", "limit"}
    error_schema = search["responses"]["422"]["content"]["application/json"]["schema"]
    assert error_schema["$ref"].endswith("/ErrorResponse")
    for path in ("/healthz", "/readyz", "/metrics", "/v1/info", "/v1/images/{image_id}/thumbnail"):
        assert path in doc["paths"]
    validator = pytest.importorskip("openapi_spec_validator")
    validator.validate(doc)  # a valid OpenAPI 3.1 document


def test_openapi_examples_validate(client: httpx.Client) -> None:
    """Responses the server really gives validate against the schemas it publishes."""
    import pydantic

    from blipkit.serve import schemas

    body = client.post("/v1/caption", json={"images": [b64(png_bytes(0))], "num_beams": 1}).json()
    schemas.CaptionResponse.model_validate(body)
    error = client.post("/v1/caption", json={}).json()
    schemas.ErrorResponse.model_validate(error)
    with pytest.raises(pydantic.ValidationError):
        schemas.CaptionResponse.model_validate(error)


def test_static_files_are_packaged() -> None:
    from importlib import resources

    static = resources.files("blipkit.serve") / "static"
    assert {"index.html", "app.js", "style.css"} <= {p.name for p in static.iterdir()}


def test_the_page_never_loads_anything_from_elsewhere() -> None:
    static = Path(__file__).resolve().parents[1] / "src" / "blipkit" / "serve" / "static"
    for name in ("index.html", "app.js", "style.css"):
        text = (static / name).read_text()
        assert "http://" not in text and "https://" not in text, name
        assert "innerHTML" not in text, name  # results are put in the page as text, never as markup


def test_a_caption_only_model_serves_captions_and_refuses_the_rest(tmp_path: Path) -> None:
    import blipkit
    from blipkit.testing import make_tiny_checkpoint

    caption_only = blipkit.load(make_tiny_checkpoint("caption", tmp_path / "caption"))
    image = [b64(png_bytes(0))]
    with serving(caption_only) as running, running.client() as c:
        info = c.get("/v1/info").json()
        assert info["endpoints"] == ["caption"] and info["embedding_dim"] is None
        assert c.post("/v1/caption", json={"images": image}).status_code == 200
        for path, body in (("/v1/ask", {"images": image, "question": "what?"}),
                           ("/v1/match", {"images": image, "texts": ["a dog"]}),
                           ("/v1/embed", {"texts": ["a dog"]})):
            assert_error(c.post(path, json=body), 501, "unsupported_model")
        assert_error(c.post("/v1/tag", json={"images": image}), 501, "unsupported_task")
