#!/usr/bin/env python
"""Bad image files as a user meets them, and what the app says about each one.

Generates, from a seed, into a temporary folder (never committed), ``--n`` files (default 2,000) of these
families:

- ``format``: a valid file in every format Pillow can write (the engine opens JPEG, PNG, GIF, WebP, TIFF,
  BMP, PPM and AVIF; the others, ICO, TGA, PDF, ..., must get "a kind of picture I cannot open");
- ``special``: zero bytes, 1x100000 and 100000x1 pixels, 16-bit, CMYK, animated GIF/WebP/PNG, palette with
  transparency, every EXIF rotation, a good PNG named .jpg, a damaged PNG named .jpg, text named .png, a
  folder, a file that disappears before it is read, a missing file, a 24 Mpx photo, and the
  decompression bombs of ``bombs.py``;
- ``truncated``: valid files cut at a random point;
- ``fuzzed``: the mutations of ``fuzz_images.py`` (bit flips, byte edits, splices, header edits, ...).

:func:`run` sends each file through the app's own path, ``Describer.describe`` (what the app's worker
runs) and the controller's ``_failure_sentence`` (what the app says), as a path (Open, ``blip-assistant
open``, a dropped file) and as bytes (the clipboard, a dropped image), and checks: no exception escapes,
each takes under 10 s, a readable image gets a description, and an unreadable one gets a sentence whose
reason is one of ``assistant.image_messages``'s specific kinds, with no Python error names in it.

    python tests/reliability/app_images.py --n 2000 --seed 0     # ~2,000 files, prints the figures
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import functools
import random
import re
import sys
import tempfile
import time
import warnings
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # run on its own: tests/ holds the loader of its sibling scripts

from reliability_scripts import load as _script  # noqa: E402

TIME_LIMIT_S = 10.0
# what no spoken sentence may contain: Python's names for errors, a traceback, a bare "error"
GENERIC = re.compile(r"Traceback|\w+(?:Error|Exception)\b|\bunknown error\b"
                     r"|^Could not describe [^:]*: error\.?$")


@dataclass
class Case:
    index: int
    family: str  # format, special, truncated, fuzzed
    kind: str  # what it is, e.g. "png_16bit", "zero bytes", "ICO"
    path: Path
    expect: str = "either"  # "ok": must be described, "error": must be refused, "either": fuzzed
    vanish: bool = False  # deleted just before it is read


@dataclass
class Outcome:
    case: Case
    route: str  # "path" or "bytes"
    ok: bool
    text: str
    reason_kind: str | None
    seconds: float
    problem: str | None = None


# --- making the files ----------------------------------------------------------------------------


def _photo(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                     (x + y) * 255 // max(width + height - 2, 1)], axis=-1)
    noise = rng.integers(0, 40, size=(height, width, 1))
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _encode(image: Image.Image | list[Image.Image], fmt: str, **params: object) -> bytes:
    return _script("fuzz_images")._save(image, fmt, **params)


@functools.cache  # the same bytes every time: made once a session
def pillow_formats() -> list[tuple[str, str, bytes]]:
    """(format, extension, bytes) of a small valid file in each format Pillow can write here."""
    Image.init()
    rgb = _photo(40, 30)
    extensions = {fmt: ext for ext, fmt in sorted(Image.registered_extensions().items(), reverse=True)}
    out = []
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "L", "RGBA", "P", "1"):
            image = rgb.convert(mode) if mode != "P" else rgb.quantize(16)
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    data = _encode(image, fmt)
            except Exception:  # a mode this format does not take, or a plugin without its library
                continue
            out.append((f"{fmt} {mode}", extensions.get(fmt, f".{fmt.lower()}"), data))
    return out


@functools.cache  # the two PNG bombs alone take seconds to compress
def special_files() -> list[tuple[str, str, bytes | None, str]]:
    """(kind, extension, bytes or None for the cases made another way, expect)."""
    bombs = _script("bombs")
    rgb = _photo(48, 36, 1)
    gray16 = Image.fromarray((np.arange(48 * 36, dtype=np.uint16).reshape(36, 48) * 37).astype(np.uint16))
    frames = [_photo(32, 24, s) for s in range(3)]
    palette = rgb.quantize(16)
    out: list[tuple[str, str, bytes | None, str]] = [
        ("zero bytes", ".png", b"", "error"),
        ("zero bytes jpg", ".jpg", b"", "error"),
        ("1x100000 pixels", ".png", _encode(_photo(1, 100_000), "PNG"), "ok"),
        ("100000x1 pixels", ".png", _encode(_photo(100_000, 1), "PNG"), "ok"),
        ("png 16-bit gray", ".png", _encode(gray16, "PNG"), "ok"),
        ("png 16-bit RGB", ".png", _png_rgb16(48, 36), "ok"),
        ("tiff 16-bit", ".tif", _encode(gray16, "TIFF"), "ok"),
        ("jpeg CMYK", ".jpg", _encode(rgb.convert("CMYK"), "JPEG"), "ok"),
        ("tiff CMYK", ".tif", _encode(rgb.convert("CMYK"), "TIFF"), "ok"),
        ("gif animated", ".gif", _encode(frames, "GIF", duration=80, loop=0), "ok"),
        ("webp animated", ".webp", _encode(frames, "WEBP", duration=80), "ok"),
        ("png animated (APNG)", ".png", _encode(frames, "PNG", duration=80), "ok"),
        ("png palette transparency", ".png", _encode(palette, "PNG", transparency=0), "ok"),
        ("gif transparency", ".gif", _encode(palette, "GIF", transparency=0), "ok"),
        ("png RGBA half transparent", ".png", _encode(_rgba(rgb), "PNG"), "ok"),
        ("good PNG named .jpg", ".jpg", _encode(rgb, "PNG"), "ok"),
        ("damaged PNG named .jpg", ".jpg", _encode(rgb, "PNG")[:200], "error"),
        ("text named .png", ".png", b"Dear diary, today I renamed a letter to a picture.\n" * 4, "error"),
        ("HTML error page named .jpg", ".jpg", b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
         "error"),
        ("random bytes", ".png", random.Random(1).randbytes(4096), "error"),
        ("photo 6000x4000", ".jpg", _encode(_photo(600, 400).resize((6000, 4000)), "JPEG", quality=85), "ok"),
        ("folder", "", None, "error"),
        ("file that disappears", ".png", _encode(rgb, "PNG"), "error"),
        ("missing file", ".png", None, "error"),
    ]
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        out.append((f"jpeg EXIF orientation {orientation}", ".jpg", _encode(rgb, "JPEG", exif=exif), "ok"))
    for case in bombs.cases():
        if case.expect_refused and not case.max_pixels:
            out.append((f"bomb: {case.name}", _bomb_extension(case.name), case.make(), "error"))
    return out


def _rgba(image: Image.Image) -> Image.Image:
    out = image.convert("RGBA")
    out.putalpha(Image.linear_gradient("L").resize(image.size))
    return out


def _png_rgb16(width: int, height: int) -> bytes:
    # Pillow writes no 16-bit RGB PNG from its own modes: pack one by hand (colour type 2, depth 16)
    import struct
    import zlib

    rows = b"".join(b"\x00" + np.full((width, 3), 40000 + 200 * y, ">u2").tobytes() for y in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + payload))
        return struct.pack(">I", len(payload)) + kind + payload + crc

    ihdr = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    body = chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


def _bomb_extension(name: str) -> str:
    return "." + {"jpeg": "jpg", "tiff": "tif"}.get(name.split()[0], name.split()[0])


def generate(folder: Path, n: int = 2000, seed: int = 0) -> list[Case]:
    """Write ``n`` files into ``folder``; the same seed gives the same files."""
    fuzz = _script("fuzz_images")
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"app-images:{seed}")
    cases: list[Case] = []

    def add(family: str, kind: str, ext: str, data: bytes | None, expect: str) -> Case:
        slug = re.sub(r"[^a-z0-9]+", "-", kind.lower()).strip("-")[:40]
        path = folder / f"{len(cases):04d}-{slug}{ext}"
        if kind == "folder":
            path.mkdir()
        elif data is not None:
            path.write_bytes(data)
        case = Case(len(cases), family, kind, path, expect, vanish=kind == "file that disappears")
        cases.append(case)
        return case

    opened = {"JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP", "PPM", "AVIF", "MPO"}  # MPO is read as JPEG
    for fmt, ext, data in pillow_formats():
        add("format", fmt, ext, data, "ok" if fmt.split()[0] in opened else "error")
    for kind, ext, data, expect in special_files():
        add("special", kind, ext, data, expect)
    seeds = fuzz.seed_images()
    names = sorted(seeds)
    extension = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "webp": ".webp", "tiff": ".tif", "bmp": ".bmp"}
    left = max(n - len(cases), 0)
    for i in range(left):
        if i < left // 5:  # a fifth cut at a random point: the commonest damage (a stopped download)
            name = rng.choice(names)
            data = seeds[name]
            # "either": a cut that only loses trailing metadata (a TIFF's second page) leaves a whole picture
            cut = data[: rng.randrange(0, len(data))]
            add("truncated", name, extension[name.split("_")[0]], cut, "either")
        else:
            name, data = fuzz.make_input(seed, i, seeds)
            add("fuzzed", name, extension[name.split("_")[0]], data, "either")
    return cases[:n] if n >= 0 else cases


# --- sending them through the app's path ---------------------------------------------------------


def check_one(describer, case: Case, route: str) -> Outcome:  # type: ignore[no-untyped-def]
    """Describe one file the way the app's worker does and say it the way the controller does."""
    from assistant.app.controller import _failure_sentence
    from assistant.image_messages import explain

    if route == "bytes":
        if not case.path.is_file():
            return Outcome(case, route, False, "", None, 0.0, "skipped")  # nothing to paste
        source: object = case.path.read_bytes()
    else:
        source = str(case.path)
        if case.vanish and case.path.exists():
            case.path.unlink()
    started = time.perf_counter()
    problem = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PIL warns about each corrupt tag it skips
            description = describer.describe(source, label=case.path.name)
        ok = description.ok
        text = description.text if ok else _failure_sentence(description, source)
        kind = None if ok else explain(description.error_code, description.error, source).kind
    except Exception as exc:  # the app's worker would survive it, but the user would hear nothing useful
        ok, text, kind, problem = False, "", None, f"exception escaped: {type(exc).__name__}: {exc}"
    seconds = time.perf_counter() - started
    text = text or ""
    if problem is None:
        if seconds > TIME_LIMIT_S:
            problem = f"took {seconds:.1f} s"
        elif ok and not text.strip():
            problem = "described with no words"
        elif not ok and (kind in (None, "other") or GENERIC.search(text)):
            problem = f"not a specific message: {text!r}"
        elif not ok and not text.startswith(f"Could not describe {case.path.name}: "):
            problem = f"does not name the file: {text!r}"
        elif case.expect == "ok" and not ok:
            problem = f"a valid image was refused: {text!r}"
        elif case.expect == "error" and ok:
            problem = f"an unreadable file was described: {text!r}"
    return Outcome(case, route, ok, text, kind, seconds, problem)


