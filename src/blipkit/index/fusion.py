"""How search combines its rankings: the one place that defines the hybrid and re-ranking scores.

Hybrid (text queries): the ITC vector ranking and the full-text (BM25 on stored captions) ranking are
fused by weighted reciprocal rank fusion (RRF):

    score(image) = HYBRID_VECTOR_WEIGHT / (HYBRID_RRF_K + vector_rank)
                 + HYBRID_TEXT_WEIGHT   / (HYBRID_RRF_K + text_rank)

ranks counted from 1, a term dropped for a list the image is not in. Ranks rather than raw scores are
fused because cosine similarities and BM25 scores live on unrelated scales that vary per model and
per query. Weights: :mod:`blipkit.defaults` (1.0 and 0.1, RRF_K = 10, measured on Flickr8k val; the
text weight is a parameter of every search, for caption models whose captions deserve more).

Re-ranking: the top candidates are ordered by the ITM head's match probability; the first-stage order
breaks ties and ranks candidates whose image could not be re-read last.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence

from blipkit import defaults


def rrf(
    vector_ranked: Sequence[Hashable],
    text_ranked: Sequence[Hashable],
    *,
    vector_weight: float = defaults.HYBRID_VECTOR_WEIGHT,
    text_weight: float = defaults.HYBRID_TEXT_WEIGHT,
    k: int = defaults.HYBRID_RRF_K,
) -> dict[Hashable, float]:
    """Weighted reciprocal-rank fusion of two rankings (best first) into one score per item."""
    scores: dict[Hashable, float] = {}
    for weight, ranked in ((vector_weight, vector_ranked), (text_weight, text_ranked)):
        for rank, key in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + weight / (k + rank)
    return scores


def rerank_order(first_stage: Sequence[Hashable], itm: dict[Hashable, float]) -> list[Hashable]:
    """Candidates ordered by ITM probability (NaN or missing: last), first-stage order breaking ties."""
    position = {key: i for i, key in enumerate(first_stage)}

    def sort_key(key: Hashable) -> tuple[int, float, int]:
        p = itm.get(key)
        missing = p is None or math.isnan(p)
        return (1 if missing else 0, 0.0 if missing else -float(p), position[key])  # type: ignore[arg-type]

    return sorted(first_stage, key=sort_key)
