"""Policy-driven image moderation with zero-shot prompts, and threshold calibration on labelled images.

A policy (YAML) lists categories, each with positive prompts (what the category looks like), negative
prompts (what it is commonly confused with, or its absence) and a threshold::

    method: itc            # itc (fast, default) or itm (the ITM head: slower, often sharper)
    categories:
      - name: weapon
        positive: ["a photo of a gun", "a photo of a knife held as a weapon"]
        negative: ["a photo of a kitchen knife on a table", "a photo of a toy"]
        threshold: 0.6

A category's score is the share of the evidence that goes to its positive prompts:
``sum_pos e_j / sum_all e_j``, where ``e_j = exp(cosine_j / T)`` for ``itc`` (a softmax over the
category's prompts) and ``e_j = p_j / (1 - p_j)``, the odds of the ITM match probability, for ``itm``.
An image is flagged for a category when its score reaches the threshold; its caption (from the same
vision pass) is given as the explanation.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from blipkit import defaults
from blipkit.errors import DataError, PolicyError
from blipkit.results import Result
from blipkit.runtime.checkpoint import CAPTION, ITM, Checkpoint
from blipkit.runtime.encoding import ImageFeatures, batched
from blipkit.tasks import embed as embed_task
from blipkit.tasks import match as match_task
from blipkit.tasks import tags as tags_task
from blipkit.tasks.generation import GenerationSettings

METHODS = ("itc", "itm")


@dataclass
class Category:
    name: str
    positive: list[str]
    negative: list[str]
    threshold: float = defaults.MODERATION_THRESHOLD
    calibration: dict[str, Any] | None = None

    @property
    def prompts(self) -> list[str]:
        return [*self.positive, *self.negative]


@dataclass
class Policy:
    categories: list[Category]
    method: str = "itc"

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Policy:
        """Read and validate a policy file (YAML or JSON)."""
        import yaml

        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
            raise PolicyError(f"cannot read the policy {path}: {exc}") from exc
        return cls.from_dict(data, str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "policy") -> Policy:
        categories_ok = isinstance(data, dict) and isinstance(data.get("categories"), list)
        if not categories_ok or not data["categories"]:
            raise PolicyError(f"{source}: a policy is a mapping with a non-empty `categories` list")
        method = str(data.get("method", "itc"))
        if method not in METHODS:
            raise PolicyError(f"{source}: method must be one of {METHODS}, not {method!r}")
        categories, seen = [], set()
        for i, raw in enumerate(data["categories"]):
            where = f"{source}: category #{i + 1}"
            if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) or not raw["name"].strip():
                raise PolicyError(f"{where} needs a `name`")
            name = raw["name"].strip()
            if name in seen:
                raise PolicyError(f"{source}: category {name!r} appears twice")
            seen.add(name)
            lists = {}
            for key in ("positive", "negative"):
                value = raw.get(key)
                if isinstance(value, str):
                    value = [value]
                if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip()
                                                                       for v in value):
                    raise PolicyError(f"{where} ({name}): `{key}` must be a non-empty list of prompts"
                                      + (" (a score needs something to contrast with)" if key == "negative"
                                         else ""))
                lists[key] = [v.strip() for v in value]
            threshold = raw.get("threshold", defaults.MODERATION_THRESHOLD)
            if not isinstance(threshold, int | float) or not 0.0 <= float(threshold) <= 1.0:
                raise PolicyError(f"{where} ({name}): threshold must be a number in [0, 1]")
            categories.append(Category(name, lists["positive"], lists["negative"], float(threshold),
                                       raw.get("calibration")))
        return cls(categories, method)

    def to_dict(self) -> dict[str, Any]:
        cats = []
        for cat in self.categories:
            row = asdict(cat)
            if row["calibration"] is None:
                row.pop("calibration")
            cats.append(row)
        return {"method": self.method, "categories": cats}

    def save(self, path: str | os.PathLike[str]) -> None:
        import yaml

        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True),
                              encoding="utf-8")


@dataclass
class ModerationResult(Result):
    flagged: list[str] = field(default_factory=list)
    scores: dict[str, float] = field(default_factory=dict)
    caption: str | None = None


def category_scores(ckpt: Checkpoint, features: ImageFeatures, policy: Policy) -> list[dict[str, float]]:
    """Each category's score for each input image (an empty dict for images that failed)."""
    out: list[dict[str, float]] = [{} for _ in range(len(features))]
    if not features.rows:
        return out
    prompts = [p for cat in policy.categories for p in cat.prompts]
    if policy.method == "itm":
        ckpt.require(ITM)
        evidence = _itm_odds(ckpt, features, prompts)
    else:
        image_vecs = embed_task.image_vectors(ckpt, features.embeds).cpu().numpy()
        sims = image_vecs @ tags_task.text_matrix(ckpt, prompts).T / tags_task.temperature(ckpt)
        evidence = None
    start = 0
    for cat in policy.categories:
        n_pos, n_all = len(cat.positive), len(cat.prompts)
        if evidence is not None:
            part = evidence[:, start : start + n_all]
            score = part[:, :n_pos].sum(axis=1) / np.maximum(part.sum(axis=1), 1e-30)
        else:
            part = sims[:, start : start + n_all]
            e = np.exp(part - part.max(axis=1, keepdims=True))
            score = e[:, :n_pos].sum(axis=1) / e.sum(axis=1)
        for row, i in enumerate(features.rows):
            out[i][cat.name] = float(score[row])
        start += n_all
    return out


