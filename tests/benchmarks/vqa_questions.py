"""How well a model answers everyday questions about photos (issue #23): questions derived from the human
captions of Flickr8k's **test** images (:mod:`assistant.datasets.caption_questions`), answered the way the
app answers them (:meth:`assistant.describe.Describer.ask`: spoken-style handling, yes/no ranked, features
of an image computed once for all its questions).

    python tests/benchmarks/vqa_questions.py --model builtin               # all 1,000 test images
    python tests/benchmarks/vqa_questions.py --images 100 --out /tmp/q.json
    python tests/benchmarks/vqa_questions.py --write-questions /tmp/flickr-test-questions.jsonl --images 0

Accuracy per kind: presence (yes/no, balanced: chance is 50%), colour (the caption's colour is named),
count (the number), activity (the verb), place (the place). Each is printed beside the answer a model
that always gives the most common reference answer would score, so a figure is read against that, and
with the balanced accuracy (the mean of the accuracies per reference answer): two counts in three are
"1" (a dog that three captions call "a dog"), so answering "1" to every count scores 66% but a balanced
14%. ``--rescore FILE``
prints the tables again from a saved ``--out`` file, on today's question set, without the model. For
yes/no, the share right in each spoken confidence band ("Yes.", "Probably ...", "I'm not sure ...").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("BLIP_ASSISTANT_DATA", ROOT.parent / "shared" / "data"))
FLICKR = DATA / "flickr8k" / "dataset_flickr8k.json"
# issue #23's targets, on these questions
TARGETS = {"presence": 0.80, "colour": 0.50, "count": 0.50}


def questions(split: str = "test", images: int | None = None, seed: int = 0) -> list[Any]:
    from assistant.datasets import load_caption_dataset
    from assistant.datasets.caption_questions import build

    records = load_caption_dataset(FLICKR, split=split, check_images=False)
    records = sorted(records, key=lambda r: r.image)[: images or None]
    return build(records, seed=seed)


BANDS = ("sure", "probably", "unsure", "not said")


def band(text: str) -> str:
    """How sure the spoken answer sounds: "I'm not sure, but ...", "Probably ..." / "The car is probably
    red.", plain, or not said ("I can't tell that from this picture.")."""
    if text.startswith("I'm not sure"):
        return "unsure"
    if text.startswith("I can't tell"):  # not offered (conversation.OPEN_GUESS, fits); "right" is the model's
        return "not said"
    return "probably" if text.startswith("Probably") or " probably " in text else "sure"


