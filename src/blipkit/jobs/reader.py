"""The job's reader: a shard in, its samples out, one per image, in a fixed order.

A sample that cannot be read (a missing object, a member too large) still comes out, carrying the
error, so that every input gets exactly one output row and one bad image never stops a shard.
"""

from __future__ import annotations

import posixpath
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from blipkit import defaults
from blipkit.errors import BlipkitError, DataError, ImageNotFoundError, ImageTooLargeError
from blipkit.jobs.shards import Item, Shard, table_columns
from blipkit.jobs.spec import JobSpec
from blipkit.jobs.storage import display_name, is_uri, locate

TEXT_EXTENSIONS = ("txt", "caption", "text")


@dataclass
class Sample:
    """One image for the model op: ``payload`` is what ``load_image`` takes (a path, URL or bytes)."""

    key: str
    image: str
    payload: Any = None
    text: str | list[str] | None = None
    error: BlipkitError | None = None


def read_samples(spec: JobSpec, shard: Shard) -> Iterator[Sample]:
    """The samples of ``shard``, in input order."""
    if shard.kind == "items":
        return (_item_sample(item) for item in shard.items)
    if shard.kind == "table":
        return _table_samples(spec, shard)
    if shard.kind == "tar":
        return tar_samples(shard.file)
    raise DataError(f"unknown shard kind {shard.kind!r}")


def _item_sample(item: Item) -> Sample:
    sample = Sample(item.key, display_name(item.source), item.source, item.text)
    if is_uri(item.source):
        # load_image reads local paths and fetches http(s) itself; object-store objects are read here.
        try:
            loc = locate(item.source)
            data = loc.read_bytes(defaults.MAX_IMAGE_BYTES + 1)
        except (OSError, BlipkitError) as exc:
            sample.payload, sample.error = None, ImageNotFoundError(f"{sample.image}: cannot read: {exc}")
            return sample
        if len(data) > defaults.MAX_IMAGE_BYTES:
            sample.payload = None
            sample.error = ImageTooLargeError(f"{sample.image}: more than {defaults.MAX_IMAGE_BYTES} bytes")
        else:
            sample.payload = data
    return sample


def _table_samples(spec: JobSpec, shard: Shard) -> Iterator[Sample]:
    """Rows ``start:stop`` of a Parquet file, reading only the row groups that hold them."""
    import pyarrow.parquet as pq

    loc = locate(shard.file)
    with loc.fs.open_input_file(loc.path) as f:
        pf = pq.ParquetFile(f)
        image_col, text_col, key_col = table_columns(spec, pf.schema_arrow.names, display_name(shard.file))
        columns = [c for c in (image_col, text_col, key_col) if c]
        groups, first_row, row = [], None, 0
        for g in range(pf.metadata.num_row_groups):
            n = pf.metadata.row_group(g).num_rows
            if row + n > shard.start and row < shard.stop:
                groups.append(g)
                first_row = row if first_row is None else first_row
            row += n
        table = pf.read_row_groups(groups, columns=columns) if groups else None
    if table is None:
        return
    offset = shard.start - (first_row or 0)
    table = table.slice(offset, shard.stop - shard.start)
    values = table.column(image_col).to_pylist()
    texts = table.column(text_col).to_pylist() if text_col else [None] * len(values)
    keys = table.column(key_col).to_pylist() if key_col else [None] * len(values)
    for n, (value, text, key) in enumerate(zip(values, texts, keys, strict=True)):
        row_id = f"{display_name(shard.file)}#{shard.start + n}"
        if isinstance(value, dict):  # the Hugging Face Image feature: {"bytes": ..., "path": ...}
            value = value.get("bytes") or value.get("path")
        if isinstance(value, bytes | bytearray):
            label = row_id
            yield Sample(str(key) if key is not None else label, label, bytes(value), _text(text))
        elif isinstance(value, str) and value:
            source = loc.relative(value)
            item = Item(source, str(key) if key is not None else display_name(value), _text(text))
            yield _item_sample(item)
        else:
            yield Sample(str(key) if key is not None else row_id, row_id, None, _text(text),
                         ImageNotFoundError(f"{row_id}: no image in column {image_col!r}"))


def _text(value: Any) -> str | list[str] | None:
    """A text cell as the op gets it: None, one string, or a list of strings (several captions)."""
    if value is None:
        return None
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return str(value)


def webdataset_key(member: str) -> tuple[str, str]:
    """(key, extension) of a tar member as WebDataset groups them: ``dir/0001.seg.jpg`` -> (``dir/0001``,
    ``seg.jpg``). Files of one sample share the key and follow each other in the tar."""
    folder, base = posixpath.split(member)
    stem, dot, ext = base.partition(".")
    return (posixpath.join(folder, stem) if folder else stem), (ext.lower() if dot else "")


def tar_samples(name: str) -> Iterator[Sample]:
    """The samples of a WebDataset tar: one per key that has an image, streamed (the tar is read once,
    in order, never seeked, so it may live on an object store)."""
    image_exts = {e.lstrip(".") for e in defaults.IMAGE_EXTENSIONS}
    loc = locate(name)
    try:
        stream = loc.fs.open_input_stream(loc.path)
    except OSError as exc:
        raise DataError(f"cannot open tar shard {name}: {exc}") from exc
    with stream, tarfile.open(fileobj=stream, mode="r|*") as tar:
        current: str | None = None
        group: dict[str, Any] = {}
        for member in tar:
            if not member.isfile() or posixpath.basename(member.name).startswith("."):
                continue
            key, ext = webdataset_key(member.name)
            if key != current:
                if current is not None:
                    sample = _tar_sample(name, current, group)
                    if sample is not None:
                        yield sample
                current, group = key, {}
            last = ext.rsplit(".", 1)[-1]
            if last in image_exts and "image" not in group:
                if member.size > defaults.MAX_IMAGE_BYTES:
                    group["image"] = (member.name, ImageTooLargeError(
                        f"{name}#{member.name}: {member.size} bytes is more than {defaults.MAX_IMAGE_BYTES}"))
                else:
                    data = tar.extractfile(member)
                    group["image"] = (member.name, data.read() if data else b"")
            elif last in TEXT_EXTENSIONS and "text" not in group:
                data = tar.extractfile(member)
                group["text"] = (data.read() if data else b"").decode("utf-8", errors="replace").strip()
        if current is not None:
            sample = _tar_sample(name, current, group)
            if sample is not None:
                yield sample


def _tar_sample(tar_name: str, key: str, group: dict[str, Any]) -> Sample | None:
    if "image" not in group:
        return None  # a key with no image (metadata only) is not an input
    member, payload = group["image"]
    label = f"{display_name(tar_name)}#{member}"
    if isinstance(payload, BlipkitError):
        return Sample(key, label, None, group.get("text"), payload)
    return Sample(key, label, payload, group.get("text"))
