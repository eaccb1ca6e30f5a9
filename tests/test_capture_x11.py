"""Capture on a real X server (Xvfb + openbox): pixel-exact grabs, the monitor and the square under the
pointer, the active window's frame and title, and a black screen caught before any model."""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import xserver
from assistant.capture import Capture, Capturer, Rect

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Xvfb")

IMAGE_SIZE = (240, 160)


@pytest.fixture(scope="module")
def x() -> Iterator[xserver.XServer]:
    with xserver.xvfb(1280, 800, wm=True) as server, server.active():
        yield server


@pytest.fixture(scope="module")
def pattern(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    """Random pixels: any offset, scaling or channel swap in the capture shows up."""
    rgb = np.random.default_rng(7).integers(0, 256, (IMAGE_SIZE[1], IMAGE_SIZE[0], 3), dtype=np.uint8)
    path = tmp_path_factory.mktemp("capture") / "pattern.png"
    Image.fromarray(rgb).save(path)
    return path, rgb


@pytest.fixture()
def capturer(x: xserver.XServer) -> Iterator[Capturer]:
    with Capturer() as c:
        yield c


def client_origin(x: xserver.XServer, window: int) -> tuple[int, int]:
    out = x.run("xwininfo", "-id", str(window))
    values = dict(line.strip().split(":", 1) for line in out.splitlines()
                  if line.strip().startswith("Absolute"))
    return int(values["Absolute upper-left X"]), int(values["Absolute upper-left Y"])


def until(grab: Callable[[], Capture], ok: Callable[[Capture], bool], timeout: float = 5.0) -> Capture:
    """Capture until ``ok``: a window is placed and painted a little after it is mapped."""
    deadline = time.monotonic() + timeout
    while True:
        cap = grab()
        if ok(cap) or time.monotonic() > deadline:
            return cap
        time.sleep(0.05)


def pixels(cap: Capture) -> np.ndarray:
    return np.asarray(cap.image)


def test_region_capture_is_pixel_exact(x: xserver.XServer, capturer: Capturer,
                                       pattern: tuple[Path, np.ndarray]) -> None:
    path, rgb = pattern
    proc, window = x.show_image(path, "Pattern", 300, 200)
    try:
        left, top = client_origin(x, window)
        rect = Rect(left, top, *IMAGE_SIZE)
        cap = until(lambda: capturer.region(rect), lambda c: np.array_equal(pixels(c), rgb))
        assert cap.kind == "region" and cap.rect == rect and cap.blank is None
        assert np.abs(pixels(cap).astype(int) - rgb).mean() == 0
        # An area given in logical pixels of a 200 % display is grabbed at twice its size.
        logical = capturer.region((left // 2, top // 2, 60, 40), scale=2.0)
        assert logical.rect == Rect(left // 2 * 2, top // 2 * 2, 120, 80)
        assert np.array_equal(pixels(logical), pixels(capturer.region(logical.rect)))
        dx, dy = left - logical.rect.left, top - logical.rect.top
        assert np.array_equal(pixels(logical)[dy:, dx:], rgb[: 80 - dy, : 120 - dx])
        # Off the left edge: clipped to the screen, not an error.
        assert capturer.region((-50, 0, 100, 100)).rect == Rect(0, 0, 50, 100)
    finally:
        proc.terminate()


def test_screen_capture_is_the_monitor_and_fast(x: xserver.XServer, capturer: Capturer) -> None:
    x.xdotool("mousemove", "100", "100")
    cap = capturer.screen()
    assert cap.kind == "screen" and cap.rect == Rect(0, 0, 1280, 800) and cap.image.size == (1280, 800)
    times = [capturer.screen().capture_ms for _ in range(10)]
    grab_only = []
    for _ in range(10):
        started = time.perf_counter()
        capturer._mss().grab(Rect(0, 0, 1280, 800).as_mss())
        grab_only.append((time.perf_counter() - started) * 1000)
    print(f"\n1280x800 capture: grab {statistics.median(grab_only):.1f} ms, "
          f"grab + RGB + blank check {statistics.median(times):.1f} ms (median of 10)")
    assert statistics.median(times) < 500


def test_monitor_and_pointer_area_follow_the_pointer(x: xserver.XServer) -> None:
    names = ["BLIP-LEFT", "BLIP-RIGHT"]
    xserver.set_monitors(x, [(names[0], 0, 0, 640, 800), (names[1], 640, 0, 640, 800)])
    try:
        with Capturer(pointer_area=400) as capturer:
            assert Rect(640, 0, 640, 800) in capturer.monitors()
            x.xdotool("mousemove", "900", "300")
            assert capturer.pointer() == (900, 300)
            assert capturer.monitor_under_pointer() == Rect(640, 0, 640, 800)
            assert capturer.screen().rect == Rect(640, 0, 640, 800)
            assert capturer.pointer_area_rect() == Rect(700, 100, 400, 400)
            x.xdotool("mousemove", "100", "700")
            assert capturer.monitor_under_pointer() == Rect(0, 0, 640, 800)
            # Near the right edge of the left monitor the square moves left instead of spilling over.
            x.xdotool("mousemove", "630", "400")
            assert capturer.pointer_area_rect() == Rect(240, 200, 400, 400)
            cap = capturer.pointer_area()
            assert cap.kind == "pointer area" and cap.rect == Rect(240, 200, 400, 400)
            assert cap.image.size == (400, 400)
            # 150 logical pixels at 200 % are 300 physical ones.
            assert capturer.pointer_area_rect(150, scale=2.0) == Rect(340, 250, 300, 300)
            assert capturer.all_screens().rect == Rect(0, 0, 1280, 800)
    finally:
        xserver.clear_monitors(x, names)


def test_pointer_area_is_clipped_at_the_screen_corner(x: xserver.XServer, capturer: Capturer) -> None:
    x.xdotool("mousemove", "1279", "799")
    assert capturer.pointer_area_rect(300) == Rect(980, 500, 300, 300)
    x.xdotool("mousemove", "0", "0")
    assert capturer.pointer_area_rect(300) == Rect(0, 0, 300, 300)


def test_active_window_rect_title_and_app(x: xserver.XServer, capturer: Capturer,
                                          pattern: tuple[Path, np.ndarray]) -> None:
    path, rgb = pattern
    title = "Invoice – März ✓"
    proc, window = x.show_image(path, title, 400, 300)
    try:
        x.xdotool("windowactivate", "--sync", str(window))
        left, top = client_origin(x, window)
        frame = x.run("xprop", "-id", str(window), "_NET_FRAME_EXTENTS").split("=")[1]
        fl, fr, ft, fb = (int(v) for v in frame.split(","))
        assert ft > 0  # openbox draws a title bar: the frame really is added
        expected = Rect(left - fl, top - ft, IMAGE_SIZE[0] + fl + fr, IMAGE_SIZE[1] + ft + fb)

        info = capturer.active_window_info()
        assert info.handle == window
        assert info.rect == expected
        assert info.title == title
        assert info.app == "Blipviewer"

        def client_area(c: Capture) -> np.ndarray:
            return pixels(c)[ft:ft + IMAGE_SIZE[1], fl:fl + IMAGE_SIZE[0]]

        cap = until(capturer.window, lambda c: np.array_equal(client_area(c), rgb))
        assert cap.kind == "window" and cap.rect == expected
        assert cap.window_title == title and cap.app_name == "Blipviewer"
        assert np.array_equal(client_area(cap), rgb)
    finally:
        proc.terminate()


def test_black_screen_is_reported_not_described(x: xserver.XServer, capturer: Capturer) -> None:
    # Xvfb runs with a black root window (-br) and nothing is shown at the bottom right.
    cap = capturer.region((1000, 600, 200, 150))
    assert cap.blank is not None and cap.blank.startswith("The captured area is completely black")
    assert not cap.describable
    assert Capturer(check_blank=False).region((1000, 600, 200, 150)).blank is None


def test_huge_region_is_downscaled(x: xserver.XServer) -> None:
    with Capturer(max_side=320) as capturer:
        cap = capturer.screen()
    assert cap.rect == Rect(0, 0, 1280, 800) and cap.image.size == (320, 200)


def test_closed_or_missing_active_window_is_a_clear_error(x: xserver.XServer, capturer: Capturer) -> None:
    from assistant.capture import CaptureError

    # The window manager still names a window that has just been destroyed.
    x.run("xprop", "-root", "-f", "_NET_ACTIVE_WINDOW", "32c", "-set", "_NET_ACTIVE_WINDOW", "0x7fffff0")
    with pytest.raises(CaptureError, match="The active window closed before it could be captured"):
        capturer.window()
    # The desktop itself has the focus: the window manager says 0.
    x.run("xprop", "-root", "-f", "_NET_ACTIVE_WINDOW", "32c", "-set", "_NET_ACTIVE_WINDOW", "0x0")
    with pytest.raises(CaptureError, match="No window has the keyboard focus"):
        capturer.window()
