"""Saving a caption dataset back in the layout it came from (CapFilt writes its filtered data this way).

Images are never copied: each is written relative to the new file's image folder when it lies under
it, else as an absolute path (which the engine's loaders read, whatever the image root).
"""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from assistant.datasets.captions import (
    COCO,
    IMAGEFOLDER,
    KARPATHY,
    ROWS,
    detect_caption_format,
    parse_caption_dataset,
)
from assistant.datasets.files import atomic_write_text, dumps_jsonl, read_json
from assistant.datasets.records import CaptionRecord
from assistant.vision.errors import DataError


def _under(image: str, root: Path) -> bool:
    relative = os.path.relpath(image, os.path.abspath(root))
    return not relative.startswith(os.pardir + os.sep) and relative != os.pardir


def _name(image: str, root: Path) -> str:
    """The image relative to ``root`` when it lies under it, else its absolute path."""
    if _under(image, root):
        return Path(os.path.relpath(image, os.path.abspath(root))).as_posix()
    return image


def _choose_root(records: Sequence[CaptionRecord], candidates: list[Path]) -> Path:
    """The first candidate folder holding any of the images (the loaders look in the same order)."""
    for root in candidates:
        if any(_under(record.image, root) for record in records):
            return root
    return candidates[-1]


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def _reuse(originals: list[dict[str, Any]], key: str, texts: list[str]) -> list[dict[str, Any] | None]:
    """For each text, an unused original item with the same text (kept as is), or None."""
    pool = list(originals)
    matched: list[dict[str, Any] | None] = []
    for text in texts:
        hit = next((item for item in pool if item.get(key) == text), None)
        if hit is not None:
            pool.remove(hit)
        matched.append(hit)
    return matched


def _karpathy_id(entry: dict[str, Any]) -> str:
    return next((str(entry[key]) for key in ("cocoid", "imgid") if key in entry), str(entry.get("filename")))


def _write_karpathy(records: Sequence[CaptionRecord], out: Path, like: Path | None) -> None:
    original: dict[str, Any] = read_json(like) if like else {"dataset": "blip-assistant", "images": []}
    by_id = {_karpathy_id(entry): entry for entry in original.get("images", []) if isinstance(entry, dict)}
    sentids = [
        s.get("sentid", -1) for e in by_id.values() for s in e.get("sentences", []) if isinstance(s, dict)
    ]
    imgids = [e["imgid"] for e in by_id.values() if isinstance(e.get("imgid"), int)]
    next_sentid = max(sentids, default=-1) + 1
    next_imgid = max(imgids, default=-1) + 1
    root = _choose_root(records, [out.parent / "images", out.parent])
    entries = []
    for record in records:
        entry = copy.deepcopy(by_id.get(record.image_id))
        if entry is None:
            entry = {"imgid": next_imgid}
            next_imgid += 1
            if record.split is not None:
                entry["split"] = record.split
        name = _name(record.image, root)
        directory, filename = os.path.split(name)
        entry["filename"] = filename
        if directory:
            entry["filepath"] = directory
        else:
            entry.pop("filepath", None)
        sentences = []
        for text, kept in zip(
            record.captions, _reuse(entry.get("sentences", []), "raw", record.captions), strict=True
        ):
            if kept is None:
                kept = {
                    "raw": text,
                    "tokens": _tokens(text),
                    "imgid": entry.get("imgid"),
                    "sentid": next_sentid,
                }
                next_sentid += 1
            sentences.append(kept)
        entry["sentences"] = sentences
        if "sentids" in entry or like is None:
            entry["sentids"] = [s.get("sentid") for s in sentences]
        entries.append(entry)
    result = {key: value for key, value in original.items() if key != "images"}
    result["images"] = entries
    atomic_write_text(out, json.dumps(result, ensure_ascii=False))


def _write_coco(records: Sequence[CaptionRecord], out: Path, like: Path | None) -> None:
    original: dict[str, Any] = read_json(like) if like else {"images": [], "annotations": []}
    images = {str(image["id"]): image for image in original.get("images", []) if isinstance(image, dict)}
    by_image: dict[str, list[dict[str, Any]]] = {}
    for annotation in original.get("annotations", []):
        if isinstance(annotation, dict):
            by_image.setdefault(str(annotation.get("image_id")), []).append(annotation)
    annotation_ids = [a["id"] for items in by_image.values() for a in items if isinstance(a.get("id"), int)]
    next_annotation = max(annotation_ids, default=0) + 1
    taken = {int(i) for i in images if i.lstrip("-").isdigit()}
    next_image = max(taken, default=0) + 1
    folders = [out.parent / "images", out.parent, out.parent.parent / "images", out.parent.parent]
    root = _choose_root(records, folders)
    out_images, out_annotations = [], []
    for record in records:
        image = copy.deepcopy(images.get(record.image_id))
        if image is None:
            wanted = int(record.image_id) if record.image_id.isdigit() else None
            image_id: int | str = wanted if wanted is not None and wanted not in taken else next_image
            if image_id == next_image:
                next_image += 1
            taken.add(int(image_id))
            image = {"id": image_id}
        image["file_name"] = _name(record.image, root)
        out_images.append(image)
        originals = by_image.get(record.image_id, [])
        for text, kept in zip(record.captions, _reuse(originals, "caption", record.captions), strict=True):
            if kept is None:
                kept = {"image_id": image["id"], "id": next_annotation, "caption": text}
                next_annotation += 1
            out_annotations.append(copy.deepcopy(kept))
    result = {key: value for key, value in original.items() if key not in ("images", "annotations")}
    result["images"] = out_images
    result["annotations"] = out_annotations
    atomic_write_text(out, json.dumps(result, ensure_ascii=False))


