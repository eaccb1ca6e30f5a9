"""CapFilt, BLIP's dataset bootstrapping: a captioner writes synthetic captions, an ITM filter drops the
texts (original or synthetic) that do not match their image.

The captioner samples with nucleus sampling, which BLIP found gives more diverse and more useful
synthetic captions than beam search. A text is kept when its ITM probability reaches ``threshold``, or,
with ``keep_top``, when it is among that fraction of all texts with the highest probabilities (useful
when a model's probabilities are not calibrated around 0.5). Images left with no text are dropped.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from blipkit import defaults
from blipkit.data.records import CaptionRecord
from blipkit.errors import BlipkitError

if TYPE_CHECKING:
    from blipkit.blip import Blip
    from blipkit.tasks.generation import GenerationSettings

ORIGINAL, SYNTHETIC = "original", "synthetic"


@dataclass
class TextDecision:
    """One (image, text) pair the filter judged."""

    index: int  # position of the record in the input
    image: str
    image_id: str
    text: str
    source: str  # original or synthetic
    score: float
    kept: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CapFiltResult:
    records: list[CaptionRecord]  # the cleaned dataset
    decisions: list[TextDecision]
    report: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)  # image -> why it could not be judged


def _synthetic(captioner: Blip, feats: Any, n: int, settings: GenerationSettings) -> list[list[str]]:
    out: list[list[str]] = [[] for _ in range(len(feats))]
    for _ in range(n):
        for i, result in enumerate(captioner.caption(feats, settings=settings)):
            if result.ok and result.caption and result.caption.strip():
                out[i].append(result.caption.strip())
    return out


def _decide(decisions: list[TextDecision], threshold: float, keep_top: float | None) -> float:
    """Mark the kept decisions; returns the score a text needed."""
    if keep_top is None:
        needed = threshold
    else:
        ranked = sorted((d.score for d in decisions), reverse=True)
        count = math.ceil(keep_top * len(ranked))
        needed = ranked[count - 1] if count else math.inf
    for d in decisions:
        d.kept = d.score >= needed
    return needed


def _counts(decisions: list[TextDecision], source: str) -> dict[str, int]:
    mine = [d for d in decisions if d.source == source]
    kept = sum(d.kept for d in mine)
    return {"total": len(mine), "kept": kept, "dropped": len(mine) - kept}


def capfilt(
    records: Sequence[CaptionRecord],
    filter_model: Blip,
    captioner: Blip | None = None,
    *,
    num_synthetic: int = defaults.CAPFILT_NUM_SYNTHETIC,
    threshold: float = defaults.CAPFILT_THRESHOLD,
    keep_top: float | None = None,
    settings: GenerationSettings | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> CapFiltResult:
    """Caption (``num_synthetic`` nucleus samples per image, by ``captioner``, default the filter model)
    and filter ``records`` with ``filter_model``'s ITM head.

    Each image is encoded once per model (once in all when one model does both). ``keep_top`` (a
    fraction in (0, 1]) replaces the threshold by a quota. Sampling is seeded by ``seed``.
    """
    import torch
    from tqdm import tqdm

    from blipkit.tasks.generation import GenerationSettings

    if keep_top is not None and not 0 < keep_top <= 1:
        raise ValueError("keep_top is a fraction of the texts, in (0, 1]")
    if num_synthetic < 0:
        raise ValueError("num_synthetic must be 0 or more")
    filter_model.checkpoint.require("itm")
    captioner = captioner or filter_model
    if num_synthetic:
        captioner.checkpoint.require("caption")
    settings = settings or GenerationSettings(decoding="nucleus")
    batch_size = batch_size or filter_model.batch_size
    decisions: list[TextDecision] = []
    failed: dict[str, str] = {}
    devices = [torch.cuda.current_device()] if torch.cuda.is_available() else []
    bar = tqdm(
        total=len(records),
        desc="capfilt",
        unit="img",
        disable=not progress or len(records) <= 1,
        file=sys.stderr,
        dynamic_ncols=True,
    )
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        for start in range(0, len(records), batch_size):
            chunk = list(records[start : start + batch_size])
            feats = filter_model.encode_images([r.image for r in chunk], batch_size=batch_size)
            synthetic: list[list[str]] = [[] for _ in chunk]
            if num_synthetic:
                cap_feats = (
                    feats
                    if captioner is filter_model
                    else captioner.encode_images([r.image for r in chunk], batch_size=batch_size)
                )
                synthetic = _synthetic(captioner, cap_feats, num_synthetic, settings)
            pending: list[tuple[int, TextDecision]] = []
            for local, record in enumerate(chunk):
                if feats.row_of(local) is None:
                    failed[record.image] = str(feats.errors[local])
                    continue
                texts = [(t, ORIGINAL) for t in record.captions] + [(t, SYNTHETIC) for t in synthetic[local]]
                pending += [
                    (local, TextDecision(start + local, record.image, record.image_id, t, s, math.nan))
                    for t, s in texts
                ]
            for at in range(0, len(pending), batch_size):
                part = pending[at : at + batch_size]
                scores = filter_model.match_pairs(
                    feats.select([local for local, _ in part]),
                    [d.text for _, d in part],
                    batch_size=batch_size,
                )
                for (_, decision), score in zip(part, scores.tolist(), strict=True):
                    decision.score = float(score)
                    decisions.append(decision)
            bar.update(len(chunk))
    bar.close()
    needed = _decide(decisions, threshold, keep_top)
    kept_texts: dict[int, list[str]] = {}
    for d in decisions:
        if d.kept:
            kept_texts.setdefault(d.index, []).append(d.text)
    cleaned = [
        CaptionRecord(r.image, kept_texts[i], r.image_id, r.split)
        for i, r in enumerate(records)
        if kept_texts.get(i)
    ]
    if records and not decisions:
        raise BlipkitError(f"none of the {len(records)} images could be read; nothing was filtered")
    report = {
        "images": {
            "total": len(records),
            "kept": len(cleaned),
            "dropped": len(records) - len(cleaned),
            "failed": len(failed),
        },
        ORIGINAL: _counts(decisions, ORIGINAL),
        SYNTHETIC: _counts(decisions, SYNTHETIC),
        "threshold": threshold if keep_top is None else None,
        "keep_top": keep_top,
        "score_needed": needed if math.isfinite(needed) else None,
        "num_synthetic": num_synthetic,
        "decoding": settings.as_dict(),
        "captioner": captioner.checkpoint.name,
        "filter": filter_model.checkpoint.name,
        "seed": seed,
    }
    return CapFiltResult(cleaned, decisions, report, failed)
