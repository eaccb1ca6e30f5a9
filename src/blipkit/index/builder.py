"""``blipkit index add``: put image files into an index, incrementally and resumably.

A file whose path, size and mtime are already in the index is skipped without being read. Otherwise it
is read and hashed: if an indexed row has the same content (a touched, copied or moved file), that row's
caption, embedding and tags are reused; only new content goes through the model, in ONE vision pass that
feeds both the caption and the embedding. Results are committed every ``commit_every`` files by an
upsert keyed on path, so a run killed at any moment loses at most one uncommitted chunk, and the next
run redoes only that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from blipkit import defaults
from blipkit.errors import BlipkitError, ImageNotFoundError, ImageTooLargeError
from blipkit.index.scan import FileInfo, content_hash, find_images, read_bytes
from blipkit.index.schema import CONTENT_COLUMNS, STAMP_COLUMN
from blipkit.index.store import FileState, ImageIndex
from blipkit.tasks import embed as embed_task
from blipkit.tasks import tags as tags_task
from blipkit.tasks.generation import GenerationSettings

if TYPE_CHECKING:
    from blipkit.blip import Blip


@dataclass
class AddReport:
    """What one ``index add`` run did."""

    found: int = 0
    unchanged: int = 0
    encoded: int = 0  # went through the model
    reused: int = 0  # content already in the index under another path, or the same file touched
    failed: int = 0
    not_found: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)
    maintenance: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "found": self.found, "unchanged": self.unchanged, "encoded": self.encoded, "reused": self.reused,
            "failed": self.failed, "not_found": self.not_found,
            "errors": [{"path": p, "error": e} for p, e in self.errors], "maintenance": self.maintenance,
        }


@dataclass
class _Pending:
    info: FileInfo
    data: bytes | None = None
    hash: str = ""
    error: BlipkitError | None = None


def open_for(blip: Blip, db: str, *, create: bool = True) -> ImageIndex:
    """Open (or create) the index at ``db`` for ``blip``'s embeddings, refusing another model's index."""
    ckpt = blip.checkpoint
    return ImageIndex.open(db, fingerprint=ckpt.fingerprint, dim=blip.embedding_dim, create=create)


def add_images(
    index: ImageIndex,
    blip: Blip,
    items: Iterable[str],
    *,
    settings: GenerationSettings | None = None,
    batch_size: int = defaults.BATCH_SIZE,
    commit_every: int = defaults.INDEX_COMMIT_EVERY,
    n_tags: int = defaults.INDEX_TAGS,
    progress: Callable[[int], Any] | None = None,
    on_total: Callable[[int], Any] | None = None,
) -> AddReport:
    """Index the image files under ``items`` (folders, globs, files); see the module docstring."""
    settings = settings or GenerationSettings()
    report = AddReport()
    files, report.not_found = find_images(items)
    report.found = len(files)
    known = index.file_states()
    pending = [f for f in files if not _unchanged(known.get(f.path), f)]
    report.unchanged = len(files) - len(pending)
    if on_total:
        on_total(len(pending))
    vocab = _Vocabulary(blip, n_tags)
    for start in range(0, len(pending), max(1, commit_every)):
        chunk = [_Pending(info) for info in pending[start : start + commit_every]]
        _commit_chunk(index, blip, chunk, known, vocab, settings, batch_size, report)
        if progress:
            progress(len(chunk))
    # A crash between a chunk's image upsert and its failure cleanup can leave a stale failure row.
    stale = set(index.paths()).intersection(p for p, s in index.file_states().items() if s.failed)
    index.delete(stale, failures=True)
    report.maintenance = index.maintain()
    return report


def _unchanged(state: FileState | None, info: FileInfo) -> bool:
    return state is not None and state.size == info.size and state.mtime_ns == info.mtime_ns


class _Vocabulary:
    """The built-in tag vocabulary's prompt vectors, computed once per run and only if needed."""

    def __init__(self, blip: Blip, n_tags: int) -> None:
        self.blip, self.n_tags = blip, n_tags
        self._labels: list[str] | None = None
        self._vectors: np.ndarray | None = None

    def tags(self, image_vecs: np.ndarray) -> list[list[tuple[str, float]]]:
        if self.n_tags <= 0 or len(image_vecs) == 0:
            return [[] for _ in range(len(image_vecs))]
        ckpt = self.blip.checkpoint
        if self._vectors is None:
            self._labels = tags_task.read_labels(None)
            self._vectors = tags_task.text_matrix(ckpt, tags_task.prompts(self._labels))
        assert self._labels is not None
        scores = tags_task.softmax_scores(image_vecs, self._vectors, tags_task.temperature(ckpt))
        return [tags_task.pick(row, self._labels, self.n_tags, None) for row in scores]