def run(cases: Sequence[Case], describer, routes: Sequence[str] = ("path", "bytes"),  # type: ignore[no-untyped-def]
        progress: Callable[[int], None] | None = None) -> list[Outcome]:
    outcomes = []
    for i, case in enumerate(cases):
        for route in routes:
            outcome = check_one(describer, case, route)
            if outcome.problem != "skipped":
                outcomes.append(outcome)
        if progress is not None:
            progress(i)
    return outcomes


@dataclass
class Figures:
    files: int
    per_family: Counter = field(default_factory=Counter)
    per_kind: dict = field(default_factory=lambda: defaultdict(Counter))  # family -> outcome -> count
    reasons: Counter = field(default_factory=Counter)
    examples: dict = field(default_factory=dict)  # reason kind -> one sentence
    max_seconds: float = 0.0
    slowest: str = ""
    problems: list = field(default_factory=list)


def summarize(cases: Sequence[Case], outcomes: Sequence[Outcome]) -> Figures:
    figures = Figures(files=len(cases))
    figures.per_family.update(c.family for c in cases)
    for o in outcomes:
        figures.per_kind[o.case.family]["described" if o.ok else "refused"] += 1
        if not o.ok and o.reason_kind:
            figures.reasons[o.reason_kind] += 1
            figures.examples.setdefault(o.reason_kind, o.text)
        if o.seconds > figures.max_seconds:
            figures.max_seconds, figures.slowest = o.seconds, f"{o.case.path.name} ({o.route})"
        if o.problem:
            figures.problems.append(f"{o.case.path.name} [{o.route}]: {o.problem}")
    return figures


