"""the engine's CPU benchmark: plain transformers vs the engine's float32 and fast paths, on the same inputs.

    python tests/benchmarks/run.py                 # BLIP-base (random weights, real architecture) + built-in
    python tests/benchmarks/run.py --quick         # tiny models, one round: a smoke run (the slow test)
    python tests/benchmarks/run.py --ablation      # also time fast-path variants: what each lever buys

Every (model, path) runs in a fresh process (so its peak RSS is its own); every round runs every path, in
rotating order, and ratios are taken within a round. Results: benchmarks/results/latest.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(ROOT))

from benchmarks import summary  # noqa: E402
from benchmarks.checkpoints import KINDS, build_checkpoint, installed_builtin  # noqa: E402

PATHS = ("transformers", "float32", "fast")
# fast-path variants timed by --ablation, on the tasks where each lever shows
ABLATION = {
    "caption": [
        "fast:image=keep,text=keep,head=keep",  # fused attention + absorbed image keys/values, fp32 weights
        "fast:image=bf16,text=keep,head=keep",  # + bf16 image side (vision encoder)
        "fast:image=bf16,text=bf16,head=keep",  # + bf16 text layers ("fast" adds the int8 re-scored head)
        "fast:head=bf16",  # a bf16 re-scored head instead of int8
        "fast:text=int8",  # int8 text layers
        "fast:image=int8,text=fp32",  # CPUs without bf16 units, float32 decoding (their plan decodes in int8)
        "fast:cross=shared",  # image keys/values computed once per image instead of absorbed
        "fast:cross=cached",  # transformers' per-beam cache of image keys/values
        "fast:sdpa=0",  # BLIP's eager attention
        "fast:loader=apply",  # converted after a float32 load: the memory the streaming loader saves
    ],
    "itm": ["fast:image=keep,text=keep,head=keep", "fast:image=int8,text=fp32", "fast:sdpa=0"],
}
ABLATION_TASKS = {"caption": ["caption_greedy", "caption_beam3"], "itm": ["itc_image"]}
QUESTIONS = (
    "what is in the picture?",
    "how many people are there?",
    "what color is the dog?",
    "where was this photo taken?",
)
FLICKR = Path(os.environ.get("BLIP_ASSISTANT_DATA", "/work/shared/data")) / "flickr8k"
DEFAULT_WORKDIR = Path(
    os.environ.get("BLIP_ASSISTANT_BENCH_DIR", Path(tempfile.gettempdir()) / "blip-assistant-bench"))


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny models, 2 images, one round")
    p.add_argument("--rounds", type=int, help="interleaved rounds (default 3; quick 1; 0 with --ablation)")
    p.add_argument("--images", type=int, help="images per call (default 4; quick 2)")
    p.add_argument("--repeats", type=int, default=1, help="timed calls per task per round")
    p.add_argument(
        "--agreement-images",
        type=int,
        help="extra images for the greedy-agreement check (default 16; quick 0)",
    )
    p.add_argument("--models", default=",".join(KINDS), help=f"subset of {','.join(KINDS)}")
    p.add_argument("--paths", default=",".join(PATHS), help="subset of transformers,float32,fast")
    p.add_argument("--ablation", action="store_true", help="also time fast-path variants, each next to fast")
    p.add_argument("--threads", type=int, default=1, help="torch threads in every path (default 1)")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP-counting pass")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="where models and images are kept")
    p.add_argument(
        "--out",
        type=Path,
        default=ROOT / "benchmarks" / "results" / "latest",
        help="results path without suffix (.json and .md are written)",
    )
    p.add_argument("--timeout", type=float, default=3600, help="seconds per worker process")
    args = p.parse_args(argv)
    if args.rounds is None:
        args.rounds = 1 if args.quick else 3
    args.images = args.images or (2 if args.quick else 4)
    if args.agreement_images is None:
        args.agreement_images = 0 if args.quick else 16
    return args


def inputs(count: int, workdir: Path, extra: int = 0) -> dict[str, Any]:
    """Flickr8k test images and their first captions when the data is there, else synthetic JPEGs.

    ``agreement_images`` are the timed images plus ``extra`` more, for the greedy-agreement check.
    """
    data = _inputs(count + extra, workdir)
    data["agreement_images"] = list(data["images"])
    for key in ("images", "texts", "questions"):
        data[key] = data[key][:count]
    return data


def _inputs(count: int, workdir: Path) -> dict[str, Any]:
    meta = FLICKR / "dataset_flickr8k.json"
    if meta.is_file():
        rows = [r for r in json.loads(meta.read_text())["images"] if r.get("split") == "test"][:count]
        if len(rows) == count:
            return {
                "images": [str(FLICKR / "images" / r["filename"]) for r in rows],
                "texts": [r["sentences"][0]["raw"] for r in rows],
                "questions": [QUESTIONS[i % len(QUESTIONS)] for i in range(count)],
                "source": "flickr8k test",
            }
    import numpy as np
    from PIL import Image

    folder = workdir / "images"
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"synthetic_{i}.jpg"
        if not path.exists():
            rng = np.random.default_rng(i)
            y, x = np.mgrid[0:375, 0:500]
            base = np.stack([(x * (i + 1)) % 256, (y * 2) % 256, (x + y) % 256], axis=-1)
            noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype("uint8")
            Image.fromarray(noisy).save(path, quality=90)
        paths.append(str(path))
    texts = [
        "a dog runs across the grass",
        "two children play in the water",
        "a man rides a bike on a street",
        "a black and white cat sits on a bed",
    ]
    return {
        "images": paths,
        "texts": [texts[i % len(texts)] for i in range(count)],
        "questions": [QUESTIONS[i % len(QUESTIONS)] for i in range(count)],
        "source": "synthetic",
    }


def model_folders(kinds: list[str], quick: bool, workdir: Path) -> dict[str, Path]:
    size = "quick" if quick else "base"
    folders = {}
    for kind in kinds:
        trained = installed_builtin() if kind == "builtin" and not quick else None
        folders[kind] = trained or build_checkpoint(kind, workdir / "models" / f"{size}-{kind}", size=size)
    return folders


def run_worker(spec: dict[str, Any], threads: int, timeout: float) -> dict[str, Any]:
    env = dict(
        os.environ,
        OMP_NUM_THREADS=str(threads),
        MKL_NUM_THREADS=str(threads),
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        TOKENIZERS_PARALLELISM="false",
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_VERBOSITY="error",
    )
    with tempfile.TemporaryDirectory() as tmp:
        spec_file, out_file = Path(tmp) / "spec.json", Path(tmp) / "out.json"
        spec_file.write_text(json.dumps(spec))
        proc = subprocess.run(
            [sys.executable, "-m", "benchmarks.worker", str(spec_file), str(out_file)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if proc.returncode != 0 or not out_file.exists():
            raise RuntimeError(f"worker {spec['kind']}/{spec['path']} failed:\n{proc.stderr[-3000:]}")
        return json.loads(out_file.read_text())


def decode_rate(folder: Path, images: list[str]) -> dict[str, Any]:
    """Images/s of decoding + preprocessing alone (what overlapping it with compute could hide)."""
    from transformers.models.blip import BlipImageProcessorPil

    from assistant.vision.io import load_image

    processor = BlipImageProcessorPil.from_pretrained(folder)
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        processor(images=[load_image(p) for p in images], return_tensors="pt")
        best = min(best, time.perf_counter() - t0)
    return {"model": folder.name, "images_per_s": len(images) / best}


class Runner:
    """Runs workers, keeps their reports, the baseline's reference tokens, and failures."""

    def __init__(self, args: argparse.Namespace, data: dict[str, Any], folders: dict[str, Path]) -> None:
        self.args, self.data, self.folders = args, data, folders
        self.reports: list[dict[str, Any]] = []
        self.references: dict[str, list[list[int]]] = {}
        self.failures: list[dict[str, Any]] = []

    def measure(
        self,
        kind: str,
        path: str,
        rnd: int | str,
        *,
        checks: bool,
        flops: bool = False,
        tasks: list[str] | None = None,
    ) -> dict[str, Any] | None:
        args = self.args
        agreement = {"images": self.data["agreement_images"], "reference": self.references.get(kind)}
        spec = {
            "kind": kind,
            "path": path,
            "model": str(self.folders[kind]),
            "inputs": self.data,
            "threads": args.threads,
            "repeats": args.repeats,
            "flops": flops and not args.no_flops,
            "agreement": agreement if checks else None,
            "tasks": tasks,
        }
        t0 = time.perf_counter()
        try:
            rep = run_worker(spec, args.threads, args.timeout)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:  # one broken variant spoils no run
            print(f"{rnd} {kind} {path}: FAILED\n{exc}", file=sys.stderr)
            self.failures.append({"kind": kind, "path": path, "round": rnd, "error": str(exc)[-2000:]})
            return None
        rep["round"] = rnd
        self.reports.append(rep)
        if path == "transformers" and "agreement" in rep:
            self.references[kind] = rep["agreement"]["tokens"]
        times = ", ".join(f"{t} {min(e['seconds']):.2f}s" for t, e in rep["tasks"].items())
        label = f"round {rnd + 1}/{args.rounds}" if isinstance(rnd, int) else rnd
        print(
            f"{label} {kind:8s} {path:36s} peak {rep['peak_rss_mb']:6.0f} MB "
            f"({time.perf_counter() - t0:5.1f}s) {times}",
            flush=True,
        )
        return rep


