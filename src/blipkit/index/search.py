"""``blipkit search``: find images in an index by text, by example image, or both.

First stage: ITC nearest neighbours of the query vector (exact search, or the ANN index on large
indexes), fused with a BM25 full-text search of the stored captions for text queries (hybrid; the
fusion is defined in :mod:`blipkit.index.fusion`). Optional second stage: the top candidates are
re-read from disk and re-ordered by the ITM head. Filters (path prefix, width/height, tags) apply
before ranking (LanceDB pre-filtering), so they never starve the top k.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from blipkit import defaults
from blipkit.errors import TextError
from blipkit.index import ann, fusion
from blipkit.index.schema import HIT_COLUMNS
from blipkit.index.store import ImageIndex, sql_string

if TYPE_CHECKING:
    from blipkit.blip import Blip


@dataclass
class SearchFilters:
    """Conditions every hit must meet; all of them at once."""

    path_prefix: str | None = None
    min_width: int | None = None
    max_width: int | None = None
    min_height: int | None = None
    max_height: int | None = None
    tags: Sequence[str] = ()  # the image's stored tags must include every one of these

    def sql(self) -> str | None:
        """A LanceDB (DataFusion SQL) filter, or None when there is nothing to filter on."""
        parts: list[str] = []
        if self.path_prefix:
            parts.append(f"starts_with(path, {sql_string(absolute_prefix(self.path_prefix))})")
        for column, op, value in (("width", ">=", self.min_width), ("width", "<=", self.max_width),
                                  ("height", ">=", self.min_height), ("height", "<=", self.max_height)):
            if value is not None:
                parts.append(f"{column} {op} {int(value)}")
        parts.extend(f"array_has(tags, {sql_string(tag)})" for tag in self.tags)
        return " AND ".join(parts) or None


def absolute_prefix(prefix: str) -> str:
    """Stored paths are absolute and resolved: make a relative prefix so too, keeping a trailing slash
    (``photos/`` must not match ``photos2/``)."""
    expanded = os.path.expanduser(prefix)
    absolute = str(Path(expanded).resolve())
    if expanded.endswith(("/", os.sep)) and not absolute.endswith(os.sep):
        absolute += os.sep
    return absolute


@dataclass
class SearchHit:
    """One image found: its rank, final score, what the index stores about it, and the score of each
    stage (``itc`` cosine, ``text`` BM25, ``itm`` probability) where it took part."""

    rank: int
    path: str
    score: float
    caption: str | None = None
    caption_confidence: float | None = None
    width: int | None = None
    height: int | None = None
    size: int | None = None
    tags: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "rank": self.rank, "path": self.path, "score": round(self.score, 6), "caption": self.caption,
            "caption_confidence": self.caption_confidence, "width": self.width, "height": self.height,
            "size": self.size, "tags": self.tags, "scores": {k: round(v, 6) for k, v in self.scores.items()},
        }


def query_vector(blip: Blip, text: str | None = None, image: Any = None) -> np.ndarray:
    """The ITC query vector of a text, an example image, or both (their normalised sum)."""
    from blipkit.tasks import embed as embed_task

    if text is None and image is None:
        raise TextError("give a text query, an example image, or both")
    parts = []
    if text is not None:
        parts.append(blip.embed_texts([text])[0])
    if image is not None:
        features = blip.encode_images([image])
        if 0 in features.errors:
            raise features.errors[0]
        parts.append(embed_task.image_vectors(blip.checkpoint, features.embeds).cpu().numpy()[0])
    vec = np.sum(parts, axis=0).astype(np.float32)
    return vec / max(float(np.linalg.norm(vec)), 1e-12)


def search(
    index: ImageIndex,
    blip: Blip,
    text: str | None = None,
    *,
    image: Any = None,
    k: int = defaults.SEARCH_K,
    hybrid: bool = True,
    text_weight: float = defaults.HYBRID_TEXT_WEIGHT,
    rerank: bool = False,
    rerank_candidates: int = defaults.RERANK_CANDIDATES,
    filters: SearchFilters | None = None,
) -> list[SearchHit]:
    """Search ``index`` (which must have been built with ``blip``'s model); best hit first.

    ``hybrid`` fuses in a full-text search of the captions (text queries only) with ``text_weight``
    against the vector ranking's 1 (:mod:`blipkit.index.fusion`); ``rerank`` re-orders the top
    ``max(k, rerank_candidates)`` by ITM (text queries only; it re-reads those images).
    """
    if text is not None and not text.strip():
        raise TextError("the search text is empty")
    _check_k(k)
    vec = query_vector(blip, text, image)
    use_rerank = rerank and text is not None
    depth = max(k, rerank_candidates) if use_rerank else k
    hits = search_vector(index, vec, text=text if hybrid else None, k=depth, filters=filters,
                         text_weight=text_weight)
    if use_rerank:
        hits = rerank_hits(blip, hits, text)  # type: ignore[arg-type]
    return hits[:k]


def _check_k(k: int) -> None:
    if isinstance(k, bool) or not isinstance(k, Integral) or k < 1:  # hits[:-1] would quietly drop one
        raise ValueError(f"k (how many results) must be an integer >= 1, not {k!r}")


def search_vector(
    index: ImageIndex,
    vector: np.ndarray,
    *,
    text: str | None = None,
    k: int = defaults.SEARCH_K,
    candidates: int = defaults.SEARCH_CANDIDATES,
    filters: SearchFilters | None = None,
    text_weight: float = defaults.HYBRID_TEXT_WEIGHT,
) -> list[SearchHit]:
    """First-stage search with a ready query vector; with ``text``, hybrid with the caption full-text
    (weighted ``text_weight``; 0 leaves the full text out)."""
    _check_k(k)
    if not text_weight >= 0:
        raise ValueError(f"text_weight must be >= 0, not {text_weight}")
    table = index.images()
    if table is None or index.count() == 0:
        return []
    text = text if text_weight > 0 else None
    where = (filters or SearchFilters()).sql()
    depth = max(k, candidates) if text else k
    vec = np.asarray(vector, dtype=np.float32).reshape(-1)
    rows: dict[str, dict[str, Any]] = {}
    itc: dict[str, float] = {}
    vector_ranked: list[str] = []
    for row in _vector_query(table, vec, depth, where, index.count()):
        rows[row["path"]] = row
        itc[row["path"]] = 1.0 - float(row["_distance"])
        vector_ranked.append(row["path"])
    text_ranked: list[str] = []
    bm25: dict[str, float] = {}
    if text:
        for row in _text_query(table, text, depth, where):
            path = row["path"]
            text_ranked.append(path)
            bm25[path] = float(row["_score"])
            if path not in rows:
                rows[path] = row
                itc[path] = float(np.dot(np.asarray(row["vector"], dtype=np.float32), vec))
    scores = fusion.rrf(vector_ranked, text_ranked, text_weight=text_weight) if text_ranked else dict(itc)
    order = sorted(rows, key=lambda p: (-scores[p], -itc[p], p))
    hits = []
    for rank, path in enumerate(order[:k], start=1):
        row = rows[path]
        stage = {"itc": itc[path]}
        if path in bm25:
            stage["text"] = bm25[path]
        hits.append(SearchHit(
            rank=rank, path=path, score=float(scores[path]), caption=row.get("caption"),
            caption_confidence=row.get("caption_confidence"), width=row.get("width"),
            height=row.get("height"), size=row.get("size"), tags=list(row.get("tags") or []), scores=stage,
        ))
    return hits


def _vector_query(table: Any, vec: np.ndarray, limit: int, where: str | None, rows: int
                  ) -> list[dict[str, Any]]:
    nprobes, refine = ann.tune_query(rows) if ann.has_vector_index(table) else (None, None)
    return ann.nearest(table, vec, limit, columns=HIT_COLUMNS, nprobes=nprobes, refine_factor=refine,
                       where=where).to_pylist()


def _text_query(table: Any, text: str, limit: int, where: str | None) -> list[dict[str, Any]]:
    from lancedb.query import MatchQuery

    if not any(idx.index_type == "FTS" for idx in table.list_indices()):
        return []  # an index whose build was cut short before its full-text index; vector search only
    query = table.search(MatchQuery(text, "caption"), query_type="fts").limit(limit)
    if where:
        query = query.where(where, prefilter=True)
    return query.select([*HIT_COLUMNS, ann.VECTOR_COLUMN, "_score"]).to_arrow().to_pylist()


def rerank_hits(blip: Blip, hits: list[SearchHit], text: str) -> list[SearchHit]:
    """Re-order ``hits`` by the ITM probability that ``text`` describes each image (re-read from disk;
    images that can no longer be read go last)."""
    if not hits:
        return hits
    # Never fetch over the network while searching: rows keyed on URLs are not re-scored (ranked last).
    features = blip.encode_images([h.path for h in hits], allow_urls=False)
    probs = blip.match_pairs(features, [text] * len(hits))
    itm = {h.path: float(p) for h, p in zip(hits, probs, strict=True)}
    by_path = {h.path: h for h in hits}
    out = []
    for rank, path in enumerate(fusion.rerank_order([h.path for h in hits], itm), start=1):
        hit = by_path[path]
        p = itm[path]
        if not math.isnan(p):
            hit.scores["itm"] = p
        hit.score = p if not math.isnan(p) else 0.0
        hit.rank = rank
        out.append(hit)
    return out
