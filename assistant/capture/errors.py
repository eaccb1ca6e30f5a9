"""Why a capture cannot happen, in words the app can speak.

The checks run before mss is touched: on Wayland the X server only sees XWayland windows, so mss would
hand back a black or partial picture that the describer would then describe with confidence.
"""

from __future__ import annotations

import os
import sys

TRIGGER_HINT = (
    "use `blip-assistant trigger open-image` with an image file, or log in to an X11 session"
)


class CaptureError(RuntimeError):
    """A capture that cannot be done; ``str()`` is a complete sentence for the user."""


def wayland_session() -> bool:
    session = os.environ.get("XDG_SESSION_TYPE", "").lower()
    return session == "wayland" or bool(os.environ.get("WAYLAND_DISPLAY"))


def session_problem() -> str | None:
    """A sentence saying why this session cannot be captured, or None when it can be tried."""
    if not sys.platform.startswith("linux") and "bsd" not in sys.platform:
        return None
    if wayland_session():
        return f"Screen capture is not possible in a Wayland session; {TRIGGER_HINT}."
    if not os.environ.get("DISPLAY"):
        return (
            "Screen capture needs a graphical session, and no display was found (DISPLAY is not set); "
            f"{TRIGGER_HINT}."
        )
    return None


def check_session() -> None:
    problem = session_problem()
    if problem:
        raise CaptureError(problem)


def explain(exc: BaseException, what: str = "the screen") -> CaptureError:
    """A CaptureError for a failure inside mss or the OS, with the cause kept for the log."""
    text = str(exc)
    lowered = text.lower()
    if isinstance(exc, PermissionError) or "permission" in lowered or "access is denied" in lowered:
        if sys.platform == "darwin":
            message = (
                f"macOS did not allow the assistant to capture {what}. Allow it under System Settings, "
                "Privacy & Security, Screen Recording, then restart the assistant."
            )
        else:
            message = f"The system did not allow the assistant to capture {what} (permission denied)."
    elif "cannot connect to display" in lowered or "can't open display" in lowered:
        display = os.environ.get("DISPLAY", "")
        message = (
            f"The assistant could not connect to the display {display}; the graphical session may have ended."
        )
    else:
        message = f"Capturing {what} failed: {text or type(exc).__name__}."
    error = CaptureError(message)
    error.__cause__ = exc
    return error
