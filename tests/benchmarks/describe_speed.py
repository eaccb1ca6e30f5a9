"""Speed of honest descriptions (issue #22): ``Blip.caption`` against ``Blip.describe_signals`` on the same
JPEGs, for one or more models, in one process each, 1 thread.

    python tests/benchmarks/describe_speed.py --model builtin --model ../runs/tags/best [--images 160]

``caption`` is tests/benchmarks/builtin_speed.py's measurement (greedy, batch 16, from JPEG files);
``describe`` adds the backbone classifier, the ITM score of the caption and the calibrated wording
(``ground=False``), and ``describe+ground`` also re-decodes the captions it is unsure of from the
classifier's label. Each model runs in its own process, one after the other, so their numbers compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("BLIP_ASSISTANT_DATA", ROOT.parent / "shared" / "data")) / "flickr8k"

WORKER = r"""
import json, sys, time
import torch
torch.set_num_threads(1)
from assistant import vision
from assistant.vision.tasks.generation import GenerationSettings
model, batch, files = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
blip = vision.load(model)
settings = GenerationSettings(decoding="greedy")
out = {}
blip.caption(files[:batch], settings=settings, batch_size=batch)  # warm-up
blip.describe_signals(files[:batch], settings=settings, batch_size=batch)
for name, run in [
    ("caption", lambda: blip.caption(files, settings=settings, batch_size=batch)),
    ("describe", lambda: blip.describe_signals(files, settings=settings, batch_size=batch, ground=False)),
    ("describe+ground", lambda: blip.describe_signals(files, settings=settings, batch_size=batch)),
]:
    t = time.perf_counter()
    results = run()
    out[name] = len(files) / (time.perf_counter() - t)
    if name == "describe+ground":
        out["grounded_share"] = sum(r.grounded for r in results) / len(results)
out["fast"] = blip.checkpoint.extras.get("fast")
print(json.dumps(out))
"""


def test_images(n: int) -> list[str]:
    split = json.loads((DATA / "dataset_flickr8k.json").read_text())["images"]
    return [str(DATA / "images" / im["filename"]) for im in split if im["split"] == "test"][:n]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", default=None)
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--rounds", type=int, default=1, help="alternate the models this many times")
    args = p.parse_args(argv)
    files = test_images(args.images)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore"}
    report: dict[str, list[dict]] = {}
    for _ in range(args.rounds):
        for model in args.model or ["builtin"]:
            proc = subprocess.run([sys.executable, "-c", WORKER, model, str(args.batch), *files],
                                  capture_output=True, text=True, env=env, check=False, cwd=ROOT)
            if proc.returncode != 0:
                raise RuntimeError(proc.stderr[-2000:])
            row = json.loads(proc.stdout.strip().splitlines()[-1])
            report.setdefault(model, []).append(row)
            print(model, json.dumps(row), flush=True)
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
