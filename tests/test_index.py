"""The persistent image index: what a row holds, incremental runs, failures, prune, stats, model checks."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blipkit.errors import IndexModelMismatchError, IndexNotFoundError, SearchIndexError
from blipkit.index import ImageIndex, add_images, open_for, prune
from blipkit.index.scan import content_hash
from blipkit.index.schema import META_FILE
from blipkit.tasks.tags import read_labels
from test_index_helpers import FAST, blip, cli_app, make_images, tiny_builtin  # noqa: F401


def _rows(index: ImageIndex) -> dict[str, dict]:
    table = index.images()
    rows = ImageIndex.read(table, table.schema.names).to_pylist()
    paths = [r["path"] for r in rows]
    assert len(paths) == len(set(paths)), "duplicate rows"
    return {r["path"]: r for r in rows}


def test_add_stores_everything_about_each_image(blip, tmp_path: Path) -> None:  # noqa: F811
    images = make_images(tmp_path / "photos", 6)
    (tmp_path / "photos" / "notes.txt").write_text("not an image, not picked up")
    index = open_for(blip, str(tmp_path / "db"))
    report = add_images(index, blip, [str(tmp_path / "photos")], settings=FAST)
    assert (report.found, report.encoded, report.failed) == (6, 6, 0)
    rows = _rows(index)
    assert sorted(rows) == sorted(str(p.resolve()) for p in images)
    vocabulary = set(read_labels(None))
    # The same model on the same images, outside the index, must give the same caption and vector.
    direct_caps = blip.caption([str(p) for p in images], settings=FAST)
    direct_vecs = blip.embed_images([str(p) for p in images])
    for path, cap, vec in zip(images, direct_caps, direct_vecs, strict=True):
        row = rows[str(path.resolve())]
        data = path.read_bytes()
        st = path.stat()
        assert row["hash"] == content_hash(data) and len(row["hash"]) == 64
        assert (row["size"], row["mtime_ns"]) == (len(data), st.st_mtime_ns)
        with __import__("PIL.Image").Image.open(path) as im:
            assert (row["width"], row["height"]) == im.size
        assert row["caption"] == cap.caption
        assert row["caption_confidence"] == pytest.approx(cap.confidence, rel=1e-4)
        assert np.allclose(row["vector"], vec, atol=1e-5)
        assert len(row["tags"]) == 5 and set(row["tags"]) <= vocabulary
        assert row["tag_scores"] == sorted(row["tag_scores"], reverse=True)
    meta = json.loads((tmp_path / "db" / META_FILE).read_text())
    assert meta["fingerprint"]["architecture"] == "BuiltinBlipModel" and meta["dim"] == blip.embedding_dim
    stats = index.stats()
    assert stats["images"] == 6 and stats["failed"] == 0
    assert any("FTS" in name for name in stats["indexes"])


def test_rerun_is_incremental(blip, tmp_path: Path) -> None:  # noqa: F811
    photos = tmp_path / "photos"
    images = make_images(photos, 5)
    index = open_for(blip, str(tmp_path / "db"))
    add_images(index, blip, [str(photos)], settings=FAST)
    before = _rows(index)

    again = add_images(index, blip, [str(photos)], settings=FAST)
    assert (again.unchanged, again.encoded, again.reused) == (5, 0, 0)

    # touched (same bytes, new mtime): re-hashed, not re-encoded
    os.utime(images[0], ns=(1_000_000_000, 1_000_000_000))
    # changed content: re-encoded
    make_images(tmp_path / "other", 1, seed=99)[0].replace(images[1])
    # a copy under a new name: reused from the row with the same content
    shutil.copy(images[2], photos / "copy.png")
    # a brand-new image
    make_images(photos, 1, seed=7, prefix="new")
    report = add_images(index, blip, [str(photos)], settings=FAST)
    assert (report.unchanged, report.encoded, report.reused) == (3, 2, 2)
    after = _rows(index)
    assert len(after) == 7
    p0, p1, p2 = (str(p.resolve()) for p in images[:3])
    assert after[p0]["mtime_ns"] == 1_000_000_000 and after[p0]["vector"] == before[p0]["vector"]
    assert after[p1]["hash"] != before[p1]["hash"]
    assert after[p1]["hash"] == content_hash(images[1].read_bytes())
    copy = after[str((photos / "copy.png").resolve())]
    assert copy["hash"] == after[p2]["hash"] and copy["vector"] == after[p2]["vector"]


def test_bad_files_are_recorded_not_retried_and_recover(blip, tmp_path: Path) -> None:  # noqa: F811
    photos = tmp_path / "photos"
    make_images(photos, 2)
    bad = photos / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 truncated jpeg")
    index = open_for(blip, str(tmp_path / "db"))
    report = add_images(index, blip, [str(photos)], settings=FAST)
    assert (report.encoded, report.failed) == (2, 1)
    assert report.errors[0][0] == str(bad.resolve())
    assert report.errors[0][1].startswith(str(bad.resolve()))  # the message names the file
    assert index.failures().count_rows() == 1

    again = add_images(index, blip, [str(photos)], settings=FAST)
    assert (again.unchanged, again.failed) == (3, 0)  # the unchanged bad file is not retried

    make_images(tmp_path / "fix", 1, seed=5)[0].replace(bad)  # now a real image (PNG bytes, .jpg name)
    fixed = add_images(index, blip, [str(photos)], settings=FAST)
    assert (fixed.encoded, fixed.failed) == (1, 0)
    assert index.failures().count_rows() == 0 and index.count() == 3


def test_prune_removes_deleted_files_only(blip, tmp_path: Path) -> None:  # noqa: F811
    a = make_images(tmp_path / "a", 3)
    b = make_images(tmp_path / "b", 2, seed=1)
    index = open_for(blip, str(tmp_path / "db"))
    add_images(index, blip, [str(tmp_path / "a"), str(tmp_path / "b")], settings=FAST)
    a[0].unlink()
    b[0].unlink()
    assert prune(index, under=[str(tmp_path / "a")]) == [str(a[0].resolve())]
    assert index.count() == 4
    assert prune(index) == [str(b[0].resolve())]
    assert sorted(_rows(index)) == sorted(str(p.resolve()) for p in [*a[1:], *b[1:]])
    # rows that `blipkit job index` keys on URLs or archive members are not local files: never pruned
    archive = tmp_path / "shard.tar"
    archive.write_bytes(b"")
    template = _rows(index)[str(a[1].resolve())]
    index.upsert([{**template, "path": "https://example.com/x.jpg"},
                  {**template, "path": f"{archive}#x.jpg"}])
    assert prune(index) == []
    assert index.count() == 5


def test_refuses_to_mix_models(blip, tmp_path: Path) -> None:  # noqa: F811
    make_images(tmp_path / "p", 1)
    db = tmp_path / "db"
    add_images(open_for(blip, str(db)), blip, [str(tmp_path / "p")], settings=FAST)
    other = dict(blip.checkpoint.fingerprint, image_size=[64, 64], model="some-other-model")
    with pytest.raises(IndexModelMismatchError, match="some-other-model"):
        ImageIndex.open(db, fingerprint=other, dim=16)
    with pytest.raises(IndexNotFoundError):
        ImageIndex.open(tmp_path / "nothing-here")
    # the same weights under another name are the same embedding space
    ImageIndex.open(db, fingerprint=dict(blip.checkpoint.fingerprint, model="alias"), dim=16)


def test_an_index_is_only_created_in_a_new_or_empty_folder(blip, tmp_path: Path) -> None:  # noqa: F811
    fp, dim = blip.checkpoint.fingerprint, blip.embedding_dim
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "photo.jpg").write_bytes(b"x")
    for taken in ("a-file", "full"):
        with pytest.raises(SearchIndexError, match="is not a blipkit index"):
            ImageIndex.open(tmp_path / taken, fingerprint=fp, dim=dim, create=True)
    (tmp_path / "ro").mkdir(mode=0o500)
    if not os.access(tmp_path / "ro", os.W_OK):  # root writes anywhere
        with pytest.raises(SearchIndexError, match="cannot create an index"):
            ImageIndex.open(tmp_path / "ro" / "db", fingerprint=fp, dim=dim, create=True)
    (tmp_path / "empty").mkdir()
    ImageIndex.open(tmp_path / "empty", fingerprint=fp, dim=dim, create=True)
    ImageIndex.open(tmp_path / "new" / "nested", fingerprint=fp, dim=dim, create=True)


def test_cli_index_add_stats_prune(cli_app, tiny_builtin, tmp_path: Path) -> None:  # noqa: F811
    images = make_images(tmp_path / "photos", 3)
    db = tmp_path / "db"
    runner = CliRunner()
    args = ["index", "add", str(tmp_path / "photos"), "--db", str(db), "--model", str(tiny_builtin),
            "--decoding", "greedy", "--max-new-tokens", "4", "--json", "--no-progress"]
    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["encoded"] == 3
    # no --model: the index's own model is used
    result = runner.invoke(cli_app, [*args[:5], "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout.strip().splitlines()[-1])["unchanged"] == 3
    images[0].unlink()
    result = runner.invoke(cli_app, ["index", "prune", "--db", str(db), "--json"])
    assert json.loads(result.stdout)["removed"] == 1
    result = runner.invoke(cli_app, ["index", "stats", "--db", str(db), "--json"])
    stats = json.loads(result.stdout)
    assert stats["images"] == 2 and stats["fingerprint"]["architecture"] == "BuiltinBlipModel"
    missing = runner.invoke(cli_app, ["index", "stats", "--db", str(tmp_path / "none")])
    assert missing.exit_code == 1 and "no blipkit index" in missing.output


def test_an_index_made_with_a_relative_model_path_is_searched_from_anywhere(
    cli_app, tiny_builtin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """The index records a local model folder by its absolute path: `search` without --model, run from
    another folder, loads the model that built it (a relative name would point nowhere, or elsewhere)."""
    make_images(tmp_path / "photos", 2)
    shutil.copytree(tiny_builtin, tmp_path / "work" / "mymodel")
    monkeypatch.chdir(tmp_path / "work")
    runner = CliRunner()
    result = runner.invoke(cli_app, ["index", "add", "../photos", "--db", "../db", "--model", "mymodel",
                                     "--decoding", "greedy", "--max-new-tokens", "4", "--no-progress"])
    assert result.exit_code == 0, result.output
    stored = json.loads((tmp_path / "db" / META_FILE).read_text())["fingerprint"]["model"]
    assert stored == str((tmp_path / "work" / "mymodel").resolve())
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(cli_app, ["search", "a photo", "--db", "db", "-k", "2", "--json"])
    assert result.exit_code == 0, result.output
    assert len(result.stdout.strip().splitlines()) == 2
