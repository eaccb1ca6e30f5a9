#!/usr/bin/env python
"""Fuzz ``assistant.vision.io.load_image`` with mutated JPEG/PNG/GIF/WebP/TIFF/BMP files.

Each input is a small valid image with a few random mutations (bit flips, byte edits, truncation,
splices with another seed, header edits, inserted/deleted/duplicated chunks, PNG CRCs repaired so
that edits get past the checksum). ``load_image`` must return an RGB image or raise an
``ImageError``; anything else (another exception, a crashed decoder, an input that takes longer
than ``--time-limit``) is a failure and makes the script exit non-zero.

Inputs run in one worker process while this process waits, so the run uses one CPU; a worker
that hangs or dies is replaced and the run goes on. Input ``i`` depends only on ``--seed`` and
``i``, so ``--only I --save DIR`` reproduces one finding.

    python tests/reliability/fuzz_images.py --n 10000 --seed 0

The seed images and the mutation operators are also used by tests/test_fuzz_images.py.
"""

from __future__ import annotations

import os

# One core for the whole run, set before numpy or PIL start any thread pool.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import io
import multiprocessing
import random
import resource
import struct
import sys
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
from PIL import Image

Op = tuple[str, int, int, bytes]  # (kind, position, amount, payload); the meaning depends on kind
OP_KINDS = ("flip", "byte", "truncate", "splice", "header", "insert", "delete", "dup", "fixcrc")
INTERESTING = (b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x7f\xff", b"\x00\x00",
               b"\xff\xff\xff\xff", b"\x7f\xff\xff\xff", b"\x00\x01\x00\x00", b"\x80\x00\x00\x00")


# --- seeds ------------------------------------------------------------------------------------


