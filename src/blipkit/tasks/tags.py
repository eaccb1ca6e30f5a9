"""Zero-shot tags: score an image against a vocabulary of labels with BLIP's ITC embeddings, and optionally
re-score the best ones with the ITM head.

A label's ITC score is ``softmax(cosine(image, "a photo of a {label}") / T)`` over the whole vocabulary
(T: the checkpoint's learned ITC temperature, else :data:`blipkit.defaults.ITC_TEMPERATURE`), as in
CLIP-style zero-shot classification. The ITM score is the ITM head's probability that the prompt
describes the image: an absolute, per-label probability, which suits a threshold better.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import torch

from blipkit import defaults
from blipkit.errors import PolicyError
from blipkit.results import TagResult
from blipkit.runtime.checkpoint import ITM, Checkpoint
from blipkit.runtime.encoding import ImageFeatures, batched, check_text
from blipkit.tasks import embed as embed_task
from blipkit.tasks import match as match_task

BUILTIN_LABELS = "labels.txt"


def read_labels(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Labels from a text file (one per line; blank lines and ``#`` comments skipped), or blipkit's
    built-in everyday vocabulary when ``path`` is None."""
    if path is None:
        text = (resources.files("blipkit") / "assets" / BUILTIN_LABELS).read_text(encoding="utf-8")
        source = "the built-in vocabulary"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicyError(f"cannot read labels from {path}: {exc}") from exc
        source = str(path)
    labels = [line.strip() for line in text.splitlines()]
    labels = list(dict.fromkeys(x for x in labels if x and not x.startswith("#")))
    if not labels:
        raise PolicyError(f"{source} has no labels")
    return labels


def prompts(labels: Sequence[str], template: str = defaults.TAG_PROMPT) -> list[str]:
    """One prompt per label; a prompt that is not a usable text (too long...) names its label."""
    if "{label}" not in template:
        raise PolicyError(f"the prompt template {template!r} has no {{label}} placeholder")
    out = [template.format(label=label) for label in labels]
    for label, text in zip(labels, out, strict=True):
        check_text(text, f"the prompt of label {label[:40]!r}{'...' if len(label) > 40 else ''}")
    return out


def temperature(ckpt: Checkpoint) -> float:
    """The checkpoint's learned ITC temperature, or BLIP's initial one."""
    learned = getattr(ckpt.model, "itc_temperature", None)
    if isinstance(learned, torch.Tensor):
        return float(learned.detach().float().cpu())
    return defaults.ITC_TEMPERATURE


def text_matrix(ckpt: Checkpoint, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
    """L2-normalised ITC vectors of ``texts``, one row each."""
    parts = [embed_task.text_vectors(ckpt, chunk).cpu().numpy()
             for _, chunk in batched(list(texts), batch_size)]
    return np.concatenate(parts).astype(np.float32)


def softmax_scores(image_vecs: np.ndarray, text_vecs: np.ndarray, temp: float) -> np.ndarray:
    """softmax over the texts of cosine / temp, for each image row."""
    logits = (image_vecs @ text_vecs.T) / temp
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=1, keepdims=True)


def pick(scores: np.ndarray, labels: Sequence[str], k: int | None, threshold: float | None
         ) -> list[tuple[str, float]]:
    """Best labels of one image: the top ``k`` (all when None), then those at or above ``threshold``."""
    order = np.argsort(-scores, kind="stable")
    if k is not None:
        order = order[:k]
    out = [(labels[i], float(scores[i])) for i in order]
    if threshold is not None:
        out = [(label, s) for label, s in out if s >= threshold]
    return out


def itm_rescore(ckpt: Checkpoint, features: ImageFeatures, candidates: list[list[str]],
                template: str = defaults.TAG_PROMPT) -> list[dict[str, float]]:
    """ITM probability of each candidate label's prompt for each input image (empty for failed ones)."""
    ckpt.require(ITM)
    out: list[dict[str, float]] = [{} for _ in range(len(features))]
    pairs = [(i, label) for i, labels in enumerate(candidates) if features.row_of(i) is not None
             for label in labels]
    for _, chunk in batched(pairs, 64):
        embeds = features.embeds[[features.row_of(i) for i, _ in chunk]]
        scores = match_task.itm_scores(ckpt, embeds, prompts([label for _, label in chunk], template))
        for (i, label), score in zip(chunk, scores, strict=True):
            out[i][label] = float(score)
    return out


def tag_features(
    ckpt: Checkpoint,
    features: ImageFeatures,
    labels: Sequence[str],
    *,
    k: int | None = defaults.TAG_TOP_K,
    threshold: float | None = None,
    itm: bool = False,
    itm_candidates: int = defaults.TAG_ITM_CANDIDATES,
    template: str = defaults.TAG_PROMPT,
    label_vectors: np.ndarray | None = None,
) -> list[TagResult]:
    """Zero-shot tags of encoded images: one :class:`TagResult` per input, best tag first.

    ITC scores every label; with ``itm``, the best ``max(k, itm_candidates)`` are re-scored by the ITM
    head and ranked by that probability. ``k`` and ``threshold`` then apply to the final scores.
    ``label_vectors`` (from :func:`text_matrix` over :func:`prompts`) saves re-encoding the
    vocabulary across calls.
    """
    if k is not None and (isinstance(k, bool) or k < 1):  # labels[:-1] would quietly drop one
        raise ValueError(f"k (tags per image) must be >= 1 or None, not {k!r}")
    results = [TagResult(image=label) for label in features.labels]
    for i, exc in features.errors.items():
        results[i].fail(exc)
    if not features.rows:
        return results
    if label_vectors is None:
        label_vectors = text_matrix(ckpt, prompts(labels, template))
    image_vecs = embed_task.image_vectors(ckpt, features.embeds).cpu().numpy()
    scores = softmax_scores(image_vecs, label_vectors, temperature(ckpt))
    if not itm:
        for row, i in enumerate(features.rows):
            results[i].tags = pick(scores[row], labels, k, threshold)
        return results
    n_candidates = max(k or 0, itm_candidates)
    candidates: list[list[str]] = [[] for _ in range(len(features))]
    for row, i in enumerate(features.rows):
        candidates[i] = [label for label, _ in pick(scores[row], labels, n_candidates, None)]
    rescored = itm_rescore(ckpt, features, candidates, template)
    for i in features.rows:
        names = candidates[i]
        results[i].tags = pick(np.array([rescored[i][n] for n in names]), names, k, threshold)
    return results