def _rows(
    records: Sequence[CaptionRecord], root: Path, details: dict[str, Any], *, lists_allowed: bool
) -> list[dict[str, Any]]:
    image_column = details.get("image_column", "image")
    caption_column = details.get("caption_column", "caption")
    with_split = details.get("has_split_column", any(record.split for record in records))
    with_id = details.get("has_image_id_column", False)
    as_list = lists_allowed and details.get("list_captions", False)
    rows: list[dict[str, Any]] = []
    for record in records:
        base: dict[str, Any] = {image_column: _name(record.image, root)}
        if with_id:
            base["image_id"] = record.image_id
        if with_split:
            base["split"] = record.split or ""
        if as_list:
            rows.append({**base, caption_column: list(record.captions)})
        else:
            rows.extend({**base, caption_column: caption} for caption in record.captions)
    return rows


def _write_rows(records: Sequence[CaptionRecord], out: Path, details: dict[str, Any]) -> None:
    suffix = out.suffix.lower()
    rows = _rows(records, out.parent, details, lists_allowed=suffix != ".csv")
    if suffix == ".csv":
        buffer = io.StringIO()
        fields = list(dict.fromkeys(key for row in rows for key in row))
        writer = csv.DictWriter(buffer, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        atomic_write_text(out, buffer.getvalue())
    elif suffix == ".jsonl":
        atomic_write_text(out, dumps_jsonl(rows))
    elif suffix == ".json":
        atomic_write_text(out, json.dumps(rows, ensure_ascii=False))
    else:
        raise DataError(f"cannot write rows to {out}: use a .jsonl, .csv or .json file name")


def _write_imagefolder(records: Sequence[CaptionRecord], out: Path, details: dict[str, Any]) -> None:
    details = {"image_column": "file_name", "caption_column": "text", **details}
    file_name = details.get("file", "metadata.jsonl")
    split_folders: dict[str, str] = details.get("split_folders") or {}
    if split_folders and all(record.split in split_folders for record in records):
        for split, folder in split_folders.items():
            part = [record for record in records if record.split == split]
            if part:
                _write_rows(part, out / folder / file_name, {**details, "has_split_column": False})
        return
    _write_rows(records, out / file_name, details)


def save_caption_dataset(
    records: Sequence[CaptionRecord],
    path: str | os.PathLike[str],
    *,
    like: str | os.PathLike[str] | None = None,
) -> Path:
    """Write caption records in the format of ``like`` (the dataset they were loaded from).

    With ``like``, everything the records do not change is kept: Karpathy entries (their ``split``,
    ``imgid``, ``cocoid``, sentence ids), COCO ``info``/``licenses``/image entries and annotation ids,
    and the column names of CSV/JSONL/imagefolder files. Captions that are new (CapFilt's synthetic
    ones) get fresh ids. Without ``like`` the format follows the name: ``.json`` Karpathy, ``.jsonl``
    or ``.csv`` rows of ``image``/``caption``, and a folder an HF imagefolder (``metadata.jsonl``).

    Returns the file (or, for an imagefolder, the folder) written.
    """
    out = Path(path)
    if like is not None:
        kind, source = detect_caption_format(like)
        details = parse_caption_dataset(like).details if kind in (ROWS, IMAGEFOLDER) else {}
    else:
        source = None
        suffix = out.suffix.lower()
        kind = {".json": KARPATHY, ".jsonl": ROWS, ".csv": ROWS, "": IMAGEFOLDER}.get(suffix)
        if kind is None or (out.is_dir() and suffix):
            kind = IMAGEFOLDER if out.is_dir() else None
        if kind is None:
            raise DataError(
                f"cannot tell which format to write {out} in: use .json, .jsonl, .csv or a folder"
            )
        details = {}
    if kind == KARPATHY:
        _write_karpathy(records, out, source)
    elif kind == COCO:
        _write_coco(records, out, source)
    elif kind == IMAGEFOLDER:
        if out.suffix.lower() in (".jsonl", ".csv"):
            _write_rows(records, out, {"image_column": "file_name", "caption_column": "text", **details})
        else:
            _write_imagefolder(records, out, details)
    else:
        if like is not None and out.suffix.lower() != Path(details.get("file", out.name)).suffix.lower():
            raise DataError(f"{out} should have the same suffix as {like} to be written in the same format")
        _write_rows(records, out, details)
    return out
