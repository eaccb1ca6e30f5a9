"""Quality guard for the fast path on a trained model: float32 vs fast on a Flickr8k test subset.

    python tests/benchmarks/quality_guard.py --model PATH  # e.g. the trained built-in model's folder
    python tests/benchmarks/quality_guard.py --model builtin --limit 500 --max-cider-drop 2

Captions every image (beam search, the engine's defaults) and runs image-text retrieval (ITC ranking, ITM
re-ranking) with ``vision.load(model, fast=False)`` and ``vision.load(model, fast=True)``, scores both
with ``assistant.evaluation`` (CIDEr etc., R@1/5/10), and reports the differences and how many captions are
identical. Exits 1 when the fast path loses more than the allowed CIDEr or mean R@1 (points, 0-100
scale), so it can gate a release. Each path is loaded in turn, so their memory is not held together.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = (
    Path(os.environ.get("BLIP_ASSISTANT_DATA", "/work/shared/data")) / "flickr8k" / "dataset_flickr8k.json"
)
TASKS = ("caption", "retrieval")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="checkpoint folder, `builtin` or an alias")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="caption dataset (Karpathy JSON, ...)")
    p.add_argument("--split", default="test")
    p.add_argument("--limit", type=int, default=200, help="first N images of the split (0: all)")
    p.add_argument("--tasks", default=",".join(TASKS), help="caption,retrieval")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--max-cider-drop", type=float, default=1.0, help="CIDEr points the fast path may lose")
    p.add_argument("--max-r1-drop", type=float, default=1.0, help="mean R@1 points the fast path may lose")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality_guard")
    return p.parse_args(argv)


def evaluate(model: str, fast: bool, records: list[Any], tasks: list[str], batch_size: int) -> dict[str, Any]:
    """Metrics (and the captions) of one path; the model is released before returning."""
    from assistant import vision
    from assistant.evaluation.runners import caption_eval, retrieval_eval

    started = time.perf_counter()
    blip = vision.load(model, fast=fast)
    out: dict[str, Any] = {"fast": fast, "plan": blip.checkpoint.extras.get("fast")}
    if "caption" in tasks:
        run = caption_eval(blip, records, batch_size=batch_size)
        out["caption"] = {k: v for k, v in run.metrics.items() if isinstance(v, int | float)}
        out["captions"] = [row.get("caption") for row in run.predictions]
        out["caption_seconds"] = run.seconds
    if "retrieval" in tasks:
        run = retrieval_eval(blip, records, batch_size=batch_size)
        out["retrieval"] = {
            "r1_mean": run.metrics["r1_mean"],
            **{f"itc_{k}": v for k, v in run.metrics["itc"].items() if "R@" in k},
            **{f"itm_{k}": v for k, v in run.metrics.get("itm", {}).items() if "R@" in k},
        }
        out["retrieval_seconds"] = run.seconds
    out["seconds"] = time.perf_counter() - started
    del blip
    gc.collect()
    return out


def compare(exact: dict[str, Any], fast: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Differences (fast - float32) and the verdict."""
    result: dict[str, Any] = {"checks": {}}
    if "caption" in exact:
        result["caption_delta"] = {
            k: fast["caption"][k] - v
            for k, v in exact["caption"].items()
            if isinstance(fast["caption"].get(k), int | float)
        }
        pairs = list(zip(exact["captions"], fast["captions"], strict=True))
        result["captions_identical"] = sum(a == b for a, b in pairs) / len(pairs) if pairs else float("nan")
        drop = exact["caption"]["CIDEr"] - fast["caption"]["CIDEr"]
        result["checks"]["cider"] = {
            "drop": drop,
            "allowed": args.max_cider_drop,
            "ok": drop <= args.max_cider_drop,
        }
    if "retrieval" in exact:
        result["retrieval_delta"] = {k: fast["retrieval"][k] - v for k, v in exact["retrieval"].items()}
        drop = exact["retrieval"]["r1_mean"] - fast["retrieval"]["r1_mean"]
        result["checks"]["r1_mean"] = {
            "drop": drop,
            "allowed": args.max_r1_drop,
            "ok": drop <= args.max_r1_drop,
        }
    result["ok"] = all(c["ok"] for c in result["checks"].values())
    return result


def markdown(report: dict[str, Any]) -> str:
    d, f, c = report["float32"], report["fast"], report["comparison"]
    lines = [
        f"# Fast-path quality guard: {report['model']}",
        "",
        f"{report['images']} images of {report['data']} ({report['split']}); fast plan {f.get('plan')}.",
        "",
        "| metric | float32 | fast | fast - float32 |",
        "|---|---:|---:|---:|",
    ]
    for section in ("caption", "retrieval"):
        for key, value in d.get(section, {}).items():
            if key.startswith("n_"):
                continue
            lines.append(f"| {key} | {value:.2f} | {f[section][key]:.2f} | {f[section][key] - value:+.2f} |")
    if "captions_identical" in c:
        lines.append(f"\nIdentical captions: {100 * c['captions_identical']:.1f}%.")
    for name, check in c["checks"].items():
        verdict = "ok" if check["ok"] else "FAILED"
        lines.append(f"- {name}: drop {check['drop']:.2f} (allowed {check['allowed']}) — {verdict}")
    lines.append(f"\nTime: float32 {d['seconds']:.0f}s, fast {f['seconds']:.0f}s.")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from assistant.datasets import load_caption_dataset

    tasks = [t for t in args.tasks.split(",") if t]
    if unknown := set(tasks) - set(TASKS):
        raise SystemExit(f"unknown tasks {sorted(unknown)}; choose from {TASKS}")
    records = load_caption_dataset(args.data, split=args.split)
    records = records[: args.limit] if args.limit else records
    exact = evaluate(args.model, False, records, tasks, args.batch_size)
    fast = evaluate(args.model, True, records, tasks, args.batch_size)
    report = {
        "model": args.model,
        "data": str(args.data),
        "split": args.split,
        "images": len(records),
        "float32": exact,
        "fast": fast,
        "comparison": compare(exact, fast, args),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=1))
    text = markdown(report)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0 if report["comparison"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