def report(figures: Figures, outcomes: Sequence[Outcome]) -> str:
    lines = [f"files: {figures.files}  loads: {len(outcomes)}  "
             f"max load {figures.max_seconds:.2f} s ({figures.slowest})"]
    lines.append("per family: " + ", ".join(f"{k} {v}" for k, v in sorted(figures.per_family.items())))
    for family, counts in sorted(figures.per_kind.items()):
        lines.append(f"  {family:10s} described {counts['described']:5d}  refused {counts['refused']:5d}")
    lines.append("spoken reasons:")
    for kind, count in figures.reasons.most_common():
        lines.append(f"  {kind:20s} {count:5d}  e.g. {figures.examples[kind]}")
    lines.append(f"problems: {len(figures.problems)}")
    lines.extend(f"  {p}" for p in figures.problems[:40])
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=None, help="a model folder or name (default: a tiny random model)")
    parser.add_argument("--routes", default="path,bytes")
    args = parser.parse_args(argv)

    import torch

    from assistant.describe import Describer

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="app-images-") as tmp:
        model = args.model
        if model is None:
            from assistant.vision.testing import make_tiny_checkpoint

            model = str(make_tiny_checkpoint("builtin", Path(tmp) / "model"))
        describer = Describer(model, threads=1, personal=False)
        describer.load()
        cases = generate(Path(tmp) / "files", args.n, args.seed)
        started = time.perf_counter()
        outcomes = run(cases, describer, args.routes.split(","),
                       lambda i: print(f"... {i + 1}/{len(cases)}", file=sys.stderr) if (i + 1) % 250 == 0
                       else None)
        figures = summarize(cases, outcomes)
        print(report(figures, outcomes))
        print(f"elapsed {time.perf_counter() - started:.1f} s")
    return 1 if figures.problems else 0


if __name__ == "__main__":
    sys.exit(main())
