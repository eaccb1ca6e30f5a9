"""How late a description stops once it is no longer wanted (Stop, or a newer press): issue #21 point 5
("Stop cuts it off at once") and "it never freezes" for a slow model.

    python tests/benchmarks/stop_latency.py                 # BLIP-large (seeded random weights)
    python tests/benchmarks/stop_latency.py --model base

The model describes a new picture each time (a crop of the photo shifted by a pixel, so no features are
kept) the way the app's worker does (:meth:`assistant.describe.Describer.describe` with ``should_stop``).
The baseline, measured in the same run, is a whole description. Then the stop is asked for at fractions
of that time, and the benchmark prints how long after the ask the work ended: the ratio is that delay
against the whole description (before 2026-12-07 it was the rest of the description: the ratio then was
1 minus the fraction).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "benchmarks")]

PHOTO = ROOT / "resources" / "images" / "astronaut.jpg"
FRACTIONS = (0.1, 0.35, 0.6, 0.85)


def main(argv: list[str] | None = None) -> int:
    import torch
    from checkpoints import build_checkpoint
    from PIL import Image

    from assistant.describe import Describer
    from assistant.vision.errors import Interrupted

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="large", help="builtin, base or large")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    model = args.model
    if model != "builtin":
        model = str(build_checkpoint("caption", Path(tempfile.gettempdir()) / "blip-assistant-bench" /
                                     f"caption-{args.model}", size=args.model))
    describer = Describer(model)
    describer.load()
    photo = Image.open(PHOTO).convert("RGB")
    shift = iter(range(1, 10_000))

    def picture() -> Image.Image:
        return photo.crop((next(shift), 0, photo.width, photo.height))

    describer.describe(picture())  # warm
    whole = []
    for _ in range(args.rounds):
        started = time.perf_counter()
        describer.describe(picture())
        whole.append(time.perf_counter() - started)
    baseline = statistics.median(whole)
    rows = []
    for fraction in FRACTIONS:
        for _ in range(args.rounds):
            wanted = threading.Event()
            at = baseline * fraction
            threading.Timer(at, wanted.set).start()
            started = time.perf_counter()
            try:
                describer.describe(picture(), should_stop=wanted.is_set)
                ended = "finished"
            except Interrupted:
                ended = "stopped"
            took = time.perf_counter() - started
            rows.append({"fraction": fraction, "asked_at_s": round(at, 3), "ended": ended,
                         "late_s": round(max(0.0, took - at), 3)})
    late = [r["late_s"] for r in rows]
    summary = {"model": args.model, "whole_description_s": round(baseline, 3),
               "late_median_s": round(statistics.median(late), 3), "late_max_s": round(max(late), 3),
               "ratio_late_to_whole": round(statistics.median(late) / baseline, 3),
               "all_stopped": all(r["ended"] == "stopped" for r in rows), "rows": rows}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
