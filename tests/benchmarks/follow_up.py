"""Follow-up answers about the image just described (issue #27 point 2): the vision features are kept, so
a follow-up runs the text side only.

    python tests/benchmarks/follow_up.py                      # built-in model
    python tests/benchmarks/follow_up.py --models builtin,base

Each model answers the same spoken questions (:data:`QUESTIONS`, every kind the conversation handles)
about one photo it has just described, the way the app does (:meth:`assistant.describe.Describer.ask`);
the first question after each description is reported apart (a describing-only model's question model
encodes the picture then) and the later ones are the follow-ups.
The baseline, measured in the same run, is the same question about a new picture each time (a fresh copy
of the photo, so nothing is kept): what a follow-up would cost if the image were encoded again. A
describing-only Salesforce model (BLIP-base) hands questions to the BLIP question model, as the app does
once it is downloaded; here both are seeded random checkpoints of the real architectures
(``checkpoints.py``) in a temporary home. Random weights give answers of full length (ten tokens; a
trained model's are one to three words), so BLIP-base's figure is an upper bound; ``--answer-tokens 3``
times answers of a trained model's length.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "benchmarks")]

PHOTO = ROOT / "resources" / "images" / "astronaut.jpg"
TARGETS = {"builtin": 0.15, "base": 0.6}  # seconds, median (issue #27)
QUESTIONS = (
    "is there a dog?",
    "um, what colour is the helmet",
    "how many people are there",
    "what is the man doing?",
    "where is he",
    "is it a cat or a dog?",
    "is it sunny",
    "what is he wearing?",
)


def install_question_model(work: Path) -> None:
    """A random BLIP-VQA-base checkpoint (built once in ``work``) where the app keeps a downloaded question
    model."""
    from checkpoints import build_checkpoint

    from assistant import model_store

    folder = model_store.models_dir() / "vqa"
    build_checkpoint("vqa", work / "vqa-base", size="base")
    if not folder.exists():
        folder.symlink_to(work / "vqa-base", target_is_directory=True)
    (work / "vqa-base" / model_store.MANIFEST).write_text(json.dumps({"benchmark": "random weights"}))


def model_path(name: str, work: Path) -> str:
    if name == "builtin":
        return "builtin"
    from checkpoints import build_checkpoint

    install_question_model(work)
    return str(build_checkpoint("caption", work / f"caption-{name}", size=name))


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(name: str, work: Path, rounds: int) -> dict[str, Any]:
    from PIL import Image

    from assistant.describe import Describer

    describer = Describer(model_path(name, work), personal=False)
    describer.load()
    with Image.open(PHOTO) as image:
        photo = image.convert("RGB")
    describer.ask(photo.copy(), QUESTIONS[0])  # warm-up, and the question model's load for BLIP-base
    first, follow, fresh, answers = [], [], [], {}
    for _ in range(rounds):
        shown = photo.copy()
        assert describer.describe(shown).ok
        for question in QUESTIONS:  # follow-ups about the picture just described
            started = time.perf_counter()
            answer = describer.ask(shown, question)
            # a describing-only model's first question encodes the picture under the question model
            (follow if question != QUESTIONS[0] else first).append(time.perf_counter() - started)
            answers[question] = answer.text
        for question in QUESTIONS:  # the baseline: each question about a new picture, encoded again
            started = time.perf_counter()
            describer.ask(photo.copy(), question)
            fresh.append(time.perf_counter() - started)
    out = {"model": name, "questions": len(follow), "follow_up_median_s": statistics.median(follow),
           "follow_up_p90_s": pct(follow, 0.9), "first_question_median_s": statistics.median(first),
           "new_picture_median_s": statistics.median(fresh),
           "target_s": TARGETS.get(name), "answers": answers}
    out["speed_up"] = out["new_picture_median_s"] / out["follow_up_median_s"]
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="builtin", help="builtin and/or base (random weights)")
    parser.add_argument("--rounds", type=int, default=3, help="describe-then-ask rounds")
    parser.add_argument("--answer-tokens", type=int,
                        help="cap generated answers at this many tokens (random weights never end an answer; "
                             "a trained model's are one to three words, VQAv2's answers)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.answer_tokens:
        from assistant.vision import defaults

        defaults.VQA_MAX_NEW_TOKENS = args.answer_tokens
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-follow-") as tmp:
        os.environ["BLIP_ASSISTANT_HOME"] = str(Path(tmp) / "home")
        for name in args.models.split(","):
            r = measure(name, Path(tempfile.gettempdir()) / "blip-assistant-bench", args.rounds)
            results.append(r)
            target = r["target_s"]
            met = target is not None and r["follow_up_median_s"] <= target
            verdict = "" if target is None else f" (target {target:.2f} s: {'met' if met else 'not met'})"
            print(f"{name}: follow-up median {r['follow_up_median_s'] * 1000:.0f} ms, p90 "
                  f"{r['follow_up_p90_s'] * 1000:.0f} ms{verdict} (the first question after the description: "
                  f"{r['first_question_median_s'] * 1000:.0f} ms); baseline, the same question about a new "
                  f"picture: {r['new_picture_median_s'] * 1000:.0f} ms; ratio {r['speed_up']:.2f}x")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