def _itm_odds(ckpt: Checkpoint, features: ImageFeatures, prompts: Sequence[str]) -> np.ndarray:
    """ITM match odds p / (1 - p) of every (image, prompt) pair: (rows, prompts)."""
    n = len(features.rows)
    probs = np.zeros((n, len(prompts)), dtype=np.float64)
    pairs = [(r, j) for r in range(n) for j in range(len(prompts))]
    for _, chunk in batched(pairs, 64):
        embeds = features.embeds[[r for r, _ in chunk]]
        scores = match_task.itm_scores(ckpt, embeds, [prompts[j] for _, j in chunk])
        for (r, j), p in zip(chunk, scores, strict=True):
            probs[r, j] = p
    probs = np.clip(probs, 1e-6, 1 - 1e-6)
    return probs / (1 - probs)


def moderate_features(
    ckpt: Checkpoint, features: ImageFeatures, policy: Policy, *, explain: bool = True,
    settings: GenerationSettings | None = None,
) -> list[ModerationResult]:
    """Moderate encoded images: flagged categories (best first), every category's score and, when the
    checkpoint can caption and ``explain`` is set, the caption as the explanation."""
    from blipkit.tasks.caption import caption_embeds

    results = [ModerationResult(image=label) for label in features.labels]
    for i, exc in features.errors.items():
        results[i].fail(exc)
    scores = category_scores(ckpt, features, policy)
    thresholds = {cat.name: cat.threshold for cat in policy.categories}
    for i in features.rows:
        results[i].scores = scores[i]
        flagged = [name for name, s in scores[i].items() if s >= thresholds[name]]
        results[i].flagged = sorted(flagged, key=lambda n: -scores[i][n])
    if explain and CAPTION in ckpt.tasks and features.rows:
        captions = caption_embeds(ckpt, features.embeds, settings or GenerationSettings())
        for i, (text, _) in zip(features.rows, captions, strict=True):
            results[i].caption = text
    return results


# --- calibration ----------------------------------------------------------------------------------
def read_labelled(path: str | os.PathLike[str]) -> list[tuple[str, set[str]]]:
    """``labelled.jsonl``: one ``{"image": PATH, "categories": [NAME, ...]}`` per line (``labels`` is
    accepted for ``categories``; an empty list marks an image that belongs to no category). Relative
    image paths are relative to the file's folder."""
    path = Path(path)
    rows = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from exc
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{n}: not JSON: {exc}") from exc
        cats = row.get("categories", row.get("labels")) if isinstance(row, dict) else None
        if not isinstance(row, dict) or not isinstance(row.get("image"), str) or not isinstance(cats, list):
            raise DataError(f'{path}:{n}: expected {{"image": PATH, "categories": [NAME, ...]}}')
        image = Path(row["image"]).expanduser()
        rows.append((str(image if image.is_absolute() else path.parent / image), {str(c) for c in cats}))
    if not rows:
        raise DataError(f"{path} has no labelled images")
    return rows


def pick_threshold(scores: Sequence[float], positive: Sequence[bool], target_precision: float
                   ) -> dict[str, Any]:
    """The threshold with the most recall among those whose precision reaches ``target_precision``
    (``score >= threshold`` flags). Placed halfway to the next lower score, so that it does not sit on
    a training example. When no threshold reaches the target, the most precise one is returned with
    ``target_met`` False."""
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    s = np.asarray(scores, dtype=np.float64)[order]
    y = np.asarray(positive, dtype=bool)[order]
    n_pos = int(y.sum())
    if n_pos == 0:
        return {"threshold": None, "precision": None, "recall": None, "support": 0, "target_met": False}
    tp = np.cumsum(y)
    flagged = np.arange(1, len(s) + 1)
    # Only cut between distinct scores: everything tied with the last flagged image is flagged too.
    cuts = [i for i in range(len(s)) if i == len(s) - 1 or s[i + 1] < s[i]]
    precision = {i: tp[i] / flagged[i] for i in cuts}
    meeting = [i for i in cuts if precision[i] >= target_precision]
    best = max(meeting) if meeting else max(cuts, key=lambda i: (precision[i], tp[i]))
    below = s[best + 1] if best + 1 < len(s) else max(0.0, s[best] - 1e-3)
    return {
        "threshold": float((s[best] + below) / 2), "precision": float(precision[best]),
        "recall": float(tp[best] / n_pos), "support": n_pos, "target_met": bool(meeting),
    }


def calibrate(policy: Policy, scores: Sequence[dict[str, float]], labels: Sequence[set[str]],
              target_precision: float = defaults.CALIBRATION_TARGET_PRECISION) -> Policy:
    """A copy of ``policy`` with thresholds picked from labelled scores (see :func:`pick_threshold`);
    each category records what the threshold achieved on the labelled set under ``calibration``.
    Categories without a positive example keep their threshold."""
    if not 0.0 < target_precision <= 1.0:
        raise ValueError("target precision must be in (0, 1]")
    categories = []
    for cat in policy.categories:
        rows = [(s[cat.name], cat.name in lab)
                for s, lab in zip(scores, labels, strict=True) if cat.name in s]
        picked = pick_threshold([r[0] for r in rows], [r[1] for r in rows], target_precision)
        threshold = cat.threshold if picked["threshold"] is None else round(picked["threshold"], 6)
        picked = {k: (round(v, 4) if isinstance(v, float) and not math.isnan(v) else v)
                  for k, v in picked.items()}
        picked.update(target_precision=target_precision, images=len(rows))
        categories.append(Category(cat.name, cat.positive, cat.negative, threshold, picked))
    return Policy(categories, policy.method)
