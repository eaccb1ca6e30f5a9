#!/usr/bin/env python
"""Decompression bombs and huge canvases: refused before decoding, with bounded memory.

Builds small files that announce (or, for PNG, really hold) an enormous image: a 50000x50000 PNG whose
IDAT inflates to 312 MB, a 30000x30000 JPEG header, a 65535x65535 GIF screen, a 16383x16383 animated
WebP canvas around a 1x1 frame and a 100000x100000 TIFF, each also at 12000x12000 (144 Mpx: above
blipkit's ``defaults.MAX_IMAGE_PIXELS`` but below Pillow's own DecompressionBombError ceiling, so that
only blipkit's header check stands between the file and a multi-hundred-MB allocation).

Each file is loaded with ``assistant.vision.io.load_image`` in a fresh subprocess whose peak RSS (``VmHWM``)
is compared with a baseline subprocess that loads a small valid image. A control decodes a
4000x4000 PNG (allowed) to show that the measurement sees a real decode. The script fails when a bomb is not
refused with ImageTooLargeError or when its RSS growth exceeds ``--bound-mb``.

    python tests/reliability/bombs.py            # table of outcomes and RSS growth
    python tests/reliability/bombs.py --json     # the same as JSON
    python tests/reliability/bombs.py --unguarded  # also load the 144 Mpx files with the limit lifted

tests/test_reliability_bombs.py runs the same cases.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse
import io
import json
import struct
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

# The bound a refusal may cost, over a process that loads a small valid image: header parsing and a
# few small buffers, never the pixel array (a 12000x12000 RGB canvas alone is 432 MB).
DEFAULT_BOUND_MB = 16.0

_CHILD = r"""
import json, resource, sys, warnings
warnings.simplefilter("ignore")
from assistant.vision.errors import ImageError
from assistant.vision.io import load_image
path, max_pixels = sys.argv[1], int(sys.argv[2])
try:
    image = load_image(path, max_pixels=max_pixels) if max_pixels else load_image(path)
    outcome, detail = "ok", f"{image.size}"
except ImageError as e:
    outcome, detail = type(e).__name__, str(e)
