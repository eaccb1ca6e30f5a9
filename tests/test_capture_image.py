"""Capture without a screen: geometry, BGRA -> RGB with downscaling, blank detection, session errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from assistant.capture import (
    CaptureError,
    Capturer,
    Rect,
    blank_reason,
    colour_name,
    fit,
    image_from_bgra,
    monitor_at,
    session_problem,
    square_around,
    target_size,
)


def bgra(rgb: np.ndarray, pad: int = 0) -> bytearray:
    """BGRA bytes of an (h, w, 3) RGB array, each row followed by ``pad`` junk bytes."""
    h, w, _ = rgb.shape
    out = np.full((h, w * 4 + pad), 7, np.uint8)
    px = out[:, : w * 4].reshape(h, w, 4)
    px[..., 0], px[..., 1], px[..., 2], px[..., 3] = rgb[..., 2], rgb[..., 1], rgb[..., 0], 255
    return bytearray(out.tobytes())


# -- geometry ---------------------------------------------------------------------------------------

LEFT, RIGHT = Rect(0, 0, 1920, 1080), Rect(1920, -200, 2560, 1440)


def test_monitor_at_picks_the_monitor_under_the_point() -> None:
    assert monitor_at(100, 100, [LEFT, RIGHT]) == LEFT
    assert monitor_at(1920, 0, [LEFT, RIGHT]) == RIGHT  # the first column of the right monitor
    assert monitor_at(3000, -150, [LEFT, RIGHT]) == RIGHT  # negative coordinates above the left one


def test_monitor_at_gap_goes_to_the_nearest_and_overlap_to_the_smallest() -> None:
    assert monitor_at(100, 1200, [LEFT, RIGHT]) == LEFT  # below the left monitor, in the L's dead corner
    assert monitor_at(1900, 1200, [LEFT, RIGHT]) == RIGHT  # 20 px left of RIGHT, 121 px below LEFT
    whole, half = Rect(0, 0, 1280, 800), Rect(640, 0, 640, 800)
    assert monitor_at(900, 10, [whole, half]) == half
    with pytest.raises(ValueError):
        monitor_at(0, 0, [])


def test_square_around_moves_inside_the_monitor_instead_of_shrinking() -> None:
    screen = Rect(0, 0, 1280, 800)
    assert square_around(640, 400, 400, screen) == Rect(440, 200, 400, 400)
    assert square_around(3, 5, 400, screen) == Rect(0, 0, 400, 400)
    assert square_around(1279, 799, 400, screen) == Rect(880, 400, 400, 400)
    assert square_around(2000, 500, 400, RIGHT) == Rect(1920, 300, 400, 400)
    # Larger than the monitor: cut to it.
    assert square_around(10, 10, 5000, screen) == screen
    with pytest.raises(ValueError):
        square_around(0, 0, 0, screen)


def test_logical_rect_scales_to_physical() -> None:
    assert Rect(10, 20, 100, 50).scaled(2.0) == Rect(20, 40, 200, 100)
    assert Rect(1, 1, 3, 3).scaled(1.5) == Rect(2, 2, 4, 4)  # edges 1.5->2 and 6->6
    # Adjacent logical rectangles stay adjacent after rounding.
    a, b = Rect(0, 0, 3, 3).scaled(1.25), Rect(3, 0, 3, 3).scaled(1.25)
    assert a.right == b.left
    with pytest.raises(ValueError):
        Rect(0, 0, 1, 1).scaled(0)


def test_rect_intersect() -> None:
    assert Rect(-50, -50, 100, 100).intersect(LEFT) == Rect(0, 0, 50, 50)
    assert Rect(5000, 0, 10, 10).intersect(LEFT).empty


# -- BGRA -> RGB, downscaling -----------------------------------------------------------------------


def test_small_capture_is_converted_exactly() -> None:
    rgb = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    image = image_from_bgra(bgra(rgb), 53, 37)
    assert image.mode == "RGB" and image.size == (53, 37)
    assert np.array_equal(np.asarray(image), rgb)


def test_padded_rows_are_handled() -> None:
    rgb = np.random.default_rng(2).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(image_from_bgra(bgra(rgb, pad=24), 30, 20)), rgb)
    with pytest.raises(ValueError):
        image_from_bgra(bytearray(10), 30, 20)


def test_huge_capture_keeps_aspect_and_max_side() -> None:
    h, w = 3000, 12000
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[:, : w // 2] = (255, 0, 0)  # left half red
    rgb[:, w // 2:] = (0, 0, 255)  # right half blue
    rgb[: h // 3, :, 1] = 255  # top third has green added
    image = image_from_bgra(bgra(rgb), w, h, max_side=1600)
    assert image.size == (1600, 400)
    px = np.asarray(image).astype(int)
    assert tuple(px[300, 100]) == (255, 0, 0)
    assert tuple(px[300, 1500]) == (0, 0, 255)
    assert tuple(px[50, 100]) == (255, 255, 0)
    # The band seams (every band is converted separately) leave no line behind.
    assert (np.abs(np.diff(px[150:390, 100], axis=0)) <= 1).all()


@pytest.mark.parametrize(("size", "max_side", "expected"), [
    ((12000, 3000), 1600, (1600, 400)),
    ((3000, 12000), 1600, (400, 1600)),
    ((1280, 800), 1600, (1280, 800)),
    ((3841, 2161), 1600, (1600, 900)),
    ((5000, 3), 1600, (1600, 1)),
])
def test_target_size(size: tuple[int, int], max_side: int, expected: tuple[int, int]) -> None:
    assert target_size(*size, max_side) == expected


def test_fit_converts_and_downscales_any_image() -> None:
    image = fit(Image.new("RGBA", (4000, 1000), (10, 20, 30, 128)), 1000)
    assert image.mode == "RGB" and image.size == (1000, 250)


def test_downscale_never_holds_a_second_full_size_image() -> None:
    """Peak memory while converting a 144 MB BGRA capture stays far below one more full-size RGB copy."""
    script = textwrap.dedent("""
        import resource
        from assistant.capture.image import image_from_bgra
        w, h = 12000, 3000
        raw = bytearray(b"\\x40\\x80\\xc0\\xff") * (w * h)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        image = image_from_bgra(raw, w, h, 1600)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        assert image.size == (1600, 400), image.size
        assert image.getpixel((0, 0)) == (0xc0, 0x80, 0x40), image.getpixel((0, 0))
        print((after - before) // 1024)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    grown_mb = int(out.stdout)
    # A full-size RGB copy would be 108 MB; the band approach needs one band (8 MB) plus the result.
    assert grown_mb < 40, f"conversion grew the process by {grown_mb} MB"


# -- blank detection --------------------------------------------------------------------------------


def solid(rgb: tuple[int, int, int], size: tuple[int, int] = (1280, 800)) -> Image.Image:
    return Image.new("RGB", size, rgb)


def test_black_white_and_single_colour_are_blank() -> None:
    assert blank_reason(solid((0, 0, 0))).startswith("The captured area is completely black")
    assert blank_reason(solid((2, 1, 3))).startswith("The captured area is completely black")
    assert blank_reason(solid((255, 255, 255))) == "The captured area is a single colour (white)."
    assert blank_reason(solid((12, 24, 110))) == "The captured area is a single colour (dark blue)."


def test_black_with_a_pointer_is_almost_entirely_black() -> None:
    image = solid((0, 0, 0))
    ImageDraw.Draw(image).polygon([(600, 400), (600, 424), (617, 417)], fill=(255, 255, 255))
    reason = blank_reason(image)
    assert reason is not None and reason.startswith("The captured area is almost entirely black")


def test_flat_colour_with_noise_is_almost_one_colour() -> None:
    rng = np.random.default_rng(3)
    arr = np.clip(rng.normal((0, 120, 128), 3, (800, 1280, 3)), 0, 255).astype(np.uint8)
    assert blank_reason(Image.fromarray(arr)) == "The captured area is almost entirely one colour (teal)."


def dark_photo() -> Image.Image:
    """A night scene: a dim sky gradient, a moon, dark hills and sensor noise; mean brightness about 25."""
    rng = np.random.default_rng(4)
    h, w = 800, 1280
    y = np.linspace(0, 1, h)[:, None, None]
    sky = 8 + 30 * (1 - y) * np.array([0.6, 0.7, 1.0])
    arr = np.broadcast_to(sky, (h, w, 3)).copy()
    yy, xx = np.mgrid[0:h, 0:w]
    arr[(xx - 900) ** 2 + (yy - 180) ** 2 < 40 ** 2] = (150, 150, 130)
    arr[yy > 560 + 60 * np.sin(xx / 150)] = (6, 9, 6)
    arr += rng.normal(0, 3, arr.shape)
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))