def _slim(report: dict[str, Any]) -> dict[str, Any]:
    """A worker's report without its outputs (tokens, vectors), for the results file."""
    slim = {k: v for k, v in report.items() if k not in ("tasks", "agreement")}
    slim["tasks"] = {t: {k: v for k, v in e.items() if k != "outputs"} for t, e in report["tasks"].items()}
    if "agreement" in report:
        slim["agreement"] = {k: v for k, v in report["agreement"].items() if k != "tokens"}
    return slim


def split_paths(text: str) -> list[str]:
    """``transformers,fast,fast:image=int8,text=int8`` -> three paths: a ``key=value`` piece belongs to
    the ``fast:`` variant before it."""
    paths: list[str] = []
    for piece in filter(None, text.split(",")):
        if "=" in piece and not piece.startswith("fast:") and paths and paths[-1].startswith("fast:"):
            paths[-1] += "," + piece
        else:
            paths.append(piece)
    return paths


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    from benchmarks import machine

    torch.set_num_threads(args.threads)
    kinds = [k for k in args.models.split(",") if k]
    paths = split_paths(args.paths)
    data = inputs(args.images, args.workdir, args.agreement_images)
    folders = model_folders(kinds, args.quick, args.workdir)
    peak = {"float32": machine.matmul_gflops("float32"), "bfloat16": machine.matmul_gflops("bfloat16")}
    print(f"fp32 matmul peak {peak['float32']:.1f} GFLOP/s, bf16 {peak['bfloat16']:.1f}", flush=True)

    runner = Runner(args, data, folders)
    for rnd in range(args.rounds):
        for kind in kinds:
            order = paths[rnd % len(paths) :] + paths[: rnd % len(paths)]
            if rnd == 0 and "transformers" in order:  # the baseline first: its tokens are the reference
                order = ["transformers"] + [p for p in order if p != "transformers"]
            for path in order:
                runner.measure(kind, path, rnd, checks=rnd == 0 and path != "float32", flops=rnd == 0)
    if args.ablation:
        for kind in [k for k in kinds if k in ABLATION]:
            tasks = ABLATION_TASKS[kind]
            if "caption_greedy" in tasks and kind not in runner.references:
                runner.measure(kind, "transformers", "reference", checks=True, tasks=tasks)
            for i, variant in enumerate(ABLATION[kind]):
                # each variant next to the fast path itself: a ratio from the same minute
                pair = [variant, "fast"] if i % 2 else ["fast", variant]
                for path in pair:
                    runner.measure(kind, path, f"ablation-{i}", checks=path != "fast", tasks=tasks)
    reports, failures = runner.reports, runner.failures
    main_reports = [r for r in reports if isinstance(r["round"], int)]

    table = summary.rows(main_reports)
    agree = summary.agreement(main_reports)
    result = {
        "mode": "quick" if args.quick else "full",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": machine.describe(args.threads),
        "peak_gflops": peak,
        "rounds": args.rounds,
        "inputs": {
            "images": args.images,
            "agreement_images": len(data["agreement_images"]),
            "source": data["source"],
        },
        "models": {k: str(v) for k, v in folders.items()},
        "table": table,
        "agreement": agree,
        "targets": summary.targets(table, agree) if not args.quick else None,
        "ablation": summary.ablation(reports),
        "decode": decode_rate(folders[kinds[0]], data["images"]) if kinds else None,
        "reports": [_slim(r) for r in reports],
        "failures": failures,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(result, indent=1))
    text = summary.markdown(result)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
