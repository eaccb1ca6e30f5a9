"""Object hallucination, CIDEr and the calibration of honest descriptions (issue #22).

Two steps, so that the slow one (captioning) runs once per model and the cheap one (fitting and scoring)
can be rerun:

    python tests/benchmarks/hallucination.py collect --model builtin --out ../runs/hall/builtin
    python tests/benchmarks/hallucination.py analyze ../runs/hall/builtin [--write-calibration FILE]

``collect`` captions each image of each set as the engine does by default (beam 3), and stores for each
the signals of :meth:`assistant.vision.Blip.describe_signals` (token confidence, ITM of the caption, the
backbone classifier's top labels) and the grounded alternative (the caption re-decoded from the classifier's
top label, for images where that label has probability >= 0.4).

Sets (``--sets``):

- ``flickr-val`` (calibration fit) and ``flickr-test`` (held out): Flickr8k's Karpathy splits, 5 human
  captions per image; ``flickr-test`` also gives CIDEr.
- ``daquar-fit`` (calibration fit: DAQUAR *train* images) and ``daquar-test`` (held out): NYU indoor
  rooms, out of Flickr8k's domain. There are no captions: each image's "references" are its DAQUAR
  questions and answers, so an object counts as named when a question or answer names it. They name only
  a few of the objects in a room, so hallucination is overcounted here, and there is no human baseline.
- ``ood`` (held out): scikit-image's public-domain photos (astronaut, cat, coffee, rocket, a page of text,
  coins...) and six drawn screens (:mod:`screens`), four captions each written for this benchmark
  (``data/ood_captions.json``).

``analyze`` reports, per set: CHAIR-s (share of captions naming an object no reference names), CHAIR-i
(share of object mentions), the human baseline (each reference against the others), CIDEr on Flickr8k test;
fits the calibration (logistic regression on the fit sets: P(no invented object) from the signals) and
picks the thresholds of the wording; then, on the held-out sets, the spoken descriptions' levels, the
share of "sure" descriptions that name an invented object (target <= 10%), and CHAIR of what is said.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("BLIP_ASSISTANT_DATA", ROOT.parent / "shared" / "data"))
HERE = Path(__file__).resolve().parent
FIT_SETS = ("flickr-val", "daquar-fit")
HELD_OUT = ("flickr-test", "daquar-test", "ood")
ALT_MIN_P = 0.4
SURE_TARGET = 0.10  # issue #22: unhedged descriptions wrong in 10% of cases or fewer
SURE_FIT_TARGET = 0.06  # picked on the fit sets with a margin, so that held-out photos stay under 10%
# Below it: "I can't tell". Set by hand from the fit sets: at 0.5 the hedged band of DAQUAR's train rooms
# named an invented object 68% of the time (Flickr8k val: 5%), at 0.6 62% (5%), for 5 more points of
# "I can't tell" on Flickr8k val (39% against 34%). Higher cuts more in-domain descriptions than it saves.
PROBABLY = 0.6


# --- sets -----------------------------------------------------------------------------------------
def flickr(split: str, limit: int | None) -> list[dict[str, Any]]:
    ds = json.loads((DATA / "flickr8k" / "dataset_flickr8k.json").read_text())["images"]
    rows = [im for im in ds if im["split"] == split][:limit]
    return [
        {
            "key": im["filename"],
            "path": str(DATA / "flickr8k" / "images" / im["filename"]),
            "refs": [s["raw"] for s in im["sentences"]],
            "captions": True,
        }
        for im in rows
    ]


def daquar(split: str, limit: int | None) -> list[dict[str, Any]]:
    q = json.loads((DATA / "daquar" / f"daquar_{split}_questions.json").read_text())["questions"]
    a = json.loads((DATA / "daquar" / f"daquar_{split}_annotations.json").read_text())["annotations"]
    answers = {x["question_id"]: x["multiple_choice_answer"] for x in a}
    texts: dict[int, list[str]] = {}
    for x in q:
        texts.setdefault(x["image_id"], []).append(
            f"{x['question']} {answers.get(x['question_id'], '')}".replace("_", " ")
        )
    ids = sorted(texts)[:limit]
    return [
        {
            "key": f"image{i}",
            "path": str(DATA / "daquar" / "images" / f"image{i}.jpg"),
            "refs": texts[i],
            "captions": False,
        }
        for i in ids
    ]


def skimage_dir() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        extra = os.environ.get("SKIMAGE_DATA")
        return Path(extra) if extra else None
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def ood(tmp: Path) -> list[dict[str, Any]]:
    from screens import write_screens

    spec = json.loads((HERE / "data" / "ood_captions.json").read_text())
    rows = []
    folder = skimage_dir()
    fallback = ROOT / "resources" / "images"  # four of them ship with the assistant
    for name, refs in spec["skimage"].items():
        path = folder / name if folder else None
        if path is None or not path.is_file():
            stem = "chelsea" if name.startswith("chelsea") else Path(name).stem
            path = fallback / f"{stem}.jpg"
        if path.is_file():
            rows.append({"key": name, "path": str(path), "refs": refs, "captions": True})
    for name, path in write_screens(tmp / "screens").items():
        rows.append(
            {"key": f"screen:{name}", "path": str(path), "refs": spec["screens"][name], "captions": True}
        )
    return rows


def build_set(name: str, limit: int | None, tmp: Path) -> list[dict[str, Any]]:
    if name == "flickr-val":
        return flickr("val", limit)
    if name == "flickr-test":
        return flickr("test", limit)
    if name == "daquar-fit":
        return daquar("train", limit or 300)
    if name == "daquar-test":
        return daquar("test", limit or 300)
    if name == "ood":
        return ood(tmp)
    raise SystemExit(f"unknown set {name}")


# --- collect --------------------------------------------------------------------------------------
def collect(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from assistant import vision
    from assistant.vision.runtime.checkpoint import ITM
    from assistant.vision.runtime.encoding import encode_images
    from assistant.vision.tasks import caption as caption_task
    from assistant.vision.tasks import match as match_task
    from assistant.vision.tasks.generation import GenerationSettings
    from assistant.vision.tasks.signals import image_classifier

    blip = vision.load(args.model)
    ckpt = blip.checkpoint
    # beam 3 by default (the engine's default, where the shipped calibration was fitted); --detail brief
    # or detailed decodes as the app does for that detail level (assistant.describe.DECODING_BY_DETAIL)
    if args.detail:
        from assistant.describe import DECODING_BY_DETAIL

        settings = GenerationSettings(**DECODING_BY_DETAIL[args.detail])
    else:
        settings = GenerationSettings()
    classify = image_classifier(ckpt)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    has_itm = ITM in ckpt.tasks
    for name in args.sets.split(","):
        items = build_set(name, args.limit, out)
        t0 = time.perf_counter()
        rows = []
        for start in range(0, len(items), args.batch):
            chunk = items[start : start + args.batch]
            feats = encode_images(
                ckpt, [it["path"] for it in chunk], batch_size=args.batch, classify=classify
            )
            captions = caption_task.caption_embeds(ckpt, feats.embeds, settings)
            texts = [c for c, _ in captions]
            itms = match_task.itm_scores(ckpt, feats.embeds, texts) if has_itm else [None] * len(texts)
            for k, i in enumerate(feats.rows):
                it, labels = chunk[i], feats.objects.get(i, [])
                row = {
                    "set": name,
                    **{x: it[x] for x in ("key", "refs", "captions")},
                    "caption": texts[k],
                    "token": captions[k][1],
                    "itm": itms[k],
                    "labels": labels,
                }
                if labels and labels[0][1] >= ALT_MIN_P:
                    emb = feats.embeds[k : k + 1]
                    ((alt, alt_tok),) = caption_task.caption_embeds(ckpt, emb, settings, prompt=labels[0][0])
                    row.update(
                        alt=alt,
                        alt_token=alt_tok,
                        alt_itm=match_task.itm_scores(ckpt, emb, [alt])[0] if has_itm else None,
                    )
                rows.append(row)
        with open(out / f"signals_{name}.jsonl", "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        rate = len(rows) / (time.perf_counter() - t0)
        print(f"{name}: {len(rows)} images, {rate:.2f} images/s", flush=True)


# --- support: which objects Flickr8k's people name, given what the classifier sees ----------------
SUPPORT_SMOOTHING = 1.0  # pseudo-images of "named nothing": a label seen once supports little
SUPPORT_MIN_RATE = 0.02


def support_table(
    labels: list[list[tuple[str, float]]], refs: list[list[str]]
) -> dict[str, dict[str, float]]:
    """label -> object -> rate: of the training photos where the classifier saw the label (weighted by its
    probability), the share whose references name the object, shrunk toward 0 for rarely seen labels."""
    from assistant.evaluation.chair import reference_objects

    seen: dict[str, float] = {}
    named: dict[str, dict[str, float]] = {}
    for top, texts in zip(labels, refs, strict=True):
        objs = reference_objects(texts)
        for word, p in top:
            seen[word] = seen.get(word, 0.0) + p
            row = named.setdefault(word, {})
            for o in objs:
                row[o] = row.get(o, 0.0) + p
    table = {}
    for word, row in named.items():
        rates = {o: round(c / (seen[word] + SUPPORT_SMOOTHING), 3) for o, c in row.items()}
        rates = {o: r for o, r in sorted(rates.items()) if r >= SUPPORT_MIN_RATE}
        if rates:
            table[word] = rates
    return dict(sorted(table.items()))


def build_support(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(1)
    from assistant.datasets import load_caption_dataset
    from assistant.vision.imagenet import load_head

    records = load_caption_dataset(
        DATA / "flickr8k" / "dataset_flickr8k.json", split="train", on_bad="skip", check_images=False
    )
    head = load_head(ROOT / "resources" / "models" / "builtin")
    labels: list[list[tuple[str, float]]] = []
    if args.trunk_cache:
        # the pre-training run's cache of the same frozen CNN: its first rows are these images, in this order
        from safetensors import safe_open

        with safe_open(args.trunk_cache, framework="pt") as f:
            features = f.get_slice("features")
            for start in range(0, len(records), 256):
                labels += head.top_labels(features[start : min(start + 256, len(records))].float(), 3)
    else:
        from assistant import vision
        from assistant.vision.io import load_image
        from assistant.vision.runtime.encoding import pixel_values

        blip = vision.load("builtin")
        trunk = blip.checkpoint.model.vision_model.trunk
        for start in range(0, len(records), 32):
            chunk = records[start : start + 32]
            with torch.inference_mode():
                feats = trunk(pixel_values(blip.checkpoint, [load_image(r.image) for r in chunk]))
            labels += head.top_labels(feats.float(), 3)
    table = support_table(labels, [list(r.captions) for r in records])
    Path(args.out).write_text(json.dumps(table, indent=0) + "\n")
    print(f"{len(table)} labels, {sum(len(v) for v in table.values())} label-object rates -> {args.out}")


# --- analyze --------------------------------------------------------------------------------------
def load_rows(folder: Path) -> dict[str, list[dict[str, Any]]]:
    sets = {}
    for path in sorted(folder.glob("signals_*.jsonl")):
        sets[path.stem.removeprefix("signals_")] = [
            json.loads(line) for line in path.read_text().splitlines()
        ]
    return sets


def invented(text: str, refs: list[str]) -> list[str]:
    from assistant.evaluation.chair import mentions, reference_objects

    allowed = reference_objects(refs)
    return [o for o in mentions(text) if o not in allowed]


def fit_calibration(rows: list[dict[str, Any]], profile: str, support: dict | None = None) -> Any:
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from assistant import honesty

    with_itm = profile == honesty.FULL
    feats = [
        honesty.signal_features(
            r["caption"], r["token"], r["itm"] if with_itm else None, r["labels"], support
        )
        for r in rows
    ]
    names = sorted({k for f in feats for k in f})
    x = np.array([[f.get(k, 0.0) for k in names] for f in feats])
    y = np.array([0 if invented(r["caption"], r["refs"]) else 1 for r in rows])
    # balance the two fit sets: DAQUAR's few hundred out-of-domain rooms weigh as much as Flickr8k's 1,000
    sets = [r["set"] for r in rows]
    weight = np.array([len(rows) / (2 * sets.count(s)) for s in sets])
    model = LogisticRegression(C=1.0, max_iter=5000).fit(x, y, sample_weight=weight)
    weights = dict(zip(names, model.coef_[0].tolist(), strict=True))
    probably = PROBABLY

    def calibration(sure: float, stats: dict | None = None) -> Any:
        return honesty.Calibration(
            weights=weights,
            bias=float(model.intercept_[0]),
            sure=sure,
            probably=probably,
            guess=0.4,
            name=profile,
            stats=stats or {},
            support=support or {},
            note="fitted by tests/benchmarks/hallucination.py on Flickr8k val and DAQUAR train images "
            "(the built-in model's captions)",
        )

    # "sure": the lowest threshold at which the whole pipeline's plain statements (after simplification and
    # grounding, replayed) invent an object in <= SURE_FIT_TARGET of the cases, in each fit set apart, so
    # that in-domain photos cannot hide the out-of-domain ones' errors
    sure = 0.99
    for t in np.arange(0.98, probably + 0.04, -0.01):
        cal = calibration(float(t))
        bad = False
        for name in sorted(set(sets)):
            said = [choose(r, cal, with_itm, True) for r in rows if r["set"] == name]
            refs = [r["refs"] for r in rows if r["set"] == name]
            sure_rows = [(text, ref) for (text, conf, _), ref in zip(said, refs, strict=True) if conf >= t]
            wrong = sum(bool(invented(text, ref)) for text, ref in sure_rows)
            if len(sure_rows) >= 5 and wrong / len(sure_rows) > SURE_FIT_TARGET:
                bad = True
        if bad:
            break
        sure = float(round(t, 2))

    conf = np.array([calibration(sure).confidence(f) for f in feats])
    stats = {
        "fit_rows": len(rows),
        "fit_sets": sorted(set(sets)),
        "auroc_fit": auroc(y, conf),
        "raw_sure_share_fit": float((conf >= sure).mean()),
    }
    return calibration(sure, stats)


def choose(row: dict[str, Any], cal: Any, with_itm: bool, ground: bool) -> tuple[str, float, bool]:
    """The pipeline of Blip.describe_signals, replayed: honesty.best_caption over the caption, its simplified
    form and (when the engine would have made it) the grounded alternative."""
    from assistant import honesty

    itm = row["itm"] if with_itm else None
    conf = honesty.calibrated_confidence(row["caption"], row["token"], itm, row["labels"], cal)
    alternatives = []
    if ground and "alt" in row and conf < cal.probably and row["labels"][0][1] >= cal.guess:
        alternatives.append((row["alt"], row["alt_token"], row["alt_itm"] if with_itm else None))
    text, conf, source = honesty.best_caption(
        row["caption"], row["token"], itm, row["labels"], cal, alternatives
    )
    return text, conf, source.startswith("grounded")


def evaluate_set(rows: list[dict[str, Any]], cal: Any, with_itm: bool, ground: bool) -> dict[str, Any]:
    import numpy as np

    from assistant import honesty
    from assistant.evaluation.chair import COCO_OBJECTS, ChairCount, chair, human_chair, reference_objects

    raw, spoken, human = ChairCount(), ChairCount(), None
    levels = {lv: 0 for lv in honesty.LEVELS}
    wrong = {lv: 0 for lv in honesty.LEVELS}
    y, conf_raw, grounded_n = [], [], 0
    for r in rows:
        allowed = reference_objects(r["refs"])
        bad = raw.add(r["caption"], allowed)
        y.append(0 if bad else 1)
        conf_raw.append(
            honesty.calibrated_confidence(
                r["caption"], r["token"], r["itm"] if with_itm else None, r["labels"], cal
            )
        )
        text, conf, grounded = choose(r, cal, with_itm, ground)
        grounded_n += grounded
        sentence, level = honesty.phrase(text, conf, r["labels"], cal)
        levels[level] += 1
        # what the user hears: the caption when it is said, the classifier's guess when it is not
        said = spoken.add(sentence if level == honesty.UNSURE else text, allowed)
        wrong[level] += bool(said)
    coco = chair({r["key"]: r["caption"] for r in rows}, {r["key"]: r["refs"] for r in rows}, COCO_OBJECTS)
    human_coco = None
    if rows and rows[0]["captions"]:
        human = human_chair({r["key"]: r["refs"] for r in rows}).as_dict()
        human_coco = human_chair({r["key"]: r["refs"] for r in rows}, COCO_OBJECTS).as_dict()
    n = len(rows)
    y_arr = np.array(y)
    return {
        "images": n,
        "raw": raw.as_dict(),
        "human": human,
        "raw_coco80": coco.as_dict(),
        "human_coco80": human_coco,
        "auroc_raw": auroc(y_arr, conf_raw) if 0 < y_arr.sum() < n else None,
        "reliability_raw": reliability(conf_raw, y),
        "levels": {lv: levels[lv] / n for lv in levels},
        "wrong_share_by_level": {lv: (wrong[lv] / levels[lv] if levels[lv] else None) for lv in levels},
        "sure_count": levels[honesty.SURE],
        "sure_wrong": wrong[honesty.SURE],
        "spoken": spoken.as_dict(),
        "grounded": grounded_n,
    }


def auroc(labels: Any, scores: Any) -> float:
    """Area under the ROC curve (the Mann-Whitney statistic, ties counted half): no scikit-learn needed."""
    import numpy as np

    y, x = np.asarray(labels), np.asarray(scores, dtype=float)
    pos, neg = x[y == 1], x[y == 0]
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def reliability(conf: list[float], clean: list[int], bins: int = 5) -> dict[str, Any]:
    """Calibration of the raw captions' confidence: per confidence bin, the mean confidence against the share
    of captions that name no invented object, and the expected calibration error (ECE)."""
    table, ece = [], 0.0
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        idx = [i for i, c in enumerate(conf) if lo <= c < hi or (b == bins - 1 and c == 1.0)]
        if not idx:
            continue
        mean_conf = sum(conf[i] for i in idx) / len(idx)
        share = sum(clean[i] for i in idx) / len(idx)
        ece += len(idx) / len(conf) * abs(mean_conf - share)
        table.append({"bin": [lo, hi], "n": len(idx), "confidence": mean_conf, "clean_share": share})
    return {"bins": table, "ece": ece}


def cider(rows: list[dict[str, Any]]) -> dict[str, float]:
    from assistant.evaluation.caption_metrics import caption_scores

    scores = caption_scores(
        {r["key"]: r["caption"] for r in rows}, {r["key"]: r["refs"] for r in rows}, meteor=False
    )
    out: dict[str, Any] = {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}
    out["tokenizer"] = scores.get("tokenizer")
    return out


def analyze(args: argparse.Namespace) -> None:
    from assistant import honesty

    folder = Path(args.runs)
    sets = load_rows(folder)
    fit_rows = [r for s in FIT_SETS if s in sets for r in sets[s]]
    cals = {}
    if args.calibration:
        for profile in (honesty.FULL, honesty.NO_ITM):
            cals[profile] = honesty.load_calibration(profile, args.calibration)
    else:
        support = json.loads(Path(args.support).read_text()) if args.support else None
        for profile in (honesty.FULL, honesty.NO_ITM):
            cals[profile] = fit_calibration(fit_rows, profile, support)
    report: dict[str, Any] = {
        "model_runs": str(folder),
        "calibration": {k: c.to_dict() for k, c in cals.items()},
    }
    for name, rows in sets.items():
        entry = {}
        for profile, cal in cals.items():
            with_itm = profile == honesty.FULL
            entry[profile] = evaluate_set(rows, cal, with_itm, ground=not args.no_ground)
        if name == "flickr-test":
            entry["caption_metrics"] = cider(rows)
        entry["held_out"] = name in HELD_OUT
        report[name] = entry
    held = [report[s][honesty.FULL] for s in HELD_OUT if s in report]
    if held:
        sure = sum(h["sure_count"] for h in held)
        report["held_out_sure_wrong_share"] = sum(h["sure_wrong"] for h in held) / sure if sure else None
        report["held_out_sure_count"] = sure
    text = json.dumps(report, indent=1)
    (folder / ("report_fixedcal.json" if args.calibration else "report.json")).write_text(text)
    if args.write_calibration:
        data: dict[str, Any] = {k: c.to_dict() for k, c in cals.items()}
        data["support"] = cals[honesty.FULL].support
        Path(args.write_calibration).write_text(json.dumps(data, indent=1) + "\n")
    print(summary(report))


def summary(report: dict[str, Any]) -> str:
    lines = []
    for name in (*FIT_SETS, *HELD_OUT):
        if name not in report:
            continue
        e = report[name]["full"]
        human = e["human"]
        line = (
            f"{name:12s} n={e['images']:4d}  CHAIR-s {100 * e['raw']['chair_s']:5.1f}%  CHAIR-i "
            f"{100 * e['raw']['chair_i']:5.1f}%"
        )
        if human:
            line += f"  (human {100 * human['chair_s']:4.1f}% / {100 * human['chair_i']:4.1f}%)"
        line += (
            f"  AUROC {e['auroc_raw'] or math.nan:.2f}  sure {100 * e['levels']['sure']:4.1f}% wrong "
            f"{e['sure_wrong']}/{e['sure_count']}  spoken CHAIR-s {100 * e['spoken']['chair_s']:5.1f}%"
            f"  grounded {e['grounded']}"
        )
        if "caption_metrics" in report[name]:
            line += f"  CIDEr {report[name]['caption_metrics'].get('CIDEr', math.nan):.1f}"
        lines.append(line)
    if report.get("held_out_sure_wrong_share") is not None:
        lines.append(
            f"held-out 'sure' descriptions naming an invented object: "
            f"{100 * report['held_out_sure_wrong_share']:.1f}% of {report['held_out_sure_count']}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("collect")
    c.add_argument("--model", default="builtin")
    c.add_argument("--out", required=True)
    c.add_argument("--sets", default="ood,daquar-test,daquar-fit,flickr-test,flickr-val")
    c.add_argument("--limit", type=int)
    c.add_argument("--batch", type=int, default=16)
    c.add_argument("--detail", choices=("brief", "detailed"), help="decode as the app does for this detail")
    a = sub.add_parser("analyze")
    a.add_argument("runs")
    a.add_argument("--calibration", help="score with this honesty.json instead of fitting one")
    a.add_argument("--write-calibration", help="write the fitted calibration here (honesty.json)")
    a.add_argument("--no-ground", action="store_true", help="never replace a caption by its grounded one")
    a.add_argument("--support", help="the label-object support table (``support`` writes it)")
    t = sub.add_parser("support", help="the label-object support table from Flickr8k's training photos")
    t.add_argument("--out", required=True)
    t.add_argument("--trunk-cache", help="a pre-training run's trunk_cache.safetensors (skips the CNN pass)")
    args = p.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    sys.path.insert(0, str(HERE))
    {"collect": collect, "analyze": analyze, "support": build_support}[args.cmd](args)


if __name__ == "__main__":
    main()