# VmHWM is this program's own peak: ru_maxrss would also count the parent's RSS at fork time, as Linux
# carries it across exec.
hwm = [int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")]
print(json.dumps({"outcome": outcome, "detail": detail,
                  "maxrss_kb": hwm[0] if hwm else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


# --- crafting ------------------------------------------------------------------------------------


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def png_bomb(width: int, height: int, *, bit_depth: int = 1, colour_type: int = 0) -> bytes:
    """A valid PNG of all-zero rows: it really inflates to ``height`` full rows when decoded."""
    row = 1 + (width * bit_depth * (3 if colour_type == 2 else 1) + 7) // 8
    compressor = zlib.compressobj(9)
    block = b"\x00" * (row * 256)
    parts, left = [], height
    while left:
        n = min(256, left)
        parts.append(compressor.compress(block[: n * row]))
        left -= n
    parts.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", b"".join(parts))
            + _png_chunk(b"IEND", b""))


def _pil_bytes(fmt: str, size: tuple[int, int] = (8, 8), **params: object) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, fmt, **params)
    return buffer.getvalue()


def jpeg_header_bomb(width: int, height: int) -> bytes:
    """A small baseline JPEG whose SOF0 frame header claims ``width`` x ``height``."""
    data = bytearray(_pil_bytes("JPEG"))
    sof = data.find(b"\xff\xc0")
    assert sof > 0, "no SOF0 marker"
    struct.pack_into(">HH", data, sof + 5, height, width)  # FFC0, length(2), precision(1), then H, W
    return bytes(data)


def gif_canvas_bomb(width: int, height: int) -> bytes:
    """A 1x1 GIF whose logical screen is ``width`` x ``height``."""
    data = bytearray(_pil_bytes("GIF", (1, 1)))
    struct.pack_into("<HH", data, 6, width, height)
    return bytes(data)


def webp_canvas_bomb(width: int, height: int) -> bytes:
    """An animated WebP with a ``width`` x ``height`` canvas holding a single 1x1 frame."""
    still = _pil_bytes("WEBP", (1, 1), lossless=True)
    vp8l = still[12:]  # the VP8L chunk of the 1x1 still image, header included
    assert vp8l[:4] == b"VP8L", vp8l[:4]

    def u24(value: int) -> bytes:
        return value.to_bytes(3, "little")

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return kind + struct.pack("<I", len(payload)) + payload + (b"\x00" if len(payload) % 2 else b"")

    vp8x = chunk(b"VP8X", bytes([0x02, 0, 0, 0]) + u24(width - 1) + u24(height - 1))  # 0x02: animation
    anim = chunk(b"ANIM", b"\xff\xff\xff\xff" + struct.pack("<H", 0))
    anmf = chunk(b"ANMF", u24(0) + u24(0) + u24(0) + u24(0) + u24(100) + b"\x00" + vp8l)
    body = b"WEBP" + vp8x + anim + anmf
    return b"RIFF" + struct.pack("<I", len(body)) + body


def tiff_header_bomb(width: int, height: int) -> bytes:
    """A single-strip 8-bit RGB TIFF whose header claims ``width`` x ``height`` (with a few bytes of data)."""
    entries = [  # (tag, type, count, value): type 3 = SHORT, 4 = LONG
        (256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 2),
        (273, 4, 1, 0), (277, 3, 1, 3), (278, 4, 1, height), (279, 4, 1, 64),
    ]
    ifd_offset = 8
    data_offset = ifd_offset + 2 + 12 * len(entries) + 4
    entries[5] = (273, 4, 1, data_offset)
    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offset) + struct.pack("<H", len(entries)))
    for tag, kind, count, value in entries:
        packed = struct.pack("<H", value) + b"\x00\x00" if kind == 3 else struct.pack("<I", value)
        out += struct.pack("<HHI", tag, kind, count) + packed
    out += struct.pack("<I", 0) + b"\x80" * 64
    return bytes(out)


def small_png(width: int, height: int) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@dataclass
class Case:
    name: str
    make: Callable[[], bytes]
    pixels: int
    expect_refused: bool = True
    max_pixels: int = 0  # 0: load_image's default, defaults.MAX_IMAGE_PIXELS


def cases() -> list[Case]:
    """The bombs (each must be refused), then the control (must decode)."""
    big = 12_000
    return [
        Case("png 50000x50000 1-bit (inflates to 312 MB)", lambda: png_bomb(50_000, 50_000), 50_000**2),
        Case("png 12000x12000 RGB (inflates to 432 MB)",
             lambda: png_bomb(big, big, bit_depth=8, colour_type=2), big * big),
        Case("jpeg header 30000x30000", lambda: jpeg_header_bomb(30_000, 30_000), 30_000**2),
        Case("jpeg header 12000x12000", lambda: jpeg_header_bomb(big, big), big * big),
        Case("gif screen 65535x65535", lambda: gif_canvas_bomb(65_535, 65_535), 65_535**2),
        Case("gif screen 12000x12000", lambda: gif_canvas_bomb(big, big), big * big),
        Case("webp canvas 16383x16383", lambda: webp_canvas_bomb(16_383, 16_383), 16_383**2),
        Case("webp canvas 12000x12000", lambda: webp_canvas_bomb(big, big), big * big),
        Case("tiff 100000x100000", lambda: tiff_header_bomb(100_000, 100_000), 100_000**2),
        Case("tiff 12000x12000", lambda: tiff_header_bomb(big, big), big * big),
        Case("png 1000x1000 with max_pixels=999999", lambda: small_png(1000, 1000), 10**6,
             max_pixels=999_999),
        Case("control: png 4000x4000 decoded", lambda: small_png(4000, 4000), 16 * 10**6,
             expect_refused=False),
    ]