def _gradient(width: int, height: int) -> np.ndarray:
    y, x = np.mgrid[0:height, 0:width]
    channels = [x * 255 // (width - 1), y * 255 // (height - 1), (x + y) * 255 // (width + height)]
    return np.stack(channels, axis=-1).astype(np.uint8)


def _save(image: Image.Image | list[Image.Image], fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    if isinstance(image, list):
        image[0].save(buffer, fmt, save_all=True, append_images=image[1:], **params)
    else:
        image.save(buffer, fmt, **params)
    return buffer.getvalue()


def seed_images() -> dict[str, bytes]:
    """Small valid files covering the formats and colour modes load_image handles."""
    rgb = Image.fromarray(_gradient(24, 16))
    rgba = rgb.copy()
    rgba.putalpha(Image.linear_gradient("L").resize(rgb.size))
    gray16 = Image.fromarray((np.arange(24 * 16, dtype=np.uint16).reshape(16, 24) * 170).astype(np.uint16))
    palette = rgb.quantize(16)
    ramp = Image.fromarray(np.linspace(0, 3, 24 * 16, dtype=np.float32).reshape(16, 24))
    frames = [rgb, rgb.transpose(Image.Transpose.FLIP_LEFT_RIGHT), rgb.convert("L").convert("RGB")]
    exif = Image.Exif()
    exif[0x0112] = 6
    return {
        "jpeg": _save(rgb, "JPEG", quality=80),
        "jpeg_exif": _save(rgb, "JPEG", exif=exif),
        "jpeg_progressive": _save(rgb, "JPEG", progressive=True),
        "jpeg_gray": _save(rgb.convert("L"), "JPEG"),
        "jpeg_cmyk": _save(rgb.convert("CMYK"), "JPEG"),
        "png": _save(rgb, "PNG"),
        "png_rgba": _save(rgba, "PNG"),
        "png_palette_trns": _save(palette, "PNG", transparency=0),
        "png_16bit": _save(gray16, "PNG"),
        "png_1bit": _save(rgb.convert("1"), "PNG"),
        "png_interlaced": _save(rgb, "PNG", optimize=False, interlace=1),
        "gif": _save(palette, "GIF"),
        "gif_animated": _save(frames, "GIF", duration=50, loop=0),
        "webp": _save(rgb, "WEBP", quality=70),
        "webp_lossless_rgba": _save(rgba, "WEBP", lossless=True),
        "webp_animated": _save(frames, "WEBP", duration=50),
        "tiff": _save(rgb, "TIFF"),
        "tiff_lzw": _save(rgb, "TIFF", compression="tiff_lzw"),
        "tiff_deflate_rgba": _save(rgba, "TIFF", compression="tiff_adobe_deflate"),
        "tiff_16bit": _save(gray16, "TIFF"),
        "tiff_float": _save(ramp, "TIFF"),
        "tiff_cmyk": _save(rgb.convert("CMYK"), "TIFF"),
        "tiff_multipage": _save(frames, "TIFF"),
        "bmp": _save(rgb, "BMP"),
        "bmp_palette": _save(palette, "BMP"),
        "bmp_1bit": _save(rgb.convert("1"), "BMP"),
    }


# --- mutations --------------------------------------------------------------------------------


def _fix_png_crcs(data: bytes) -> bytes:
    """Recompute every PNG chunk CRC, so that edits inside chunks reach the decoder."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return data
    out = bytearray(data)
    pos = 8
    while pos + 12 <= len(out):
        length = struct.unpack(">I", out[pos : pos + 4])[0]
        end = pos + 8 + length
        if end + 4 > len(out):
            break
        out[end : end + 4] = struct.pack(">I", zlib.crc32(bytes(out[pos + 4 : end])) & 0xFFFFFFFF)
        pos = end + 4
    return bytes(out)


def apply_ops(data: bytes, ops: Sequence[Op], others: Sequence[bytes]) -> bytes:
    """Apply mutation ``ops`` to ``data``; positions wrap around, so every op fits every input."""
    buf = bytearray(data)
    for kind, position, amount, payload in ops:
        size = len(buf)
        if kind == "fixcrc":
            buf = bytearray(_fix_png_crcs(bytes(buf)))
        elif size == 0:
            buf = bytearray(payload)
        elif kind == "flip":
            buf[position % size] ^= 1 << (amount % 8)
        elif kind == "byte":
            buf[position % size] = amount % 256
        elif kind == "truncate":
            del buf[position % size :]
        elif kind == "splice" and others:
            other = others[amount % len(others)]
            buf = buf[: position % size] + other[(position * 7919) % max(len(other), 1) :]
        elif kind == "header":
            start = position % min(size, 64)
            buf[start : start + len(payload)] = payload
        elif kind == "insert":
            start = position % (size + 1)
            buf[start:start] = payload
        elif kind == "delete":
            start = position % size
            del buf[start : start + 1 + amount % 64]
        elif kind == "dup":
            start = position % size
            chunk = buf[start : start + 1 + amount % 256]
            buf[start:start] = chunk
    return bytes(buf)


def random_ops(rng: random.Random, n_others: int) -> list[Op]:
    """One to four random mutations."""
    ops: list[Op] = []
    for _ in range(rng.choice((1, 1, 2, 2, 3, 4))):
        kind = rng.choice(OP_KINDS[:-1])
        payload = rng.choice(INTERESTING) if rng.random() < 0.6 else rng.randbytes(rng.randint(1, 8))
        position = rng.randrange(1 << 20) if rng.random() < 0.7 else rng.randrange(64)
        amount = rng.randrange(max(n_others, 1) if kind == "splice" else 1 << 16)
        ops.append((kind, position, amount, payload))
    if rng.random() < 0.5:
        ops.append(("fixcrc", 0, 0, b""))
    return ops


def make_input(seed: int, index: int, seeds: dict[str, bytes]) -> tuple[str, bytes]:
    """Input number ``index`` of the run with ``seed``: (name of the seed file, mutated bytes)."""
    rng = random.Random(f"{seed}:{index}")
    names = sorted(seeds)
    name = rng.choice(names)
    others = [seeds[n] for n in names]
    return name, apply_ops(seeds[name], random_ops(rng, len(others)), others)


# --- running ----------------------------------------------------------------------------------


def classify(data: bytes, max_pixels: int) -> tuple[str, str]:
    """(outcome, detail) of loading ``data``; outcome is "ok", an ImageError class name or "CRASH"."""
    from assistant.vision.errors import ImageError, ImageTooLargeError
    from assistant.vision.io import load_image

    try:
        image = load_image(data, max_pixels=max_pixels)
    except ImageTooLargeError as e:
        return ("ImageTooLargeError(oom)" if "out of memory" in str(e) else "ImageTooLargeError"), str(e)
    except ImageError as e:
        return type(e).__name__, str(e)
    except BaseException as e:
        return "CRASH", f"{type(e).__module__}.{type(e).__name__}: {e}"
    if image.mode != "RGB" or image.width * image.height <= 0:
        return "CRASH", f"bad result: mode={image.mode} size={image.size}"
    return "ok", f"{image.size}"


def _mapped_bytes() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _worker(conn: Connection, seed: int, max_pixels: int, memory_mb: int) -> None:
    if memory_mb > 0:
        # A runaway allocation becomes a MemoryError (reported as "oom") instead of the OOM killer.
        # The cap is on top of what is mapped already (torch alone maps gigabytes of address space).
        limit = _mapped_bytes() + memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    # PIL warns about every corrupt tag; the outcome counts are the report, not thousands of warnings.
    warnings.simplefilter("ignore")
    seeds = seed_images()
    while True:
        index = conn.recv()
        if index is None:
            return
        name, data = make_input(seed, index, seeds)
        start = time.perf_counter()
        outcome, detail = classify(data, max_pixels)
        conn.send((name, outcome, detail, time.perf_counter() - start))


class _Runner:
    """One worker process fed one input at a time; replaced when it hangs or dies."""

    def __init__(self, seed: int, max_pixels: int, memory_mb: int) -> None:
        self._args = (seed, max_pixels, memory_mb)
        self._ctx = multiprocessing.get_context("fork")
        self._start()

    def _start(self) -> None:
        self._conn, child = self._ctx.Pipe()
        self._proc = self._ctx.Process(target=_worker, args=(child, *self._args), daemon=True)
        self._proc.start()
        child.close()

    def _restart(self) -> None:
        self._proc.kill()
        self._proc.join()
        self._conn.close()
        self._start()

    def run(self, index: int, time_limit: float) -> tuple[str, str, str, float]:
        self._conn.send(index)
        if self._conn.poll(time_limit):
            try:
                return self._conn.recv()
            except EOFError:
                pass
        else:
            self._restart()
            return "?", "HANG", f"no answer after {time_limit:g} s", time_limit
        self._proc.join()
        code = self._proc.exitcode
        self._restart()
        return "?", "CRASH", f"worker died (exit code {code})", 0.0

    def close(self) -> None:
        self._conn.send(None)
        self._proc.join(5)
        if self._proc.is_alive():
            self._proc.kill()


def main(argv: Sequence[str] | None = None) -> int:
    from assistant.vision import defaults

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="number of inputs (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="run seed; input i depends only on seed and i")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per input, then a hang")
    parser.add_argument("--max-pixels", type=int, default=defaults.MAX_IMAGE_PIXELS)
    parser.add_argument("--memory-mb", type=int, default=2048, help="worker address-space cap; 0 = none")
    parser.add_argument("--only", type=int, help="run just input number ONLY")
    parser.add_argument("--save", type=Path, help="write failing (and --only) inputs to this folder")
    args = parser.parse_args(argv)

    indices = [args.only] if args.only is not None else list(range(args.n))
    runner = _Runner(args.seed, args.max_pixels, args.memory_mb)
    outcomes: Counter[str] = Counter()
    per_seed: dict[str, Counter[str]] = {}
    failures: list[tuple[int, str, str, str]] = []
    slowest = (0.0, -1, "")
    started = time.perf_counter()
    try:
        for done, index in enumerate(indices, 1):
            name, outcome, detail, elapsed = runner.run(index, args.time_limit)
            if name == "?":
                name = make_input(args.seed, index, seed_images())[0]
            outcomes[outcome] += 1
            per_seed.setdefault(name, Counter())[outcome] += 1
            slowest = max(slowest, (elapsed, index, name))
            if outcome in ("CRASH", "HANG") or args.only is not None:
                failures.append((index, name, outcome, detail))
                if args.save:
                    args.save.mkdir(parents=True, exist_ok=True)
                    (args.save / f"input-{args.seed}-{index}-{name}.bin").write_bytes(
                        make_input(args.seed, index, seed_images())[1]
                    )
            if done % 1000 == 0:
                print(f"... {done}/{len(indices)} in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    finally:
        runner.close()
    total = time.perf_counter() - started

    print(f"inputs: {len(indices)}  seed: {args.seed}  elapsed: {total:.1f} s "
          f"({1000 * total / max(len(indices), 1):.1f} ms/input)")
    print(f"slowest input: #{slowest[1]} ({slowest[2]}) {slowest[0] * 1000:.0f} ms")
    print("outcomes:")
    for outcome, count in outcomes.most_common():
        print(f"  {outcome:28s} {count:6d}")
    print("per seed (ok / errors):")
    for name in sorted(per_seed):
        counts = per_seed[name]
        print(f"  {name:20s} {counts['ok']:5d} / {sum(counts.values()) - counts['ok']:5d}")
    for index, name, outcome, detail in failures[:50]:
        print(f"{outcome}: input #{index} ({name}): {detail}")
    bad = outcomes["CRASH"] + outcomes["HANG"]
    if bad:
        print("FAILED: the inputs above escaped the RGB-or-ImageError contract")
    else:
        print("OK: every input gave an RGB image or an ImageError")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
