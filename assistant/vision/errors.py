"""The engine's exceptions: one base class, one subclass per thing that can go wrong.

Each error carries a short machine-readable ``code`` so that the commands and the app can
report it without parsing messages.
"""

from __future__ import annotations


class VisionError(Exception):
    """Base class of every error the engine raises on purpose."""

    code = "vision_error"


class ModelNotFoundError(VisionError):
    """A checkpoint name or folder that cannot be found (or fetched)."""

    code = "model_not_found"


class UnsupportedModelError(VisionError):
    """A checkpoint that is not a BLIP model, or lacks the head a task needs."""

    code = "unsupported_model"


class ImageError(VisionError):
    """An image that cannot be used; subclasses say why."""

    code = "bad_image"


class ImageNotFoundError(ImageError):
    code = "image_not_found"


class ImageDecodeError(ImageError):
    """Corrupt, truncated, empty or not an image at all."""

    code = "image_decode_error"


class ImageTooLargeError(ImageError):
    """Too many pixels (a decompression bomb) or too many bytes."""

    code = "image_too_large"


class ImageFetchError(ImageError):
    """A URL: the assistant never fetches images from the network."""

    code = "image_fetch_error"


class TextError(VisionError):
    """Empty or oversized text."""

    code = "bad_text"


class DataError(VisionError):
    """A dataset file that cannot be read, or whose rows fail validation."""

    code = "bad_data"


class Interrupted(Exception):
    """The caller stopped wanting this answer while it was worked out (the user pressed Stop, or asked
    for another picture): not an error, nothing to report. Raised between decoding steps by
    :func:`assistant.vision.tasks.generation.interruptible`."""

    code = "interrupted"