def bands(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {b: {"n": len(group), "accuracy": sum(r["right"] for r in group) / len(group) if group else None}
            for b in BANDS for group in [[r for r in rows if band(r["text"]) == b]]}


def correct(kind: str, gold: str, answer: Any) -> bool:
    from assistant.conversation import _number

    words = set((answer.answer or "").lower().replace("grey", "gray").replace(",", " ").split())
    if kind == "presence":
        return (answer.answer or "").lower() == gold
    if kind == "count":
        return _number(answer.answer or "") == int(gold)
    if kind == "place" and gold == "ocean":
        return bool(words & {"ocean", "sea", "waves", "beach"})
    return gold in words


def run(model: str, qs: list[Any]) -> dict[str, Any]:
    from assistant.describe import Describer

    describer = Describer(model)
    describer.load()
    by_image: dict[str, list[Any]] = defaultdict(list)
    for q in qs:
        by_image[q.image].append(q)
    rows = []
    started = time.perf_counter()
    for n, (image, items) in enumerate(by_image.items(), 1):
        for q in items:  # one image object for all its questions: its features are computed once
            a = describer.ask(image, q.question)
            rows.append({"kind": q.kind, "question": q.question, "gold": q.answer, "answer": a.answer,
                         "confidence": a.confidence, "text": a.text, "error": a.error,
                         "right": a.ok and correct(q.kind, q.answer, a), "image": Path(image).name})
        if n % 50 == 0:
            print(f"  {n}/{len(by_image)} images, {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return {"model": model, "seconds": time.perf_counter() - started, "rows": rows}


def summary(result: dict[str, Any]) -> dict[str, Any]:
    rows = result["rows"]
    out: dict[str, Any] = {"model": result["model"], "questions": len(rows),
                           "images": len({r["image"] for r in rows}),
                           "seconds_per_question": result["seconds"] / max(1, len(rows)), "kinds": {}}
    for kind in ("presence", "colour", "count", "activity", "place"):
        mine = [r for r in rows if r["kind"] == kind]
        if not mine:
            continue
        common = Counter(r["gold"] for r in mine).most_common(1)[0]
        # the mean of the per-answer accuracies: a constant answer ("2" to every count) scores 1/answers
        by_gold: dict[str, list[bool]] = defaultdict(list)
        for r in mine:
            by_gold[r["gold"]].append(bool(r["right"]))
        balanced = sum(sum(v) / len(v) for v in by_gold.values()) / len(by_gold)
        out["kinds"][kind] = {"n": len(mine), "accuracy": sum(r["right"] for r in mine) / len(mine),
                              "balanced_accuracy": balanced,
                              "most_common_answer": common[0], "most_common_share": common[1] / len(mine),
                              "target": TARGETS.get(kind),
                              "answers": Counter(r["answer"] for r in mine).most_common(5)}
    out["presence_bands"] = bands([r for r in rows if r["kind"] == "presence" and r["text"]])
    # colours, counts, activities and places: the bands of conversation.OPEN_SURE / OPEN_UNSURE
    out["worded_bands"] = bands([r for r in rows if r["kind"] != "presence" and r["text"]])
    return out


def table(s: dict[str, Any]) -> str:
    lines = [f"model {s['model']}: {s['questions']} questions about {s['images']} Flickr8k test images, "
             f"{s['seconds_per_question']:.2f} s a question",
             "| kind | questions | accuracy | balanced accuracy | always the commonest answer | target |",
             "| --- | --- | --- | --- | --- | --- |"]
    for kind, k in s["kinds"].items():
        target = f"{k['target']:.0%}" if k["target"] else "-"
        lines.append(f"| {kind} | {k['n']} | {k['accuracy']:.1%} | {k['balanced_accuracy']:.1%} | "
                     f"{k['most_common_share']:.1%} "
                     f"(\"{k['most_common_answer']}\") | {target} |")
    lines.append("")
    for title, key in (("yes/no", "presence_bands"), ("worded answers", "worded_bands")):
        lines.append(f"{title} by spoken confidence: " + ", ".join(
            f"{b} {v['n']} right {v['accuracy']:.0%}" if v["n"] else f"{b} 0"
            for b, v in s.get(key, {}).items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin")
    parser.add_argument("--images", type=int, default=None, help="The first N test images (default all).")
    parser.add_argument("--split", default="test",
                        help="test (the default; the benchmark's own), val or train")
    parser.add_argument("--out", type=Path, default=None, help="Every answer and the summary, as JSON.")
    parser.add_argument("--rescore", type=Path, default=None, help="Summarise a saved --out file again.")
    parser.add_argument("--write-questions", type=Path, default=None,
                        help="Write the questions as JSONL (image, question, answer, kind) and stop.")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    qs = questions(args.split, args.images)
    if args.write_questions:
        args.write_questions.write_text("".join(json.dumps(q.to_dict()) + "\n" for q in qs))
        print(f"{len(qs)} questions written to {args.write_questions}")
        return 0
    if args.rescore:  # only the answers to questions today's generator still asks
        saved = json.loads(args.rescore.read_text())
        wanted = {(Path(q.image).name, q.question, q.answer) for q in qs}
        rows = [r for r in saved["rows"] if (r["image"], r["question"], r["gold"]) in wanted]
        result = {"model": saved["summary"]["model"], "rows": rows,
                  "seconds": saved["summary"]["seconds_per_question"] * len(saved["rows"])}
    else:
        result = run(args.model, qs)
    s = summary(result)
    print(table(s))
    if args.out:
        args.out.write_text(json.dumps({"summary": s, "rows": result["rows"]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
