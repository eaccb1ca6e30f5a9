"""Image-text retrieval metrics: Recall@K, median and mean rank in both directions (numpy only).

The inputs are a similarity matrix ``(n_images, n_texts)`` and, for each text, the index of its image
(Flickr and COCO give each image five texts). Image->text ranks the texts for each image and counts
the best-ranked correct one; text->image ranks the images for each text. Ranks start at 1. A tie with
a wrong candidate counts against the model, so a constant matrix cannot score well.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from assistant.vision.errors import DataError

RECALL_AT = (1, 5, 10)
_CHUNK_ELEMENTS = 4_000_000  # rows are compared in blocks so a COCO-sized matrix needs no copy in memory


def _check(similarity: Any, text_to_image: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    sim = np.asarray(similarity, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] == 0 or sim.shape[1] == 0:
        raise DataError(f"similarity must be a non-empty (n_images, n_texts) matrix, got shape {sim.shape}")
    gt = np.asarray(text_to_image)
    if gt.shape != (sim.shape[1],) or not np.issubdtype(gt.dtype, np.integer):
        raise DataError(f"text_to_image must hold one image index per text ({sim.shape[1]}), got {gt.shape}")
    if gt.min() < 0 or gt.max() >= sim.shape[0]:
        raise DataError(f"text_to_image has image indices outside 0..{sim.shape[0] - 1}")
    if np.isnan(sim).any():
        raise DataError("similarity matrix contains NaN")
    orphans = np.setdiff1d(np.arange(sim.shape[0]), gt)
    if orphans.size:
        raise DataError(f"{orphans.size} image(s) have no text, e.g. {orphans[:5].tolist()}")
    return sim, gt


def image_to_text_ranks(similarity: Any, text_to_image: Sequence[int]) -> np.ndarray:
    """For each image, the 1-based rank of its best-ranked correct text."""
    sim, gt = _check(similarity, text_to_image)
    n_images, n_texts = sim.shape
    best = np.full(n_images, -np.inf)
    np.maximum.at(best, gt, sim[gt, np.arange(n_texts)])
    ranks = np.empty(n_images, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // n_texts)
    for start in range(0, n_images, step):
        rows = np.arange(start, min(start + step, n_images))
        wrong = gt[None, :] != rows[:, None]
        ranks[rows] = 1 + ((sim[rows] >= best[rows, None]) & wrong).sum(axis=1)
    return ranks


def text_to_image_ranks(similarity: Any, text_to_image: Sequence[int]) -> np.ndarray:
    """For each text, the 1-based rank of its image."""
    sim, gt = _check(similarity, text_to_image)
    n_images, n_texts = sim.shape
    correct = sim[gt, np.arange(n_texts)]
    ahead = np.zeros(n_texts, dtype=np.int64)
    step = max(1, _CHUNK_ELEMENTS // n_texts)
    for start in range(0, n_images, step):
        ahead += (sim[start : start + step] >= correct[None, :]).sum(axis=0)
    return ahead  # the correct image itself is counted once by ">=", which turns the count into a rank


def _summary(prefix: str, ranks: np.ndarray, recall_at: Sequence[int]) -> dict[str, float]:
    out = {f"{prefix}_R@{k}": 100.0 * float(np.mean(ranks <= k)) for k in recall_at}
    out[f"{prefix}_medr"] = float(np.median(ranks))
    out[f"{prefix}_meanr"] = float(np.mean(ranks))
    return out


def retrieval_scores(
    similarity: Any, text_to_image: Sequence[int], *, recall_at: Sequence[int] = RECALL_AT
) -> dict[str, float | int]:
    """Recall@K (0-100), median and mean rank for image->text (``i2t_*``) and text->image (``t2i_*``).

    ``similarity[i, t]`` scores image ``i`` against text ``t``; ``text_to_image[t]`` is the index of the
    image text ``t`` describes. Also returns ``r_mean``, the mean of all Recall@K values (BLIP's
    summary number), and the matrix size.
    """
    i2t = image_to_text_ranks(similarity, text_to_image)
    t2i = text_to_image_ranks(similarity, text_to_image)
    scores: dict[str, float | int] = {**_summary("i2t", i2t, recall_at), **_summary("t2i", t2i, recall_at)}
    recalls = [value for key, value in scores.items() if "_R@" in key]
    scores["r_mean"] = float(np.mean(recalls))
    scores["n_images"] = len(i2t)
    scores["n_texts"] = len(t2i)
    return scores
