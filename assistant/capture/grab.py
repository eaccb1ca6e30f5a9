"""Screen capture with mss: the whole desktop, the monitor under the pointer, the active window, the area
around the pointer, or a rectangle. Every capture comes back as a ``Capture``: an RGB image no larger
than the model needs, where it came from, and, when it is black or one flat colour, why there is nothing
to describe.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from PIL import Image

from assistant.capture.blank import DEFAULT_THRESHOLDS, Thresholds, blank_reason
from assistant.capture.desktop import Desktop, WindowInfo, open_desktop
from assistant.capture.errors import CaptureError, check_session, explain
from assistant.capture.geometry import Rect, monitor_at, square_around
from assistant.capture.image import DEFAULT_MAX_SIDE, image_from_bgra

log = logging.getLogger(__name__)

DEFAULT_POINTER_AREA = 400  # pixels per side: a few icons or a paragraph around the pointer

SCREEN, WINDOW, POINTER_AREA, REGION = "screen", "window", "pointer area", "region"


@dataclass(frozen=True)
class Capture:
    image: Image.Image  # RGB, longer side <= the capturer's max_side
    rect: Rect  # what was grabbed, in physical pixels on the virtual screen
    kind: str  # "screen", "window", "pointer area" or "region"
    window_title: str | None = None
    app_name: str | None = None
    # A sentence saying why there is nothing to describe (black, one colour); the image must then not
    # go to the model. It is kept only so that a log or a sighted helper can look at what was captured.
    blank: str | None = None
    capture_ms: float = 0.0  # grab + conversion + blank check
    taken_at: float = 0.0  # time.time() of the grab

    @property
    def describable(self) -> bool:
        return self.blank is None


class Capturer:
    """Holds one mss instance and one desktop connection; safe to call from any one thread at a time.

    Opening mss costs about 45 ms on X11 (and quick reconnects after a grab sometimes fail), while a
    grab on an open instance takes a few ms, so the instance is kept. Call ``refresh()`` when monitors
    are added or removed (mss caches the layout); a pointer outside every known monitor also refreshes.
    """

    def __init__(self, *, max_side: int = DEFAULT_MAX_SIDE, pointer_area: int = DEFAULT_POINTER_AREA,
                 check_blank: bool = True, thresholds: Thresholds = DEFAULT_THRESHOLDS,
                 desktop: Desktop | None = None) -> None:
        if max_side < 32:
            raise ValueError(f"max_side must be at least 32 pixels, not {max_side}")
        self.max_side = max_side
        self.pointer_area_size = pointer_area
        self.check_blank = check_blank
        self.thresholds = thresholds
        self._desktop = desktop
        self._sct: Any = None
        self._lock = threading.RLock()

    # -- lifecycle --------------------------------------------------------------------------------

    def __enter__(self) -> Capturer:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._close_mss()
            if self._desktop is not None:
                self._desktop.close()
                self._desktop = None

    def refresh(self) -> None:
        """Forget the cached monitor layout (after a monitor was plugged in or out)."""
        with self._lock:
            self._close_mss()

    def _close_mss(self) -> None:
        if self._sct is not None:
            try:
                self._sct.close()
            except Exception:  # closing a connection to a vanished display: nothing left to free
                log.debug("closing mss failed", exc_info=True)
            self._sct = None

    def _mss(self) -> Any:
        if self._sct is None:
            check_session()
            import mss

            last: Exception | None = None
            # A connection opened right after another one closed is occasionally refused on X11
            # (seen on Xvfb about once in four quick reconnects); a short wait clears it.
            for attempt in range(3):
                try:
                    self._sct = mss.MSS()
                    break
                except mss.ScreenShotError as exc:
                    last = exc
                    time.sleep(0.05 * (attempt + 1))
                except OSError as exc:  # permission denied, a display that went away: no use retrying
                    raise explain(exc) from exc
            else:
                assert last is not None
                raise explain(last)
        return self._sct

    def _desk(self) -> Desktop:
        if self._desktop is None:
            check_session()
            self._desktop = open_desktop()
        return self._desktop

    # -- geometry ---------------------------------------------------------------------------------

    def virtual_screen(self) -> Rect:
        """The bounding box of all monitors."""
        with self._lock:
            return Rect.from_mss(self._monitors()[0])

    def monitors(self) -> list[Rect]:
        with self._lock:
            monitors = self._monitors()
            return [Rect.from_mss(m) for m in monitors[1:]] or [Rect.from_mss(monitors[0])]

    def _monitors(self) -> list[dict[str, Any]]:
        try:
            return list(self._mss().monitors)
        except CaptureError:
            raise
        except Exception as exc:
            self._close_mss()
            raise explain(exc) from exc

    def pointer(self) -> tuple[int, int]:
        with self._lock:
            return self._desk().pointer()

    def monitor_under_pointer(self) -> Rect:
        with self._lock:
            try:
                x, y = self._desk().pointer()
            except CaptureError as exc:
                # Without a pointer position (macOS without Quartz) the primary monitor is the best guess.
                log.info("pointer position unknown (%s); using the primary monitor", exc)
                return self._primary()
            return self._monitor_at(x, y)

    def _monitor_at(self, x: int, y: int) -> Rect:
        monitors = self.monitors()
        if not any(m.contains(x, y) for m in monitors):
            self.refresh()  # the layout may have changed since mss read it
            monitors = self.monitors()
        return monitor_at(x, y, monitors)

    def _primary(self) -> Rect:
        monitors = self._monitors()
        primary = next((m for m in monitors[1:] if m.get("is_primary")), monitors[1] if len(monitors) > 1
                       else monitors[0])
        return Rect.from_mss(primary)

    def pointer_area_rect(self, size: int | None = None, *, scale: float = 1.0) -> Rect:
        """The square around the pointer; ``size`` in logical pixels when ``scale`` is not 1."""
        size = self.pointer_area_size if size is None else size
        physical = max(1, round(size * scale))
        with self._lock:
            x, y = self._desk().pointer()
            return square_around(x, y, physical, self._monitor_at(x, y))

    # -- captures ---------------------------------------------------------------------------------

    def screen(self) -> Capture:
        """The monitor under the pointer: what "describe screen" means."""
        with self._lock:
            return self._grab(self.monitor_under_pointer(), SCREEN)

    def all_screens(self) -> Capture:
        """Every monitor together, as one image."""
        with self._lock:
            return self._grab(self.virtual_screen(), SCREEN)

    def window(self) -> Capture:
        """The active window, with its title bar; title and application name when the OS tells them."""
        with self._lock:
            info: WindowInfo = self._desk().active_window()
            return self._grab(info.rect, WINDOW, info.title, info.app)

    def active_window_info(self) -> WindowInfo:
        with self._lock:
            return self._desk().active_window()

    def pointer_area(self, size: int | None = None, *, scale: float = 1.0) -> Capture:
        with self._lock:
            return self._grab(self.pointer_area_rect(size, scale=scale), POINTER_AREA)

    def region(self, rect: Rect | tuple[int, int, int, int], *, scale: float = 1.0) -> Capture:
        """A rectangle (left, top, width, height); in logical pixels when ``scale`` is not 1 (a HiDPI
        display at 200 % has scale 2.0: logical 100 x 100 is 200 x 200 physical pixels)."""
        rect = Rect.coerce(rect)
        if rect.empty:
            raise CaptureError("The region to capture is empty; pick an area at least one pixel wide and "
                               "high.")
        with self._lock:
            return self._grab(rect.scaled(scale) if scale != 1.0 else rect, REGION)

    def _grab(self, rect: Rect, kind: str, title: str | None = None, app: str | None = None) -> Capture:
        started = time.perf_counter()
        taken_at = time.time()
        bounds = self.virtual_screen()
        clipped = rect.intersect(bounds)
        if clipped.empty:
            raise CaptureError(f"The {kind} ({rect}) lies outside the screen ({bounds}), so there is nothing "
                               "to capture.")
        sct = self._mss()
        try:
            shot = sct.grab(clipped.as_mss())
        except Exception as exc:
            self._close_mss()
            raise explain(exc, f"the {kind}") from exc
        width, height = shot.size
        raw = shot.raw
        del shot
        image = image_from_bgra(raw, width, height, self.max_side)
        del raw  # the only full-size copy: gone before the blank check and the model
        blank = blank_reason(image, self.thresholds) if self.check_blank else None
        elapsed = (time.perf_counter() - started) * 1000
        log.debug("captured %s %s in %.1f ms -> %sx%s", kind, clipped, elapsed, *image.size)
        return Capture(image, clipped, kind, title, app, blank, elapsed, taken_at)
