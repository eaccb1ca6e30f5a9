#!/usr/bin/env python
"""How well does CapFilt's ITM filter find captions that do not describe their image?

Builds a noisy copy of a caption dataset (by default Flickr8k train) in which ``--fraction`` (30%) of
the captions are replaced by captions of other images, chosen with ``--seed``. Runs the filter (no
synthetic captions) and reports, for "the filter dropped this caption" as a detector of "this caption
was swapped in": precision, recall, F1, and the ROC AUC of the ITM probability (threshold-free).

    python scripts/capfilt_experiment.py --model runs/builtin/best --out-dir /tmp/capfilt-exp
    python scripts/capfilt_experiment.py --model M --keep-top 0.7 --limit 1000 --out-dir DIR

Writes ``noisy.json`` (the corrupted dataset, Karpathy format), ``cleaned.json``, ``decisions.jsonl``
(every caption's ITM probability, whether it was corrupted and whether it was kept) and
``capfilt_experiment.json`` (the scores) into ``--out-dir``; prints the scores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import json
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from blipkit import defaults
from blipkit.data import CaptionRecord, load_caption_dataset, save_caption_dataset

ROOT = Path(__file__).resolve().parents[1]
FLICKR8K = ROOT.parent / "shared" / "data" / "flickr8k" / "dataset_flickr8k.json"


def corrupt(
    records: Sequence[CaptionRecord], fraction: float, seed: int
) -> tuple[list[CaptionRecord], set[tuple[int, int]]]:
    """Replace ``fraction`` of all captions by a caption of another image.

    Returns the noisy records and the (record index, caption index) of every replaced caption.
    """
    if len(records) < 2:
        raise ValueError("corrupting captions needs at least two images")
    rng = random.Random(seed)
    slots = [(i, j) for i, r in enumerate(records) for j in range(len(r.captions))]
    chosen = set(rng.sample(slots, round(fraction * len(slots))))
    captions = [list(r.captions) for r in records]
    for i, j in sorted(chosen):
        other = rng.choice([k for k in range(len(records)) if k != i])
        captions[i][j] = rng.choice(records[other].captions)
    noisy = [
        CaptionRecord(r.image, caps, r.image_id, r.split) for r, caps in zip(records, captions, strict=True)
    ]
    return noisy, chosen


def roc_auc(scores: Sequence[float], positive: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half)."""
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(positive, dtype=bool)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if not n_pos or not n_neg:
        return None
    order = np.argsort(s, kind="stable")
    ranks = np.empty(len(s))
    sorted_s = s[order]
    # average ranks over ties
    start = 0
    for end in range(1, len(s) + 1):
        if end == len(s) or sorted_s[end] != sorted_s[start]:
            ranks[order[start:end]] = (start + end + 1) / 2
            start = end
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_scores(decisions: Sequence[Any], corrupted: set[tuple[int, int]]) -> dict[str, Any]:
    """Precision/recall/F1 of "dropped" at finding corrupted captions, and the ITM score's AUC."""
    position: dict[int, int] = {}
    flags, dropped, scores = [], [], []
    for d in decisions:
        if d.source != "original":
            continue
        j = position.get(d.index, 0)
        position[d.index] = j + 1
        flags.append((d.index, j) in corrupted)
        dropped.append(not d.kept)
        scores.append(d.score)
    tp = sum(f and x for f, x in zip(flags, dropped, strict=True))
    n_dropped, n_corrupt = sum(dropped), sum(flags)
    precision = tp / n_dropped if n_dropped else None
    recall = tp / n_corrupt if n_corrupt else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else 0.0
    # a low ITM probability should mean "corrupted": score the detector with 1 - p
    return {
        "captions": len(flags),
        "corrupted": n_corrupt,
        "dropped": n_dropped,
        "true_positives": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "auc": roc_auc([1 - s for s in scores], flags),
        "mean_itm_clean": float(
            np.mean([s for s, f in zip(scores, flags, strict=True) if not f] or [np.nan])
        ),
        "mean_itm_corrupted": float(
            np.mean([s for s, f in zip(scores, flags, strict=True) if f] or [np.nan])
        ),
    }


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=defaults.DEFAULT_MODEL, help="ITM filter model (default: builtin)")
    p.add_argument("--data", type=Path, default=FLICKR8K, help="caption dataset (default: Flickr8k)")
    p.add_argument("--split", default="train", help="split to corrupt ('all': every row)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--fraction", type=float, default=0.3, help="share of captions to corrupt")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threshold", type=float, default=defaults.CAPFILT_THRESHOLD)
    p.add_argument("--keep-top", type=float, default=None, help="keep this fraction instead of a threshold")
    p.add_argument("--batch-size", type=int, default=defaults.BATCH_SIZE)
    p.add_argument("--device", default="cpu")
    p.add_argument("--out-dir", type=Path, required=True)
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    import blipkit
    from blipkit.capfilt import capfilt
    from blipkit.evaluation.report import save_predictions

    args = parse_args(argv)
    if not args.data.exists():
        sys.exit(f"{args.data} not found: pass --data (the shared data live beside the repository)")
    split = None if args.split in ("", "all") else args.split
    records = load_caption_dataset(args.data, split=split, on_bad="skip")
    records = records[: args.limit] if args.limit else records
    noisy, corrupted = corrupt(records, args.fraction, args.seed)
    out = args.out_dir
    out.mkdir(parents=True, exist_ok=True)
    save_caption_dataset(noisy, out / "noisy.json")
    model = blipkit.load(args.model, "itm", device=args.device)
    result = capfilt(
        noisy,
        model,
        num_synthetic=0,
        threshold=args.threshold,
        keep_top=args.keep_top,
        batch_size=args.batch_size,
        seed=args.seed,
        progress=not args.no_progress,
    )
    save_caption_dataset(result.records, out / "cleaned.json")
    scores = detection_scores(result.decisions, corrupted)
    rows = []
    position: dict[int, int] = {}
    for d in result.decisions:
        j = position.get(d.index, 0)
        position[d.index] = j + 1
        rows.append({**d.to_dict(), "corrupted": (d.index, j) in corrupted})
    save_predictions(out / "decisions.jsonl", rows)
    report = {
        "model": args.model,
        "data": str(args.data),
        "split": split,
        "images": len(records),
        "fraction": args.fraction,
        "seed": args.seed,
        "threshold": args.threshold,
        "keep_top": args.keep_top,
        "filter": result.report,
        "detection": scores,
    }
    (out / "capfilt_experiment.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(json.dumps(scores, indent=2, default=str))
    return report


if __name__ == "__main__":
    main()
