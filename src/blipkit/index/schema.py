"""What an image index stores: the Arrow schemas of its tables and the name of its metadata file."""

from __future__ import annotations

import pyarrow as pa

IMAGES_TABLE = "images"
FAILURES_TABLE = "failures"
META_FILE = "blipkit_index.json"
FORMAT_VERSION = 1
KEY = "path"  # every write is an upsert keyed on the file's absolute path

# Columns that describe the file, as opposed to what the model made of it.
FILE_COLUMNS = ("path", "hash", "size", "mtime_ns")
# Columns read to decide whether a file changed since it was indexed.
STATE_COLUMNS = ("path", "hash", "size", "mtime_ns")
# Columns a search hit returns (the vector is fetched separately when needed).
HIT_COLUMNS = ("path", "caption", "caption_confidence", "width", "height", "size", "tags", "tag_scores")


def images_schema(dim: int) -> pa.Schema:
    """One row per indexed image file."""
    return pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),  # blake2b-256 of the file's bytes
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("width", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("caption", pa.string()),
        pa.field("caption_confidence", pa.float32()),
        pa.field("vector", pa.list_(pa.float32(), dim)),  # L2-normalised ITC image embedding
        pa.field("tags", pa.list_(pa.string())),
        pa.field("tag_scores", pa.list_(pa.float32())),
        pa.field("indexed_at", pa.timestamp("us", tz="UTC")),
    ])


def failures_schema() -> pa.Schema:
    """Files that could not be indexed, so that an unchanged bad file is not retried on every run."""
    return pa.schema([
        pa.field("path", pa.string(), nullable=False),
        pa.field("hash", pa.string(), nullable=False),
        pa.field("size", pa.int64(), nullable=False),
        pa.field("mtime_ns", pa.int64(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("error_code", pa.string()),
    ])
