"""Search over an index: known right answers by example image and by planted vectors, hybrid fusion,
filters, ITM re-ranking, the ANN index, and the CLI."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from blipkit import defaults
from blipkit.index import ImageIndex, SearchFilters, add_images, ann, fusion, open_for, search, search_vector
from test_index_helpers import FAST, blip, cli_app, make_images, tiny_builtin  # noqa: F401

DIM = 8


@pytest.fixture(scope="module")
def photo_index(blip, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    root = tmp_path_factory.mktemp("search")
    images = make_images(root / "photos" / "cats", 5) + make_images(root / "photos" / "dogs", 4, seed=3)
    index = open_for(blip, str(root / "db"))
    add_images(index, blip, [str(root / "photos")], settings=FAST)
    return index, images, root


def _planted(tmp_path: Path, vectors: np.ndarray, captions: list[str], **columns: list) -> ImageIndex:
    """An index whose rows have known vectors and captions (no model involved)."""
    fingerprint = {"model": "planted", "architecture": "test", "embed_dim": vectors.shape[1]}
    index = ImageIndex.open(tmp_path / "db", fingerprint=fingerprint, dim=vectors.shape[1], create=True)
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i, (vec, caption) in enumerate(zip(vectors, captions, strict=True)):
        row = {"path": f"/planted/{i:04d}.jpg", "hash": f"h{i}", "size": 100 + i, "mtime_ns": i,
               "width": 100 + 10 * i, "height": 50, "caption": caption, "caption_confidence": 0.5,
               "vector": (vec / np.linalg.norm(vec)).tolist(), "tags": ["dog"] if i % 2 else ["cat"],
               "tag_scores": [0.9], "indexed_at": now}
        row.update({k: v[i] for k, v in columns.items()})
        rows.append(row)
    index.upsert(rows)
    index.maintain()
    return index


def test_query_by_example_image_finds_that_image_first(blip, photo_index) -> None:  # noqa: F811
    index, images, _ = photo_index
    for path in images[::3]:
        hits = search(index, blip, image=str(path), k=3)
        assert hits[0].path == str(path.resolve())
        assert hits[0].scores["itc"] == pytest.approx(1.0, abs=1e-4)
        assert [h.rank for h in hits] == [1, 2, 3]
        assert hits[0].score >= hits[1].score >= hits[2].score


def test_filters_apply_before_ranking(blip, photo_index) -> None:  # noqa: F811
    index, images, root = photo_index
    dogs = str(root / "photos" / "dogs") + "/"
    hits = search(index, blip, image=str(images[0]), k=20, filters=SearchFilters(path_prefix=dogs))
    assert len(hits) == 4 and all(h.path.startswith(dogs) for h in hits)
    wide = search(index, blip, "a cat", k=20, filters=SearchFilters(min_width=40, max_height=24))
    assert wide and all(h.width >= 40 and h.height <= 24 for h in wide)
    tag = search(index, blip, image=str(images[0]), k=1)[0].tags[0]
    tagged = search(index, blip, "anything", k=20, filters=SearchFilters(tags=[tag]))
    assert tagged and all(tag in h.tags for h in tagged)
    assert search(index, blip, "x", filters=SearchFilters(tags=["no-such-tag"])) == []


def test_rerank_orders_by_itm(blip, photo_index) -> None:  # noqa: F811
    index, _, _ = photo_index
    query = "a dog on the grass"
    hits = search(index, blip, query, k=9, rerank=True, rerank_candidates=9)
    assert len(hits) == 9 and all("itm" in h.scores for h in hits)
    expected = {r.image: r.score for r in blip.match([h.path for h in hits], query)}
    assert [h.scores["itm"] for h in hits] == pytest.approx([expected[h.path] for h in hits], abs=1e-5)
    assert [h.scores["itm"] for h in hits] == sorted((h.scores["itm"] for h in hits), reverse=True)


def test_hybrid_fusion_on_planted_rows(tmp_path: Path) -> None:
    query = np.eye(DIM, dtype=np.float32)[0]
    # cosine with the query falls with i; only row 2's caption mentions a red bicycle
    vectors = np.stack([query * (1.0 - 0.1 * i) + np.eye(DIM)[1] * 0.1 * i for i in range(6)])
    captions = ["a dog running", "a dog sleeping", "a red bicycle on a wall", "a dog", "a cat", "a cat"]
    index = _planted(tmp_path, vectors, captions)
    plain = search_vector(index, query, k=6)
    assert [h.path for h in plain] == [f"/planted/{i:04d}.jpg" for i in range(6)]
    k = defaults.HYBRID_RRF_K
    # the default weights: the caption match (vector rank 3) is nudged up one place, not to the top
    nudged = search_vector(index, query, text="red bicycle", k=6)
    assert [h.path for h in nudged[:3]] == ["/planted/0000.jpg", "/planted/0002.jpg", "/planted/0001.jpg"]
    expected = defaults.HYBRID_VECTOR_WEIGHT / (k + 3) + defaults.HYBRID_TEXT_WEIGHT / (k + 1)
    assert nudged[1].score == pytest.approx(expected) and "text" in nudged[1].scores
    assert nudged[0].score == pytest.approx(defaults.HYBRID_VECTOR_WEIGHT / (k + 1))
    # a heavier text weight lets the caption match win
    heavy = search_vector(index, query, text="red bicycle", k=6, text_weight=1.0)
    assert heavy[0].path == "/planted/0002.jpg"
    assert heavy[0].score == pytest.approx(defaults.HYBRID_VECTOR_WEIGHT / (k + 3) + 1.0 / (k + 1))
    # ... and surfaces a caption match from far down the vector ranking
    deep = search_vector(index, query, text="cat", k=2, candidates=6, text_weight=1.0)
    assert "/planted/0004.jpg" in {h.path for h in deep}
    for bad_k in (0, -1):
        with pytest.raises(ValueError, match="k \\(how many results\\)"):
            search_vector(index, query, k=bad_k)
    # weight 0 is the vector ranking alone; a negative weight is refused
    assert search_vector(index, query, text="red bicycle", k=6, text_weight=0.0) == plain
    with pytest.raises(ValueError, match="text_weight"):
        search_vector(index, query, text="red bicycle", k=6, text_weight=-1.0)


def test_filters_quote_paths_and_tags(tmp_path: Path) -> None:
    vectors = np.random.default_rng(0).standard_normal((4, DIM)).astype(np.float32)
    paths = ["/data/it's/a.jpg", "/data/it's/b.jpg", "/data/its/c.jpg", "/data/it's2/d.jpg"]
    index = _planted(tmp_path, vectors, ["a"] * 4, path=paths)
    hits = search_vector(index, vectors[0], k=10, filters=SearchFilters(path_prefix="/data/it's/"))
    assert sorted(h.path for h in hits) == paths[:2]
    hits = search_vector(index, vectors[0], k=10, filters=SearchFilters(tags=["it's"]))
    assert hits == []


def test_rrf_and_rerank_order_units() -> None:
    scores = fusion.rrf(["a", "b", "c"], ["c", "d"], vector_weight=1.0, text_weight=0.5, k=60)
    assert scores["c"] == pytest.approx(1 / 63 + 0.5 / 61)
    assert scores["d"] == pytest.approx(0.5 / 62)
    assert set(scores) == {"a", "b", "c", "d"}
    order = fusion.rerank_order(["a", "b", "c", "d"], {"a": 0.2, "b": float("nan"), "c": 0.9, "d": 0.2})
    assert order == ["c", "a", "d", "b"]


def test_ann_index_is_built_past_the_threshold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(defaults, "ANN_INDEX_MIN_ROWS", 300)
    rng = np.random.default_rng(1)
    vectors = rng.standard_normal((320, DIM)).astype(np.float32)
    index = _planted(tmp_path, vectors, [f"caption {i}" for i in range(320)])
    assert ann.has_vector_index(index.images())
    (built,) = [i for i in index.images().list_indices() if ann.VECTOR_COLUMN in i.columns]
    assert built.index_type.upper().replace("_", "") == defaults.ANN_INDEX_TYPE.replace("_", "")
    assert index.meta["ann_rows"] == 320
    for i in (0, 77, 319):
        assert search_vector(index, vectors[i], k=5)[0].path == f"/planted/{i:04d}.jpg"


def test_nearest_matches_lancedb_sync_api_inside_and_outside_an_event_loop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    monkeypatch.setattr(defaults, "ANN_INDEX_MIN_ROWS", 300)
    rng = np.random.default_rng(2)
    vectors = rng.standard_normal((320, DIM)).astype(np.float32)
    table = _planted(tmp_path, vectors, [f"caption {i}" for i in range(320)]).images()
    query = vectors[5] / np.linalg.norm(vectors[5])
    where = "path < '/planted/0100.jpg'"
    for kwargs in ({}, {"nprobes": 1, "refine_factor": 5}):
        for filt in (None, where):
            expected = table.search(query, vector_column_name=ann.VECTOR_COLUMN).distance_type(ann.METRIC)
            for name, value in kwargs.items():
                expected = getattr(expected, name)(value)
            if filt:
                expected = expected.where(filt, prefilter=True)
            expected = expected.limit(7).select(["path", "_distance"]).to_arrow()
            got = ann.nearest(table, query, 7, columns=["path"], where=filt, **kwargs)
            assert got["path"].to_pylist() == expected["path"].to_pylist()
            assert got.column_names == ["path", "_distance"]
            assert not filt or all(p < "/planted/0100.jpg" for p in got["path"].to_pylist())

    sync_calls = []
    sync_search = table.search
    monkeypatch.setattr(table, "search", lambda *a, **kw: sync_calls.append(1) or sync_search(*a, **kw))
    assert ann.nearest(table, query, 3, columns=["path"])["path"][0].as_py() == "/planted/0005.jpg"
    assert not sync_calls  # outside an event loop: the native async handle, on this thread's own loop

    async def inside_a_loop() -> list[str]:  # e.g. called from an async web handler: no nested loop
        return ann.nearest(table, query, 3, columns=["path"])["path"].to_pylist()

    assert asyncio.run(inside_a_loop())[0] == "/planted/0005.jpg"
    assert sync_calls == [1]


def test_ann_partitions_are_few_and_probed_whole_up_to_a_million_rows() -> None:
    assert ann.partitions_for(defaults.ANN_INDEX_MIN_ROWS) == 1
    assert ann.partitions_for(1_000_000) == 31 <= defaults.ANN_NPROBES
    assert ann.tune_query(1_000_000) == (31, defaults.ANN_REFINE_FACTOR)  # every partition: no data shape
    nprobes, _ = ann.tune_query(10_000_000)  # past that, a tenth of them: real embeddings cluster
    assert nprobes == defaults.ANN_NPROBES < ann.partitions_for(10_000_000)


def test_cli_search(cli_app, photo_index) -> None:  # noqa: F811
    _, images, root = photo_index
    runner = CliRunner()
    result = runner.invoke(cli_app, ["search", "--db", str(root / "db"), "--image", str(images[1]), "-k", "2",
                                     "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows[0]["path"] == str(images[1].resolve()) and len(rows) == 2
    assert {"rank", "score", "caption", "width", "height", "tags", "scores"} <= set(rows[0])
    result = runner.invoke(cli_app, ["search", "a dog", "--db", str(root / "db"), "--tag", "no-such-tag"])
    assert result.exit_code == 0 and "no results" in result.output
    result = runner.invoke(cli_app, ["search", "--db", str(root / "db")])
    assert result.exit_code == 1