def text_document() -> Image.Image:
    """A mostly white page with paragraphs of small black text, like a word processor."""
    image = solid((255, 255, 255))
    draw = ImageDraw.Draw(image)
    font = ImageFont.load_default()
    line = "The quick brown fox jumps over the lazy dog, and the assistant reads it aloud. " * 2
    for i in range(0, 30):
        draw.text((60, 40 + i * 24), line[: 60 + (i * 7) % 90], fill=(0, 0, 0), font=font)
    return image


def test_dark_photo_is_not_blank() -> None:
    image = dark_photo()
    assert np.asarray(image).mean() < 40  # really dark
    assert blank_reason(image) is None


def test_text_document_is_not_blank() -> None:
    image = text_document()
    white = (np.asarray(image) == 255).all(axis=2).mean()
    assert white > 0.9  # really mostly white
    assert blank_reason(image) is None


def test_one_line_of_text_is_not_blank_but_one_word_is_almost_one_colour() -> None:
    line, word = solid((255, 255, 255)), solid((255, 255, 255))
    ImageDraw.Draw(line).text((100, 100), "The quick brown fox jumps over the lazy dog", fill=(0, 0, 0))
    ImageDraw.Draw(word).text((100, 100), "OK", fill=(0, 0, 0))
    assert blank_reason(line) is None
    assert blank_reason(word) == "The captured area is almost entirely one colour (white)."


