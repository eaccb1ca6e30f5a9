"""Screen capture for the assistant: what to grab, how big to hand it to the model, and whether there is
anything on it to describe. Qt-free and model-free.

    with Capturer(max_side=1600) as capturer:
        cap = capturer.screen()           # the monitor under the pointer
        if cap.blank:
            speak(cap.blank)              # "The captured area is completely black; ..."
        else:
            describe(cap.image)
"""

from assistant.capture.blank import Thresholds, blank_reason, colour_name
from assistant.capture.desktop import WindowInfo, open_desktop
from assistant.capture.errors import CaptureError, session_problem
from assistant.capture.geometry import Rect, monitor_at, square_around
from assistant.capture.grab import POINTER_AREA, REGION, SCREEN, WINDOW, Capture, Capturer
from assistant.capture.image import DEFAULT_MAX_SIDE, fit, image_from_bgra, target_size

__all__ = [
    "DEFAULT_MAX_SIDE",
    "POINTER_AREA",
    "REGION",
    "SCREEN",
    "WINDOW",
    "Capture",
    "CaptureError",
    "Capturer",
    "Rect",
    "Thresholds",
    "WindowInfo",
    "blank_reason",
    "colour_name",
    "fit",
    "image_from_bgra",
    "monitor_at",
    "open_desktop",
    "session_problem",
    "square_around",
    "target_size",
]
