"""What an image index stores: the Arrow schemas of its tables and the name of its metadata file."""

from __future__ import annotations

import pyarrow as pa

IMAGES_TABLE = "images"
FAILURES_TABLE = "failures"
META_FILE = "blipkit_index.json"
FORMAT_VERSION = 1
KEY = "path"  # every write is an upsert keyed on the file's absolute path

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
        pa.field(STAMP_COLUMN, pa.timestamp("us", tz="UTC")),
    ])


STAMP_COLUMN = "indexed_at"  # when the row was written
# What an indexer makes of one image: every column of the images table but the stamp ...
WRITTEN_COLUMNS = tuple(f.name for f in images_schema(1) if f.name != STAMP_COLUMN)
# ... of which these come from the model and the decoded image, the others from the file.
CONTENT_COLUMNS = tuple(c for c in WRITTEN_COLUMNS if c not in STATE_COLUMNS)


def written_fields() -> tuple[pa.Field, ...]:
    """:data:`WRITTEN_COLUMNS` as fields for a batch job's Parquet parts: nullable (a part holds the failed
    images too) and with a vector of any length (a part is written before the model's dimension is known)."""
    fields = []
    for f in images_schema(1):
        if f.name == STAMP_COLUMN:
            continue
        kind = pa.list_(pa.float32()) if f.name == "vector" else f.type
        fields.append(pa.field(f.name, kind))
    return tuple(fields)


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