def test_sparse_screen_is_not_blank() -> None:
    """A dialog on a plain desktop: a handful of widgets, still something to describe."""
    image = solid((40, 40, 40))
    draw = ImageDraw.Draw(image)
    draw.rectangle((500, 300, 780, 480), fill=(240, 240, 240), outline=(0, 0, 0))
    draw.text((520, 320), "Save changes?", fill=(0, 0, 0))
    assert blank_reason(image) is None


def test_colour_names() -> None:
    assert colour_name((0, 0, 0)) == "black"
    assert colour_name((250, 250, 250)) == "white"
    assert colour_name((200, 20, 20)) == "red"
    assert colour_name((128, 128, 128)) == "grey"


# -- errors before any capture ----------------------------------------------------------------------


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11/Wayland session checks are Linux-only")
def test_wayland_and_missing_display_are_capture_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_SESSION_TYPE", "wayland")
    monkeypatch.setenv("DISPLAY", ":0")
    with pytest.raises(CaptureError, match="not possible in a Wayland session; use `blip-assistant trigger"):
        Capturer().screen()
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.delenv("DISPLAY")
    problem = session_problem()
    assert problem is not None and "DISPLAY is not set" in problem
    with pytest.raises(CaptureError, match="DISPLAY is not set"):
        Capturer().window()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="X11 only")
def test_unreachable_display_is_a_capture_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_SESSION_TYPE", "x11")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setenv("DISPLAY", ":31999")
    with Capturer() as capturer, pytest.raises(CaptureError, match="could not connect to the display :31999"):
        capturer.screen()


def test_empty_region_is_refused() -> None:
    with pytest.raises(CaptureError, match="empty"):
        Capturer().region((0, 0, 0, 10))


def test_os_failures_become_sentences(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.capture.errors import explain

    monkeypatch.setattr(sys, "platform", "linux")
    denied = explain(PermissionError(13, "Permission denied"), "the active window")
    assert str(denied) == ("The system did not allow the assistant to capture the active window "
                           "(permission denied).")
    assert isinstance(denied.__cause__, PermissionError)
    monkeypatch.setattr(sys, "platform", "darwin")
    assert "Screen Recording" in str(explain(RuntimeError("CGWindowListCreateImage: permission denied")))
    assert str(explain(RuntimeError("boom"))) == "Capturing the screen failed: boom."
