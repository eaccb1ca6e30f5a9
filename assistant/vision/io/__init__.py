"""Image input: load any image source as RGB, and expand folders, globs and list files."""

from assistant.vision.io.images import (
    THUMBNAIL_SIDE,
    ImageInput,
    describe_source,
    is_url,
    load_image,
    thumbnail,
)
from assistant.vision.io.sources import expand_sources

__all__ = ["THUMBNAIL_SIDE", "ImageInput", "describe_source", "expand_sources", "is_url", "load_image",
           "thumbnail"]
