"""blipkit's exceptions: one base class, one subclass per thing that can go wrong.

Each error carries a short machine-readable ``code`` so that the CLI, the server and the jobs can
report it without parsing messages.
"""

from __future__ import annotations


class BlipkitError(Exception):
    """Base class of every error blipkit raises on purpose."""

    code = "blipkit_error"


class ModelNotFoundError(BlipkitError):
    """A checkpoint name or folder that cannot be found (or fetched)."""

    code = "model_not_found"


class UnsupportedModelError(BlipkitError):
    """A checkpoint that is not a BLIP model, or lacks the head a task needs."""

    code = "unsupported_model"


class ImageError(BlipkitError):
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
    """A URL that could not be fetched: timeout, HTTP error, too large, or fetching disabled."""

    code = "image_fetch_error"


class TextError(BlipkitError):
    """Empty or oversized text."""

    code = "bad_text"


class DataError(BlipkitError):
    """A dataset file that cannot be read, or whose rows fail validation."""

    code = "bad_data"


class SearchIndexError(BlipkitError):
    """An image index (``blipkit index``) that cannot be opened or used as asked."""

    code = "index_error"


class IndexNotFoundError(SearchIndexError):
    code = "index_not_found"


class IndexModelMismatchError(SearchIndexError):
    """The index's embeddings were made by another model or preprocessing: mixing them is meaningless."""

    code = "index_model_mismatch"


class PolicyError(BlipkitError):
    """A moderation policy or tag vocabulary that cannot be read or is invalid."""

    code = "bad_policy"


class JobError(BlipkitError):
    """A batch job that cannot start or finish: an output that holds another job, a missing engine."""

    code = "job_error"