# --- measuring -----------------------------------------------------------------------------------


@dataclass
class Measurement:
    name: str
    file_bytes: int
    pixels: int
    outcome: str
    detail: str
    maxrss_mb: float
    growth_mb: float
    expect_refused: bool

    @property
    def passed(self) -> bool:
        refused = self.outcome == "ImageTooLargeError"
        return refused if self.expect_refused else self.outcome == "ok"


def measure_file(path: Path, max_pixels: int = 0, python: str = sys.executable) -> dict[str, object]:
    """Load ``path`` in a fresh subprocess: its outcome and peak RSS."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.run([python, "-c", _CHILD, str(path), str(max_pixels)],
                          capture_output=True, text=True, timeout=300, env=env)
    if proc.returncode != 0:
        return {"outcome": f"CRASH (exit {proc.returncode})", "detail": proc.stderr[-500:], "maxrss_kb": 0}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(
    selected: Sequence[Case] | None = None, folder: Path | None = None
) -> tuple[float, list[Measurement]]:
    """(baseline peak RSS in MB, one measurement per case)."""
    with tempfile.TemporaryDirectory() as tmp:
        root = folder or Path(tmp)
        base_path = root / "baseline.png"
        base_path.write_bytes(small_png(64, 64))
        # The larger of two baseline runs, so that allocator noise does not count as growth.
        baseline = max(float(measure_file(base_path)["maxrss_kb"]) for _ in range(2)) / 1024
        results = []
        for i, case in enumerate(selected if selected is not None else cases()):
            data = case.make()
            path = root / f"case{i}.bin"
            path.write_bytes(data)
            got = measure_file(path, case.max_pixels)
            rss = float(got["maxrss_kb"]) / 1024  # type: ignore[arg-type]
            results.append(Measurement(case.name, len(data), case.pixels, str(got["outcome"]),
                                       str(got["detail"]), rss, rss - baseline, case.expect_refused))
        return baseline, results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bound-mb", type=float, default=DEFAULT_BOUND_MB,
                        help=f"largest RSS growth a refusal may cost (default {DEFAULT_BOUND_MB:g} MB)")
    parser.add_argument("--json", action="store_true", help="print the measurements as JSON")
    parser.add_argument("--unguarded", action="store_true",
                        help="also load the 144 Mpx files with max_pixels lifted, to show what a decode "
                             "costs (needs a few GB of free memory)")
    args = parser.parse_args(argv)

    selected = cases()
    if args.unguarded:
        selected += [Case(f"unguarded (max_pixels=1e9): {c.name}", c.make, c.pixels, expect_refused=False,
                          max_pixels=10**9) for c in cases() if "12000x12000" in c.name]
    baseline, results = run(selected)
    failures = [m for m in results if (not m.passed and not m.name.startswith("unguarded"))
                or (m.expect_refused and m.growth_mb > args.bound_mb)]
    if args.json:
        print(json.dumps({"baseline_mb": baseline, "bound_mb": args.bound_mb,
                          "cases": [asdict(m) for m in results]}, indent=2))
    else:
        print(f"baseline (64x64 PNG loaded): peak RSS {baseline:.1f} MB; "
              f"bound on growth {args.bound_mb:g} MB")
        print(f"{'case':62s} {'file':>9s} {'Mpx':>8s} {'outcome':20s} {'peak MB':>8s} {'growth MB':>9s}")
        for m in results:
            print(f"{m.name:62s} {m.file_bytes:9d} {m.pixels / 1e6:8.0f} {m.outcome:20s} "
                  f"{m.maxrss_mb:8.1f} {m.growth_mb:9.1f}")
    for m in failures:
        print(f"FAILED: {m.name}: {m.outcome} {m.detail} (growth {m.growth_mb:.1f} MB)")
    if not failures:
        print("OK: every bomb refused with ImageTooLargeError within the memory bound")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
