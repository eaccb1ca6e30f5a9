"""The built-in model's speed targets: load time, and end-to-end captioning of JPEG files.

Each measurement runs in a fresh process with one torch thread. Load: ``vision.load(model)``, wall time
(imports excluded), the median of ``--loads`` runs. Captioning: greedy, ``--batch`` images a call, from
JPEG files on disk (decode, CNN, decoder; the first call is a warm-up), over ``--images`` Flickr8k test
photos. The baseline measured in the same run is decoding and preprocessing alone (the image processor on
the same files), so the ratio says how much of the time is the model's.

    python tests/benchmarks/builtin_speed.py --model runs/builtin/best  # load < 3 s, >= 10 images/s
    python tests/benchmarks/builtin_speed.py --images 64 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]  # the repository
DATA = Path(os.environ.get("BLIP_ASSISTANT_DATA", ROOT.parent / "shared" / "data")) / "flickr8k"
TARGETS = {"load_s": 3.0, "images_per_s": 10.0}

WORKER = r"""
import json, statistics, sys, time
t0 = time.perf_counter()
import torch
torch.set_num_threads(1)
from assistant import vision
from assistant.vision.tasks.generation import GenerationSettings
imported = time.perf_counter()
mode, model, batch, files = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4:]
if mode == "load":
    t = time.perf_counter()
    blip = vision.load(model)
    print(json.dumps({"load_s": time.perf_counter() - t, "import_s": imported - t0}))
elif mode == "decode":
    from assistant.vision.io import load_image
    blip = vision.load(model)
    processor = blip.checkpoint.image_processor
    t = time.perf_counter()
    for start in range(0, len(files), batch):
        processor([load_image(f) for f in files[start:start + batch]], return_tensors="pt")
    print(json.dumps({"images_per_s": len(files) / (time.perf_counter() - t)}))
else:
    blip = vision.load(model)
    settings = GenerationSettings(decoding="greedy")
    blip.caption(files[:batch], settings=settings, batch_size=batch)  # warm-up
    t = time.perf_counter()
    out = blip.caption(files, settings=settings, batch_size=batch)
    elapsed = time.perf_counter() - t
    tokens = [len(blip.checkpoint.tokenizer(r.caption)["input_ids"]) - 2 for r in out if r.caption]
    print(json.dumps({"images_per_s": len(files) / elapsed, "mean_tokens": statistics.mean(tokens),
                      "failed": sum(1 for r in out if not r.caption)}))
"""


def run(mode: str, model: str, batch: int, files: list[str]) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1",
           "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([sys.executable, "-c", WORKER, mode, model, str(batch), *files],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_images(n: int) -> list[str]:
    split = json.loads((DATA / "dataset_flickr8k.json").read_text())["images"]
    names = [im["filename"] for im in split if im["split"] == "test"][:n]
    return [str(DATA / "images" / name) for name in names]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="builtin")
    p.add_argument("--images", type=int, default=160)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--loads", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    files = test_images(args.images)
    loads = [run("load", args.model, args.batch, [])["load_s"] for _ in range(args.loads)]
    decode = run("decode", args.model, args.batch, files)["images_per_s"]
    caption = run("caption", args.model, args.batch, files)
    report = {
        "model": args.model, "images": len(files), "batch": args.batch, "threads": 1,
        "load_s": statistics.median(loads), "load_runs_s": loads,
        "decode_images_per_s": decode, "caption_images_per_s": caption["images_per_s"],
        "caption_share_of_decode_rate": caption["images_per_s"] / decode,
        "mean_caption_tokens": caption["mean_tokens"], "failed": caption["failed"],
        "targets": TARGETS,
        "met": {"load_s": statistics.median(loads) < TARGETS["load_s"],
                "images_per_s": caption["images_per_s"] >= TARGETS["images_per_s"]},
    }
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print(f"load: {report['load_s']:.2f} s (median of {len(loads)}; target < {TARGETS['load_s']} s)")
        print(f"decode + preprocess only: {decode:.1f} images/s (baseline)")
        rate = caption["images_per_s"]
        print(f"caption, greedy, batch {args.batch}, 1 thread, from JPEG: {rate:.1f} images/s "
              f"= {report['caption_share_of_decode_rate']:.2f} x the decode-only rate "
              f"(target >= {TARGETS['images_per_s']}; {caption['mean_tokens']:.1f} tokens a caption)")
    return 0 if all(report["met"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
