"""Search over a real index through the server, and the images it serves: only indexed files, addressed
by content hash, never by a path from the request."""

from __future__ import annotations

import io
import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from test_serve_support import RunningServer, build_tiny_model, make_image, serving

pytest.importorskip("lancedb")


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Path, Path]:
    """A tiny model, a folder of 5 images (one large) and an index of them."""
    from blipkit.index.builder import add_images, open_for

    root = tmp_path_factory.mktemp("serve_index")
    blip = build_tiny_model(root / "model")
    photos = root / "photos"
    photos.mkdir()
    for i in range(4):
        make_image(100 + i).save(photos / f"p{i}.png")
    make_image(200, (600, 400)).save(photos / "large.jpg", quality=90)
    index = open_for(blip, str(root / "db"), create=True)
    report = add_images(index, blip, [str(photos)])
    assert report.encoded == 5
    return blip, photos, root / "db"


@pytest.fixture(scope="module")
def server(indexed: tuple[Any, Path, Path]) -> Any:
    blip, _, db = indexed
    with serving(blip, index=db) as running:
        yield running


@pytest.fixture()
def client(server: RunningServer) -> Any:
    with server.client() as c:
        yield c


def test_info_reports_the_index(client: Any) -> None:
    info = client.get("/v1/info").json()
    assert info["search"] is True and info["index_size"] == 5 and "search" in info["endpoints"]
    assert "moderate" not in info["endpoints"]  # no --policy


def test_moderate_without_a_policy_is_501(client: Any) -> None:
    from test_serve_support import png_bytes

    r = client.post("/v1/moderate", files=[("images", ("a.png", png_bytes(0), "image/png"))])
    assert r.status_code == 501 and r.json()["error"]["code"] == "unsupported_task"
    assert "--policy" in r.json()["error"]["message"]


def test_search_returns_stored_captions_and_image_urls(client: Any, indexed: tuple[Any, Path, Path]) -> None:
    from blipkit.index.builder import open_for
    from blipkit.index.search import search

    blip, _, db = indexed
    r = client.get("/v1/search", params={"q": "a dog on the grass", "limit": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"] == "a dog on the grass"
    hits = body["results"]
    assert len(hits) == 3
    expected = search(open_for(blip, str(db), create=False), blip, "a dog on the grass", k=3)
    assert [h["caption"] for h in hits] == [e.caption for e in expected]
    assert [h["score"] for h in hits] == pytest.approx([e.score for e in expected])
    for hit in hits:
        assert re.fullmatch(r"[0-9a-f]{64}", hit["id"])
        assert hit["thumbnail_url"] == f"/v1/images/{hit['id']}/thumbnail"
        assert hit["image_url"] == f"/v1/images/{hit['id']}"
        assert "/" not in hit["id"] and "photos" not in str(hit)  # no file path leaves the server
    assert len(client.get("/v1/search", params={"q": "dog"}).json()["results"]) == 5


def test_thumbnails_and_originals(client: Any, indexed: tuple[Any, Path, Path]) -> None:
    from blipkit.index.scan import content_hash

    _, photos, _ = indexed
    large = (photos / "large.jpg").read_bytes()
    image_id = content_hash(large)
    r = client.get(f"/v1/images/{image_id}/thumbnail")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    thumb = Image.open(io.BytesIO(r.content))
    assert thumb.format == "JPEG" and max(thumb.size) == 256 and thumb.size == (256, 171)
    assert r.headers["cache-control"].startswith("private")
    again = client.get(f"/v1/images/{image_id}/thumbnail")  # from the cache
    assert again.content == r.content
    original = client.get(f"/v1/images/{image_id}")
    assert original.status_code == 200 and original.headers["content-type"] == "image/jpeg"
    assert original.content == large
    png_id = content_hash((photos / "p0.png").read_bytes())
    assert client.get(f"/v1/images/{png_id}").headers["content-type"] == "image/png"


@pytest.mark.parametrize("image_id", [
    "0" * 64, "..", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "etc/passwd", "A" * 64, "p0.png",
])
def test_anything_but_an_indexed_hash_is_404(client: Any, image_id: str) -> None:
    for suffix in ("", "/thumbnail"):
        r = client.get(f"/v1/images/{image_id}{suffix}")
        assert r.status_code == 404, (image_id, r.text)
        assert r.json()["error"]["code"] == "not_found"


def test_a_file_changed_since_indexing_is_not_served(indexed: tuple[Any, Path, Path], tmp_path: Path) -> None:
    from blipkit.index.builder import add_images, open_for
    from blipkit.index.scan import content_hash

    blip, photos, _ = indexed
    folder = tmp_path / "photos"
    shutil.copytree(photos, folder)
    index = open_for(blip, str(tmp_path / "db"), create=True)
    add_images(index, blip, [str(folder / "p1.png")])
    image_id = content_hash((folder / "p1.png").read_bytes())
    with serving(blip, index=tmp_path / "db") as running, running.client() as c:
        assert c.get(f"/v1/images/{image_id}").status_code == 200
        assert c.get(f"/v1/images/{image_id}/thumbnail").status_code == 200  # now cached
        stat = (folder / "p1.png").stat()
        os.utime(folder / "p1.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
        for suffix in ("", "/thumbnail"):
            r = c.get(f"/v1/images/{image_id}{suffix}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_bad_search_requests(client: Any) -> None:
    cases = (({}, "invalid_request"), ({"q": ""}, "invalid_request"), ({"q": "   "}, "bad_text"),
             ({"q": "dog", "limit": 0}, "invalid_request"), ({"q": "dog", "limit": 1000}, "invalid_request"),
             ({"q": "x" * 10_001}, "invalid_request"))
    for params, code in cases:
        r = client.get("/v1/search", params=params)
        assert r.status_code == 422, (params, r.text)
        assert r.json()["error"]["code"] == code


def test_a_missing_or_foreign_index_stops_the_server(indexed: tuple[Any, Path, Path], tmp_path: Path) -> None:
    from test_serve_support import start_server

    blip, _, _ = indexed
    fatal: list[str] = []
    running = start_server(blip, wait_ready=False, on_fatal=fatal.append, index=tmp_path / "missing")
    try:
        from test_serve_support import wait_for

        wait_for(lambda: bool(fatal))
        assert "index" in fatal[0].lower()
        with running.client() as c:
            assert c.get("/readyz").status_code == 503
    finally:
        running.stop()
    assert not (tmp_path / "missing").exists()  # opening for serving never creates an index


def test_serve_with_an_index_and_no_model_uses_the_index_model(indexed: tuple[Any, Path, Path],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """As `blipkit search --db` does: the index knows its model, so `serve --db` needs no --model (with
    the default model, the server refused to start: another model's index)."""
    from typer.testing import CliRunner

    import blipkit.serve.runner
    from blipkit.cli.main import app

    blip, _, db = indexed
    started: list[Any] = []
    monkeypatch.setattr(blipkit.serve.runner, "serve", lambda settings, **_: started.append(settings) or 0)
    assert CliRunner().invoke(app, ["serve", "--db", str(db)]).exit_code == 0
    assert started[-1].model == str(blip.checkpoint.path.resolve())
    assert CliRunner().invoke(app, ["serve", "--db", str(db), "--model", "builtin"]).exit_code == 0
    assert started[-1].model == "builtin"  # an explicit model is the user's word (and refused if foreign)
    assert CliRunner().invoke(app, ["serve"]).exit_code == 0
    assert started[-1].model == "builtin"
