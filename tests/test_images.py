"""load_image: every colour mode becomes the right RGB pixels, and every failure is an ImageError."""

from __future__ import annotations

import contextlib
import io
import os
import re
import struct
import time
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from assistant.vision.errors import (
    ImageDecodeError,
    ImageError,
    ImageFetchError,
    ImageNotFoundError,
    ImageTooLargeError,
)
from assistant.vision.io import describe_source, load_image

# --- helpers ------------------------------------------------------------------------------------


def encode(image: Image.Image | list[Image.Image], fmt: str, **params: object) -> bytes:
    buffer = io.BytesIO()
    if isinstance(image, list):
        image[0].save(buffer, fmt, save_all=True, append_images=image[1:], **params)
    else:
        image.save(buffer, fmt, **params)
    return buffer.getvalue()


def png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def handmade_png(
    width: int, height: int, *, bit_depth: int = 8, color_type: int = 2, idat: bytes = b""
) -> bytes:
    """A PNG written byte by byte, so its header can claim any size whatever its data holds."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat or zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def pixels(image: Image.Image) -> np.ndarray:
    assert image.mode == "RGB"
    return np.asarray(image).astype(int)


def gradient_rgb(width: int = 32, height: int = 16) -> Image.Image:
    x = np.tile(np.linspace(0, 255, width).astype(np.uint8), (height, 1))
    y = np.tile(np.linspace(0, 255, height).astype(np.uint8)[:, None], (1, width))
    return Image.fromarray(np.stack([x, y, 255 - x], axis=-1))


# --- colour modes -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["PNG", "BMP", "TIFF", "WEBP"])
def test_lossless_rgb_formats_round_trip_exactly(fmt: str) -> None:
    image = gradient_rgb()
    params = {"lossless": True} if fmt == "WEBP" else {}
    out = load_image(encode(image, fmt, **params))
    assert out.mode == "RGB" and out.size == image.size
    assert np.array_equal(pixels(out), np.asarray(image))


def test_jpeg_decodes_close_to_the_original() -> None:
    image = gradient_rgb()
    out = load_image(encode(image, "JPEG", quality=95))
    assert np.abs(pixels(out) - np.asarray(image).astype(int)).mean() < 4


def test_grayscale_becomes_equal_channels() -> None:
    gray = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16))
    out = pixels(load_image(encode(gray, "PNG")))
    for channel in range(3):
        assert np.array_equal(out[:, :, channel], np.asarray(gray))


def test_one_bit_becomes_black_and_white() -> None:
    bits = Image.fromarray(np.array([[0, 255], [255, 0]], dtype=np.uint8)).convert("1")
    out = pixels(load_image(encode(bits, "PNG")))
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]


def test_palette_keeps_its_colours() -> None:
    palette = Image.new("P", (4, 1))
    palette.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30])
    palette.putdata([0, 1, 2, 3])
    out = pixels(load_image(encode(palette, "PNG")))
    assert out[0].tolist() == [[255, 0, 0], [0, 255, 0], [0, 0, 255], [10, 20, 30]]


def test_palette_transparency_becomes_white() -> None:
    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 0, 200, 10, 10])
    palette.putdata([0, 1])
    for fmt in ("PNG", "GIF"):
        out = pixels(load_image(encode(palette, fmt, transparency=0)))
        assert out[0, 0].tolist() == [255, 255, 255], fmt
        assert out[0, 1].tolist() == [200, 10, 10], fmt


def test_rgba_is_composited_on_white() -> None:
    rgba = Image.new("RGBA", (3, 1))
    rgba.putdata([(200, 0, 0, 255), (200, 0, 0, 0), (200, 0, 0, 128)])
    out = pixels(load_image(encode(rgba, "PNG")))
    assert out[0, 0].tolist() == [200, 0, 0]
    assert out[0, 1].tolist() == [255, 255, 255]
    # Half transparent red over white: 200*a + 255*(1-a) and 255*(1-a) with a = 128/255.
    assert np.allclose(out[0, 2], [227, 127, 127], atol=2)


def test_la_and_pa_alpha_are_composited_on_white() -> None:
    la = Image.new("LA", (2, 1))
    la.putdata([(50, 255), (50, 0)])
    out = pixels(load_image(encode(la, "PNG")))
    assert out[0].tolist() == [[50, 50, 50], [255, 255, 255]]

    palette = Image.new("P", (2, 1))
    palette.putpalette([0, 0, 255, 0, 255, 0])
    palette.putdata([0, 1])
    pa = palette.convert("PA")
    pa.putalpha(Image.frombytes("L", (2, 1), bytes([255, 0])))
    assert pa.mode == "PA"
    out = pixels(load_image(pa))
    assert out[0].tolist() == [[0, 0, 255], [255, 255, 255]]


@pytest.mark.parametrize("fmt", ["TIFF", "JPEG"])
def test_cmyk_becomes_rgb(fmt: str) -> None:
    cmyk = Image.new("CMYK", (8, 8), (255, 0, 0, 0))  # pure cyan
    out = pixels(load_image(encode(cmyk, fmt, **({"quality": 100} if fmt == "JPEG" else {}))))
    assert np.allclose(out[4, 4], [0, 255, 255], atol=3)


def test_16bit_grayscale_keeps_its_gradient() -> None:
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    for fmt in ("PNG", "TIFF"):
        data = encode(Image.fromarray(ramp), fmt)
        assert Image.open(io.BytesIO(data)).mode == "I;16"
        row = pixels(load_image(data))[0, :, 0]
        assert row[0] == 0 and row[-1] == 255, fmt
        assert (np.diff(row) >= 0).all() and len(np.unique(row)) > 200, fmt
        assert np.array_equal(row, ramp[0] >> 8), fmt


def test_16bit_rgb_png_uses_the_high_bytes() -> None:
    # colour type 2 at 16 bits: each pixel is six big-endian bytes.
    row = b"\x00" + struct.pack(">6H", 0xFFFF, 0x8000, 0x0000, 0x1234, 0xFF00, 0x00FF)
    out = pixels(load_image(handmade_png(2, 1, bit_depth=16, idat=zlib.compress(row))))
    assert out[0].tolist() == [[255, 128, 0], [18, 255, 0]]


def test_32bit_integer_images_scale_by_the_range_they_use() -> None:
    sixteen = np.tile(np.linspace(0, 65535, 64).astype(np.int32), (2, 1))
    out = pixels(load_image(encode(Image.fromarray(sixteen), "TIFF")))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and len(np.unique(out[0, :, 0])) > 50
    eight = np.tile(np.arange(0, 256, 4, dtype=np.int32), (2, 1))
    out = pixels(load_image(encode(Image.fromarray(eight), "TIFF")))
    assert np.array_equal(out[0, :, 0], eight[0])
    wide = np.tile(np.linspace(-1e6, 1e6, 64).astype(np.int32), (2, 1))
    out = pixels(load_image(encode(Image.fromarray(wide), "TIFF")))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and (np.diff(out[0, :, 0]) >= 0).all()


def test_float_images_scale_to_8_bits() -> None:
    unit = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (2, 1))
    out = pixels(load_image(encode(Image.fromarray(unit), "TIFF")))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and len(np.unique(out[0, :, 0])) > 50
    hdr = np.tile(np.linspace(-5, 40000, 64, dtype=np.float32), (2, 1))
    out = pixels(load_image(encode(Image.fromarray(hdr), "TIFF")))
    assert out[0, 0, 0] == 0 and out[0, -1, 0] == 255 and (np.diff(out[0, :, 0]) >= 0).all()
    holes = np.array([[np.nan, 0.0, 0.5, 1.0, np.inf]], dtype=np.float32)
    out = pixels(load_image(encode(Image.fromarray(holes), "TIFF")))
    assert out[0, :, 0].tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "TIFF", "PNG"])
def test_animations_give_their_first_frame(fmt: str) -> None:
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    params: dict[str, object] = {"duration": 40}
    if fmt == "WEBP":
        params["lossless"] = True
    data = encode(frames, fmt, **params)
    assert getattr(Image.open(io.BytesIO(data)), "n_frames", 1) == 3
    assert np.allclose(pixels(load_image(data))[4, 4], [255, 0, 0], atol=2)


def exif_rotated_jpeg(orientation: int) -> bytes:
    # Stored landscape 40x20, left half red, right half blue.
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = orientation
    return encode(image, "JPEG", quality=95, exif=exif)


def test_exif_orientation_6_rotates_clockwise(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(exif_rotated_jpeg(6))
    for source in (path, str(path), path.read_bytes(), Image.open(path)):
        out = load_image(source)
        # Orientation 6 is shown turned 90° clockwise: portrait, the left (red) half on top.
        assert out.size == (20, 40)
        assert np.allclose(pixels(out)[5, 10], [255, 0, 0], atol=30)
        assert np.allclose(pixels(out)[35, 10], [0, 0, 255], atol=30)


def test_exif_orientation_3_turns_upside_down() -> None:
    out = load_image(exif_rotated_jpeg(3))
    assert out.size == (40, 20)
    assert np.allclose(pixels(out)[10, 5], [0, 0, 255], atol=30)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_broken_exif_does_not_lose_the_photo() -> None:
    good = encode(gradient_rgb(), "JPEG")
    junk_exif = b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08\x00\x05\x01\x12\x00\x03\xff\xff"
    data = good[:2] + b"\xff\xe1" + struct.pack(">H", len(junk_exif) + 2) + junk_exif + good[2:]
    assert load_image(data).size == (32, 16)


# --- in-memory inputs ---------------------------------------------------------------------------


def test_bytes_like_inputs() -> None:
    data = encode(gradient_rgb(), "PNG")
    for source in (data, bytearray(data), memoryview(data)):
        assert load_image(source).size == (32, 16)


def test_pil_input_is_converted_without_touching_the_original() -> None:
    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    out = load_image(rgba)
    assert rgba.mode == "RGBA" and out.mode == "RGB"
    assert pixels(out)[0, 0].tolist() == [255, 255, 255]

    rgb = gradient_rgb()
    out = load_image(rgb)
    assert out is not rgb
    out.putpixel((0, 0), (1, 2, 3))
    assert rgb.getpixel((0, 0)) != (1, 2, 3)


def test_lazy_pil_input_is_size_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    gradient_rgb(100, 100).save(path)
    lazy = Image.open(path)
    with pytest.raises(ImageTooLargeError, match=re.escape("<PIL.Image>")):
        load_image(lazy, max_pixels=5000)
    assert lazy.tile, "the pixels must not have been decoded"


@pytest.mark.parametrize(
    ("array", "expected"),
    [
        (np.full((2, 3), 7, np.uint8), [7, 7, 7]),
        (np.full((2, 3, 1), 9, np.uint8), [9, 9, 9]),
        (np.full((2, 3, 3), [1, 2, 3], np.uint8), [1, 2, 3]),
        (np.full((2, 3, 4), [1, 2, 3, 255], np.uint8), [1, 2, 3]),
        (np.full((2, 3, 4), [1, 2, 3, 0], np.uint8), [255, 255, 255]),
        (np.full((2, 3, 3), [0.0, 0.5, 1.0], np.float32), [0, 128, 255]),
        (np.full((2, 3), 1.0, np.float64), [255, 255, 255]),
        (np.full((2, 3, 3), [0.0, 0.5, 1.0], np.float16), [0, 128, 255]),
    ],
)
def test_numpy_arrays(array: np.ndarray, expected: list[int]) -> None:
    out = load_image(array)
    assert out.size == (3, 2)
    assert pixels(out)[1, 2].tolist() == expected


def test_numpy_views_are_fine() -> None:
    array = np.arange(24, dtype=np.uint8).reshape(4, 2, 3)
    view = array.transpose(1, 0, 2)  # not C-contiguous
    assert np.array_equal(pixels(load_image(view)), view)


@pytest.mark.parametrize(
    ("array", "match"),
    [
        (np.zeros((2, 3), np.int64), "dtype int64"),
        (np.zeros((2, 3), np.uint16), "dtype uint16"),
        (np.zeros((2, 3), bool), "dtype bool"),
        (np.zeros((2, 3, 2), np.uint8), r"shape \(2, 3, 2\)"),
        (np.zeros((2, 3, 3, 1), np.uint8), "shape"),
        (np.zeros(5, np.uint8), "shape"),
        (np.full((2, 2), 1.5, np.float32), r"\[0, 1\]"),
        (np.full((2, 2), -0.1, np.float32), r"\[0, 1\]"),
        (np.full((2, 2), np.nan, np.float32), "NaN"),
        (np.zeros((0, 3), np.uint8), "no pixels"),
    ],
)
def test_unusable_arrays_give_a_clear_image_error(array: np.ndarray, match: str) -> None:
    with pytest.raises(ImageError, match=match) as info:
        load_image(array)
    assert "<ndarray>" in str(info.value)


def test_array_pixel_limit() -> None:
    with pytest.raises(ImageTooLargeError):
        load_image(np.zeros((100, 100), np.uint8), max_pixels=9999)
    assert load_image(np.zeros((100, 100), np.uint8), max_pixels=10000).size == (100, 100)


def test_unsupported_source_type() -> None:
    with pytest.raises(ImageError, match="unsupported image source type int"):
        load_image(42)  # type: ignore[arg-type]


# --- files and failures -------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jpg"
    for source in (missing, str(missing)):
        with pytest.raises(ImageNotFoundError, match=r"nope\.jpg"):
            load_image(source)
    with pytest.raises(ImageNotFoundError):
        load_image("")
    with pytest.raises(ImageNotFoundError):
        load_image(str(tmp_path / "file.png" / "below-a-file.png"))


def test_directory_is_an_image_error(tmp_path: Path) -> None:
    with pytest.raises(ImageError, match="directory") as info:
        load_image(tmp_path)
    assert not isinstance(info.value, ImageNotFoundError)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"", "empty"),
        (b"this is a text file, not a JPEG\n" * 3, "not a supported image format .the data looks like text"),
        (bytes(range(256)) * 8, "not a supported image format"),
        (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", "not a supported image format"),
        (b"\xff\xd8\xff\xe0" + b"\x00" * 40, None),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 30, None),
    ],
)
def test_undecodable_files(tmp_path: Path, content: bytes, match: str | None) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageDecodeError, match=match) as info:
        load_image(path)
    assert str(path) in str(info.value)
    with pytest.raises(ImageDecodeError, match="<bytes>"):
        load_image(content)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "TIFF", "BMP"])
def test_truncated_images_are_refused(tmp_path: Path, fmt: str) -> None:
    data = encode(gradient_rgb(64, 64).quantize(64) if fmt == "GIF" else gradient_rgb(64, 64), fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageDecodeError, match="cut"):
        load_image(path)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_corrupt_png_chunk_is_refused() -> None:
    data = bytearray(encode(gradient_rgb(), "PNG"))
    data[40] ^= 0xFF  # inside IDAT, so its CRC no longer matches
    with pytest.raises(ImageDecodeError):
        load_image(bytes(data))


def test_warnings_turned_into_errors_still_give_image_errors() -> None:
    data = bytearray(encode(gradient_rgb(), "TIFF"))
    data[-40:] = b"\xff" * 40  # corrupt the tags PIL warns about
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with contextlib.suppress(ImageError):
            load_image(bytes(data))


def test_file_over_max_bytes_is_refused_without_reading(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with open(path, "wb") as f:
        f.write(encode(gradient_rgb(), "PNG"))
        f.truncate(8 * 1024**3)  # sparse: 8 GiB on paper, nothing on disk
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"huge\.png"):
        load_image(path)
    assert time.perf_counter() - start < 0.5
    with pytest.raises(ImageTooLargeError):
        load_image(encode(gradient_rgb(), "PNG"), max_bytes=100)


def test_pixel_limit_boundary() -> None:
    data = encode(gradient_rgb(40, 40), "PNG")
    assert load_image(data, max_pixels=1600).size == (40, 40)
    with pytest.raises(ImageTooLargeError, match="40x40"):
        load_image(data, max_pixels=1599)


@pytest.mark.parametrize(("width", "height"), [(100_000, 100_000), (9000, 9000), (70_000, 1000)])
def test_png_header_bomb_is_refused_before_decoding(tmp_path: Path, width: int, height: int) -> None:
    # 9000x9000 (81 Mpx) is below PIL's own bomb limit, so only blipkit's check can catch it.
    path = tmp_path / "bomb.png"
    path.write_bytes(handmade_png(width, height))
    assert path.stat().st_size < 100
    start = time.perf_counter()
    with pytest.raises(ImageTooLargeError, match=r"bomb\.png"):
        load_image(path)
    assert time.perf_counter() - start < 0.5
    assert Image.MAX_IMAGE_PIXELS == 89478485  # PIL's global was left alone


def _peak_rss_growth_kb(action: Callable[[], object]) -> int:
    """How far the peak resident memory of this process rises above its current size during action."""

    def status(field: str) -> int:
        text = Path("/proc/self/status").read_text()
        return int(re.search(rf"^{field}:\s+(\d+)", text, re.MULTILINE).group(1))  # type: ignore[union-attr]

    Path("/proc/self/clear_refs").write_text("5")  # Linux: reset VmHWM (the peak) to the current RSS
    before = status("VmRSS")
    with contextlib.suppress(ImageError):
        action()
    return status("VmHWM") - before


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc peak-RSS reset")
def test_bomb_that_would_decode_uses_little_memory(tmp_path: Path) -> None:
    # A real 8200x8200 grayscale PNG of zeros: 67 Mpx in 65 kB. Decoding it raises the peak RSS by
    # about 390 MB (gray, then RGB); refusing it from the header must not.
    width = height = 8200
    compressor = zlib.compressobj(6)
    row = b"\x00" * (1 + width)
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    path = tmp_path / "zeros.png"
    path.write_bytes(handmade_png(width, height, color_type=0, idat=idat))
    assert path.stat().st_size < 200_000
    with pytest.raises(ImageTooLargeError):
        load_image(path)
    assert _peak_rss_growth_kb(lambda: load_image(path)) < 30_000
    # The measurement can see a decode: the same file under a higher limit is decoded for real.
    assert _peak_rss_growth_kb(lambda: load_image(path, max_pixels=10**9)) > 60_000


def test_jpeg_header_bomb() -> None:
    data = bytearray(encode(gradient_rgb(), "JPEG"))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 9000, 9000)  # height, width
    with pytest.raises(ImageTooLargeError, match="9000x9000"):
        load_image(bytes(data))


# --- URLs ---------------------------------------------------------------------------------------


def test_urls_are_never_fetched(monkeypatch: pytest.MonkeyPatch) -> None:
    """An http(s) URL is refused with words, and no socket is ever opened for it."""
    import socket

    def no_network(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    for url in ("http://127.0.0.1:9/x.png", "https://example.com/cat.jpg"):
        with pytest.raises(ImageFetchError, match="never fetched from the network"):
            load_image(url)


# --- describe_source ----------------------------------------------------------------------------


def test_describe_source() -> None:
    assert describe_source("a/b.jpg") == "a/b.jpg"
    assert describe_source(Path("a") / "b.jpg") == os.path.join("a", "b.jpg")
    assert describe_source("https://example.com/x.png?s=1") == "https://example.com/x.png?s=1"
    assert describe_source("https://user:secret@example.com/x.png") == "https://example.com/x.png"
    assert describe_source(b"\x89PNG") == "<bytes>"
    assert describe_source(bytearray(b"x")) == "<bytes>"
    assert describe_source(Image.new("RGB", (1, 1))) == "<PIL.Image>"
    assert describe_source(np.zeros((1, 1), np.uint8)) == "<ndarray>"
