"""How a batch job's throughput scales with Ray workers, measured on this machine.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jobs_scaling.py              # 1 vs 2 workers
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/jobs_scaling.py --workers 1 2 4 --images 800

It starts a local Ray cluster with one CPU per worker, runs the same caption job (a tiny random model
unless --model is given, on generated images) once per worker count, and prints two rates:

- ``processing``: images / (last shard's end - first shard's start): the workers' throughput once running;
- ``end-to-end``: images / the whole job's wall time, which also pays for starting the actors (each one
  imports torch and loads the model) and so favours long jobs.

The model to hold the numbers against (docs/jobs.md): throughput(N) ~= N x r1, r1 being one worker's
rate, as long as each worker has a core of its own and neither the input's I/O nor the driver is the
bottleneck. On a machine whose CPUs are fewer than N, or shared (this workplace's 2 vCPUs behave like one
core), the workers split the same core and the ratio stays near 1.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_images(folder: Path, n: int) -> None:
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 255, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i:05d}.png")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--shard-size", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--op", choices=("caption", "embed"), default="caption")
    parser.add_argument("--model", default=None, help="a checkpoint (default: a tiny random one)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()

    import ray

    from blipkit.jobs import JobSpec, run_job
    from blipkit.testing import make_tiny_checkpoint

    threads = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    with tempfile.TemporaryDirectory(prefix="blipkit-jobs-bench-") as tmp:
        root = Path(tmp)
        make_images(root / "imgs", args.images)
        model = args.model or str(make_tiny_checkpoint("builtin", root / "model"))
        ray.init(num_cpus=max(args.workers), include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": threads})
        results = []
        try:
            for n in args.workers:
                spec = JobSpec(args.op, str(root / "imgs"), str(root / f"out-{n}"), model=model,
                               shard_size=args.shard_size, batch_size=args.batch_size,
                               options={"max_new_tokens": 12} if args.op == "caption" else {})
                start = time.perf_counter()
                summary = run_job(spec, engine="ray", workers=n)
                wall = time.perf_counter() - start
                results.append({
                    "workers": n, "images": summary.rows, "processing_img_s": summary.processing_rate,
                    "end_to_end_img_s": summary.rows / wall, "wall_s": wall,
                })
        finally:
            ray.shutdown()

    base = results[0]
    print(f"\n{args.op} job, {args.images} images, shards of {args.shard_size}, "
          f"{os.cpu_count()} CPUs seen by the OS")
    print(f"{'workers':>7} {'processing img/s':>17} {'end-to-end img/s':>17} {'wall s':>7} "
          f"{'speed-up':>9} {'linear model':>13}")
    for r in results:
        r["speedup"] = r["processing_img_s"] / base["processing_img_s"]
        r["linear_model_img_s"] = base["processing_img_s"] * r["workers"] / base["workers"]
        print(f"{r['workers']:>7} {r['processing_img_s']:>17.1f} {r['end_to_end_img_s']:>17.1f} "
              f"{r['wall_s']:>7.1f} {r['speedup']:>8.2f}x {r['linear_model_img_s']:>13.1f}")
    if len(results) > 1:
        last = results[-1]
        print(f"\nratio {last['workers']} vs {base['workers']} workers: {last['speedup']:.2f} "
              f"(linear model: {last['workers'] / base['workers']:.2f}, "
              "reached only with a free core per worker and no I/O or driver bottleneck)")
    if args.json:
        print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