def _commit_chunk(
    index: ImageIndex, blip: Blip, chunk: list[_Pending], known: dict[str, FileState], vocab: _Vocabulary,
    settings: GenerationSettings, batch_size: int, report: AddReport,
) -> None:
    for item in chunk:
        try:
            item.data = read_bytes(item.info)
            item.hash = content_hash(item.data)
        except OSError as exc:  # vanished since the listing, unreadable, or over the size limit
            cls = ImageTooLargeError if item.info.size > defaults.MAX_IMAGE_BYTES else ImageNotFoundError
            item.error = cls(f"{item.info.path}: cannot read: {exc}")
    readable = [item for item in chunk if item.error is None]
    same_content = {row["hash"]: row for row in index.rows_where("hash", [i.hash for i in readable])}
    now = dt.datetime.now(dt.UTC)
    rows: list[dict[str, Any]] = []
    to_encode: dict[str, list[_Pending]] = {}
    for item in readable:
        if item.hash in same_content:
            rows.append(_row(item, same_content[item.hash], now))
            report.reused += 1
        else:
            to_encode.setdefault(item.hash, []).append(item)  # identical new files are encoded once
    if to_encode:
        groups = list(to_encode.values())
        made = _encode(blip, [g[0].data for g in groups], settings, batch_size, vocab)  # type: ignore[misc]
        for group, result in zip(groups, made, strict=True):
            for item in group:
                if isinstance(result, BlipkitError):
                    # the image was decoded from its bytes: name the file in the message instead
                    item.error = type(result)(str(result).replace("<bytes>", item.info.path, 1))
                else:
                    rows.append(_row(item, result, now))
                    report.encoded += 1
    failed = [item for item in chunk if item.error is not None]
    report.failed += len(failed)
    report.errors.extend((item.info.path, str(item.error)) for item in failed)
    # Three commits, each atomic and idempotent: a crash between them is repaired by the next run.
    index.upsert(rows)
    index.record_failures([{
        "path": item.info.path, "hash": item.hash, "size": item.info.size, "mtime_ns": item.info.mtime_ns,
        "error": str(item.error), "error_code": item.error.code,  # type: ignore[union-attr]
    } for item in failed])
    index.delete([i.info.path for i in failed if i.info.path in known and not known[i.info.path].failed])
    index.delete([row["path"] for row in rows if known.get(row["path"], FileState("", 0, 0)).failed],
                 failures=True)


def _row(item: _Pending, content: dict[str, Any], now: dt.datetime) -> dict[str, Any]:
    return {
        **{k: content[k] for k in CONTENT_COLUMNS},
        "path": item.info.path, "hash": item.hash, "size": item.info.size, "mtime_ns": item.info.mtime_ns,
        STAMP_COLUMN: now,
    }


def _encode(blip: Blip, images: Sequence[bytes], settings: GenerationSettings, batch_size: int,
            vocab: _Vocabulary) -> list[dict[str, Any] | BlipkitError]:
    """Caption, embedding, size and tags of each image, from one vision pass per image."""
    ckpt = blip.checkpoint
    features = blip.encode_images(list(images), batch_size=batch_size)
    out: list[dict[str, Any] | BlipkitError] = [features.errors.get(i) or BlipkitError("not encoded")
                                                 for i in range(len(features))]
    if not features.rows:
        return out
    captions = blip.caption(features, settings=settings, batch_size=batch_size)
    vectors = embed_task.image_vectors(ckpt, features.embeds).cpu().numpy()
    tags = vocab.tags(vectors)
    for row, i in enumerate(features.rows):
        cap = captions[i]
        if not cap.ok:
            out[i] = BlipkitError(cap.error or "captioning failed")
            continue
        width, height = features.sizes[i]
        out[i] = {
            "width": width, "height": height, "caption": cap.caption, "caption_confidence": cap.confidence,
            "vector": vectors[row].tolist(), "tags": [t for t, _ in tags[row]],
            "tag_scores": [s for _, s in tags[row]],
        }
    return out


def prune(index: ImageIndex, *, under: Sequence[str] | None = None) -> list[str]:
    """Delete the rows (and failure records) of files that no longer exist; returns their paths.

    ``under`` limits the check to paths under those folders (absolute, resolved)."""
    import os
    from pathlib import Path

    prefixes = [str(Path(p).resolve()) for p in under or []]
    gone: list[str] = []
    for path in index.file_states():
        if prefixes and not any(path == p or path.startswith(p.rstrip(os.sep) + os.sep) for p in prefixes):
            continue
        if _local_file_gone(path):
            gone.append(path)
    index.delete(gone)
    index.delete(gone, failures=True)
    if gone:
        index.maintain()
    return gone


def _local_file_gone(key: str) -> bool:
    """True for a key that names a local file which no longer exists. Keys that ``blipkit job index``
    gives other sources (URLs, ``s3://...``, ``shard.tar#member`` of an existing archive) are kept."""
    import os

    if "://" in key or not os.path.isabs(key) or os.path.isfile(key):
        return False
    return not ("#" in key and os.path.isfile(key.split("#", 1)[0]))
