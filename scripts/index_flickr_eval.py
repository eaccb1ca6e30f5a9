"""Text-to-image retrieval through ``blipkit index`` on the Flickr8k 1K test set.

Indexes the 1,000 test images with ``blipkit.index.add_images`` (the code behind ``blipkit index add``),
queries the index with each of their 5,000 captions, and reports Recall@1/5/10 of the right image for
four search modes: ITC alone, hybrid (ITC + full-text on the stored captions), and each of those
re-ranked by ITM. These are the numbers of ``blipkit search``; for comparison, the same model's full
similarity-matrix retrieval is ``blipkit eval``'s.

    python scripts/index_flickr_eval.py                           # the built-in model, the full test set
    python scripts/index_flickr_eval.py --limit 50 --model PATH   # a quick slice

Re-ranking re-scores the top ``--rerank-top`` candidates of each query with ITM from image features
computed once (the CLI re-reads them from disk per query: same scores, far slower for 5,000 queries).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "flickr8k" / "dataset_flickr8k.json"
RECALL_AT = (1, 5, 10)


def recall(ranks: list[int | None]) -> dict[str, float]:
    """Recall@K from the 1-based rank of the right image per query (None: not in the returned list)."""
    n = len(ranks)
    hits = {k: sum(1 for r in ranks if r is not None and r <= k) for k in RECALL_AT}
    return {f"R@{k}": round(100.0 * hits[k] / n, 2) for k in RECALL_AT}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Karpathy-split JSON (Flickr8k's)")
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    parser.add_argument("--model", default=None, help="default: blipkit's default model (builtin)")
    parser.add_argument("--db", type=Path, default=None, help="keep the index here (default: a temp dir)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--decoding", default="beam", help="caption decoding for the index")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--rerank-top", type=int, default=None, help="candidates ITM re-scores per query")
    parser.add_argument("--no-rerank", action="store_true", help="skip the (slow) ITM re-ranking modes")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON")
    args = parser.parse_args(argv)

    import blipkit
    from blipkit import defaults
    from blipkit.data import load_caption_dataset
    from blipkit.index import add_images, open_for, search_vector
    from blipkit.index.fusion import rerank_order
    from blipkit.tasks.generation import GenerationSettings

    if not args.data.exists():
        print(f"no dataset at {args.data} (see /work/shared/data/README.md); give --data", file=sys.stderr)
        return 1
    records = load_caption_dataset(args.data, split=args.split, check_images=False)
    records = records[: args.limit] if args.limit else records
    images = [str(Path(r.image).resolve()) for r in records]
    queries = [(caption, i) for i, r in enumerate(records) for caption in r.captions]
    print(f"{len(images)} images, {len(queries)} captions ({args.split})", file=sys.stderr)

    blip = blipkit.load(args.model or defaults.DEFAULT_MODEL, device=args.device)
    batch = args.batch_size or defaults.BATCH_SIZE
    db = args.db or Path(tempfile.mkdtemp(prefix="blipkit-flickr-index-"))
    index = open_for(blip, str(db))
    settings = GenerationSettings(decoding=args.decoding,  # type: ignore[arg-type]
                                  max_new_tokens=args.max_new_tokens or defaults.MAX_NEW_TOKENS)
    t0 = time.perf_counter()
    built = add_images(index, blip, images, settings=settings, batch_size=batch)
    build_s = time.perf_counter() - t0
    print(f"indexed in {build_s:.1f} s: {built.to_dict()}", file=sys.stderr)

    t0 = time.perf_counter()
    text_vecs = blip.embed_texts([q for q, _ in queries], batch_size=64)
    embed_ms = (time.perf_counter() - t0) * 1000 / len(queries)
    rerank_top = args.rerank_top or defaults.RERANK_CANDIDATES
    depth = max(max(RECALL_AT), rerank_top)
    position = {path: i for i, path in enumerate(images)}
    features = None if args.no_rerank else blip.encode_images(images, batch_size=batch)

    report: dict[str, object] = {
        "model": blip.checkpoint.name, "images": len(images), "queries": len(queries),
        "index_build_s": round(build_s, 1),
        "text_embed_ms": round(embed_ms, 2), "rerank_top": rerank_top,
        "hybrid_weights": {"vector": defaults.HYBRID_VECTOR_WEIGHT, "text": defaults.HYBRID_TEXT_WEIGHT,
                           "rrf_k": defaults.HYBRID_RRF_K},
        "modes": {},
    }
    modes: dict[str, dict[str, object]] = report["modes"]  # type: ignore[assignment]
    for hybrid in (False, True):
        ranks: dict[str, list[int | None]] = {"first": [], "rerank": []}
        search_ms = itm_ms = 0.0
        for (text, right), vec in zip(queries, text_vecs, strict=True):
            t0 = time.perf_counter()
            hits = search_vector(index, vec, text=text if hybrid else None, k=depth)
            search_ms += (time.perf_counter() - t0) * 1000
            found = [position[h.path] for h in hits]
            ranks["first"].append(found.index(right) + 1 if right in found[:10] else None)
            if features is None:
                continue
            t0 = time.perf_counter()
            candidates = found[:rerank_top]
            probs = blip.match_pairs(features.select(candidates), [text] * len(candidates))
            order = rerank_order(candidates, {c: float(p) for c, p in zip(candidates, probs, strict=True)})
            order += found[rerank_top:]  # what was not re-scored keeps its first-stage order, as in search
            itm_ms += (time.perf_counter() - t0) * 1000
            ranks["rerank"].append(order.index(right) + 1 if right in order[:10] else None)
        name = "hybrid" if hybrid else "itc"
        modes[name] = {**recall(ranks["first"]), "query_ms": round(search_ms / len(queries), 2)}
        if features is not None:
            modes[f"{name}+rerank"] = {**recall(ranks["rerank"]),
                                       "query_ms": round((search_ms + itm_ms) / len(queries), 2)}
    print(f"{'mode':<14} {'R@1':>7} {'R@5':>7} {'R@10':>7} {'ms/query':>9}")
    for name, row in modes.items():
        print(f"{name:<14} {row['R@1']:>7.2f} {row['R@5']:>7.2f} {row['R@10']:>7.2f} {row['query_ms']:>9.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.db is None:
        shutil.rmtree(db, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
