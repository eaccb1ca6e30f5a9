"""Caption datasets: Karpathy-split JSON, COCO captions JSON, HF imagefolder, and plain CSV/JSONL.

All four load into :class:`~assistant.datasets.records.CaptionRecord` (one per image, all of its captions
grouped), so that training, evaluation and CapFilt never care where the data came from.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.datasets import columns
from assistant.datasets.files import iter_jsonl, read_csv, read_json
from assistant.datasets.records import CaptionRecord, normalize_split
from assistant.datasets.validation import (
    BAD_VALUE,
    MISSING_COLUMN,
    UNKNOWN_COLUMN,
    Issue,
    OnBad,
    ValidationReport,
    apply_policy,
    validate,
)
from assistant.vision.errors import DataError

KARPATHY = "karpathy"
COCO = "coco"
IMAGEFOLDER = "imagefolder"
ROWS = "rows"

METADATA_FILES = ("metadata.jsonl", "metadata.csv")
ROW_SUFFIXES = (".jsonl", ".csv", ".json")


@dataclass
class ParsedCaptions:
    """What a parser read: the records, the problems it met, and how the source was laid out.

    ``details`` holds what the writer needs to save in the same layout (column names, split folders).
    """

    records: list[CaptionRecord]
    issues: list[Issue]
    format: str
    source: Path
    details: dict[str, Any] = field(default_factory=dict)


def absolute(root: Path, relative: str) -> str:
    """An absolute path for an image named relative to ``root`` (absolute names are kept)."""
    return os.path.abspath(os.path.join(root, relative))


def pick_root(candidates: list[Path], relatives: list[str]) -> Path:
    """The first candidate folder under which any of the first few images exists, else the first one.

    Falling back to the first candidate lets validation report the missing images with the paths that
    were expected, which says more than a guess would.
    """
    # Absolute names exist under any root, so only relative ones tell the roots apart.
    sample = [relative for relative in relatives if not os.path.isabs(relative)][:5]
    for root in candidates:
        if any(Path(absolute(root, relative)).is_file() for relative in sample):
            return root
    return candidates[0]


def split_from_name(path: Path) -> str | None:
    """The split named in a file name such as ``captions_val2014.json``, if any."""
    match = re.search(r"(?<![a-z])(train|val|test|restval)(?:\d{4})?(?![a-z])", path.name.lower())
    return normalize_split(match.group(1)) if match else None


# --- format detection ------------------------------------------------------------------------


def detect_caption_format(path: str | os.PathLike[str]) -> tuple[str, Path]:
    """Return (format, the file or folder to parse) for a caption dataset path."""
    source = Path(path)
    if source.is_dir():
        if any((source / name).is_file() for name in METADATA_FILES):
            return IMAGEFOLDER, source
        if _split_folders(source):
            return IMAGEFOLDER, source
        files = sorted(p for p in source.iterdir() if p.is_file() and p.suffix.lower() in ROW_SUFFIXES)
        if len(files) == 1:
            return detect_caption_format(files[0])
        found = ", ".join(p.name for p in files) or "no JSON/JSONL/CSV file"
        raise DataError(
            f"cannot tell which caption dataset {source} holds: expected metadata.jsonl/metadata.csv "
            f"(HF imagefolder), split folders holding one, or a single JSON/JSONL/CSV file; found {found}"
        )
    if not source.exists():
        raise DataError(f"dataset not found: {source}")
    suffix = source.suffix.lower()
    if source.name in METADATA_FILES:
        return IMAGEFOLDER, source
    if suffix in (".jsonl", ".csv"):
        return ROWS, source
    if suffix == ".json":
        return _json_kind(read_json(source), source), source
    raise DataError(f"unsupported caption dataset file {source}: expected .json, .jsonl or .csv")


def _json_kind(data: Any, source: Path) -> str:
    if isinstance(data, list):
        return ROWS
    if not isinstance(data, dict):
        raise DataError(f"{source}: expected a JSON object or list, found {type(data).__name__}")
    if "questions" in data or _has_key(data.get("annotations"), "question_id"):
        raise DataError(f"{source} is a VQA file, not a caption dataset: load it with load_vqa_dataset")
    images = data.get("images")
    if isinstance(images, list):
        if "annotations" in data:
            return COCO
        if not images or _has_key(images, "sentences"):
            return KARPATHY
    raise DataError(
        f"{source}: unknown caption JSON layout; expected Karpathy "
        f"({{'images': [{{'filename', 'sentences'}}]}}), "
        f"COCO ({{'images', 'annotations'}}) or a list of {{'image', 'caption'}} rows; "
        f"top-level keys: {', '.join(map(str, data)) or 'none'}"
    )


def _has_key(rows: Any, key: str) -> bool:
    return isinstance(rows, list) and bool(rows) and isinstance(rows[0], dict) and key in rows[0]


def _split_folders(folder: Path) -> list[Path]:
    return sorted(
        child
        for child in folder.iterdir()
        if child.is_dir() and any((child / name).is_file() for name in METADATA_FILES)
    )


# --- parsers ---------------------------------------------------------------------------------


def parse_caption_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    text_column: str | None = None,
) -> ParsedCaptions:
    """Read a caption dataset of any supported format without validating images.

    Rows of other splits are left out; a requested split in a source with no split information is a
    DataError (rather than silently using every row).
    """
    kind, source = detect_caption_format(path)
    root = Path(image_root) if image_root is not None else None
    wanted = normalize_split(split)
    if kind == KARPATHY:
        parsed = _parse_karpathy(source, root, wanted)
    elif kind == COCO:
        parsed = _parse_coco(source, root, wanted)
    elif kind == IMAGEFOLDER:
        parsed = _parse_imagefolder(source, root, wanted, text_column)
    else:
        parsed = _parse_rows_file(source, root, wanted, text_column)
    if wanted is not None and not parsed.records and not any(issue.is_error for issue in parsed.issues):
        seen = ", ".join(sorted(s for s in parsed.details.get("splits_seen", ()) if s)) or "none"
        raise DataError(f"{source} has no rows of split {wanted!r}; its splits: {seen}")
    return parsed


def _require_split_info(has_split: bool, wanted: str | None, source: Path) -> None:
    if wanted is not None and not has_split:
        raise DataError(
            f"{source} has no split information, so split={wanted!r} cannot be selected; "
            "load it without a split"
        )


def _parse_karpathy(source: Path, image_root: Path | None, wanted: str | None) -> ParsedCaptions:
    data = read_json(source)
    entries = data.get("images", [])
    issues: list[Issue] = []
    rows: list[tuple[str, list[str], str, str | None]] = []
    seen: set[str | None] = set()
    for number, entry in enumerate(entries):
        where = f"{source.name} images[{number}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("filename"), str):
            issues.append(Issue(MISSING_COLUMN, f"{where}: no 'filename'"))
            continue
        entry_split = normalize_split(entry.get("split"))
        seen.add(entry_split)
        if wanted is not None and entry_split != wanted:
            continue
        sentences = entry.get("sentences")
        if not isinstance(sentences, list):
            issues.append(Issue(MISSING_COLUMN, f"{where}: no 'sentences' list"))
            continue
        captions = []
        for sentence in sentences:
            text = _sentence_text(sentence)
            if text is None:
                issues.append(Issue(BAD_VALUE, f"{where}: a sentence without 'raw' text"))
            else:
                captions.append(text)
        relative = os.path.join(str(entry.get("filepath") or ""), entry["filename"])
        image_id = next((str(entry[key]) for key in ("cocoid", "imgid") if key in entry), entry["filename"])
        rows.append((relative, captions, image_id, entry_split))
    _require_split_info(any(seen), wanted, source)
    candidates = [image_root] if image_root else [source.parent / "images", source.parent]
    root = pick_root(candidates, [row[0] for row in rows])
    records = [CaptionRecord(absolute(root, rel), caps, image_id, sp) for rel, caps, image_id, sp in rows]
    return ParsedCaptions(records, issues, KARPATHY, source, {"image_root": str(root), "splits_seen": seen})


def _sentence_text(sentence: Any) -> str | None:
    if isinstance(sentence, str):
        return sentence
    if isinstance(sentence, dict):
        if isinstance(sentence.get("raw"), str):
            return sentence["raw"]
        if isinstance(sentence.get("tokens"), list):
            return " ".join(map(str, sentence["tokens"]))
    return None


def _parse_coco(source: Path, image_root: Path | None, wanted: str | None) -> ParsedCaptions:
    data = read_json(source)
    issues: list[Issue] = []
    file_split = split_from_name(source)
    _require_split_info(file_split is not None, wanted, source)
    if wanted is not None and file_split != wanted:
        raise DataError(f"{source} holds the {file_split!r} split, not {wanted!r}")
    images: dict[str, str] = {}
    for number, image in enumerate(data.get("images") or []):
        if not isinstance(image, dict) or "id" not in image or not isinstance(image.get("file_name"), str):
            issues.append(
                Issue(MISSING_COLUMN, f"{source.name} images[{number}]: needs 'id' and 'file_name'")
            )
            continue
        images[str(image["id"])] = image["file_name"]
    captions: dict[str, list[str]] = {image_id: [] for image_id in images}
    for number, annotation in enumerate(data.get("annotations") or []):
        where = f"{source.name} annotations[{number}]"
        if not isinstance(annotation, dict) or "image_id" not in annotation or "caption" not in annotation:
            issues.append(Issue(MISSING_COLUMN, f"{where}: needs 'image_id' and 'caption'"))
            continue
        image_id = str(annotation["image_id"])
        if image_id not in captions:
            issues.append(Issue(BAD_VALUE, f"{where}: image_id {image_id} is not in 'images'"))
        elif not isinstance(annotation["caption"], str):
            issues.append(Issue(BAD_VALUE, f"{where}: caption is not text"))
        else:
            captions[image_id].append(annotation["caption"])
    if image_root:
        candidates = [image_root]
    else:
        folders = [source.parent, source.parent.parent]
        year_folder = re.search(r"(train|val|test)\d{4}", source.name)
        candidates = [folder / "images" for folder in folders] + folders
        if year_folder:
            candidates += [folder / year_folder.group(0) for folder in folders]
    root = pick_root(candidates, list(images.values()))
    records = [
        CaptionRecord(absolute(root, file_name), captions[image_id], image_id, file_split)
        for image_id, file_name in images.items()
    ]
    return ParsedCaptions(records, issues, COCO, source, {"image_root": str(root)})


def _parse_imagefolder(
    source: Path, image_root: Path | None, wanted: str | None, text_column: str | None
) -> ParsedCaptions:
    folder = source.parent if source.is_file() else source
    if source.is_file() or any((folder / name).is_file() for name in METADATA_FILES):
        parts = [(None, folder)]
    else:
        parts = [(normalize_split(child.name), child) for child in _split_folders(folder)]
    _require_split_info(any(part_split for part_split, _ in parts), wanted, folder)
    records: list[CaptionRecord] = []
    issues: list[Issue] = []
    details: dict[str, Any] = {
        "split_folders": {part_split: child.name for part_split, child in parts if part_split is not None},
        "splits_seen": {part_split for part_split, _ in parts},
    }
    for part_split, part in parts:
        if wanted is not None and part_split != wanted:
            continue
        metadata = (
            source if source.is_file() else next(part / n for n in METADATA_FILES if (part / n).is_file())
        )
        parsed = _parse_rows_file(
            metadata,
            image_root or part,
            wanted,
            text_column,
            default_split=part_split,
            id_root=image_root or folder,
        )
        records.extend(parsed.records)
        issues.extend(parsed.issues)
        details.update({key: value for key, value in parsed.details.items() if key != "splits_seen"})
    return ParsedCaptions(records, issues, IMAGEFOLDER, source, details)


def _parse_rows_file(
    source: Path,
    image_root: Path | None,
    wanted: str | None,
    text_column: str | None,
    *,
    default_split: str | None = None,
    id_root: Path | None = None,
) -> ParsedCaptions:
    header, rows = _read_rows(source)
    image_column = columns.pick_column(header, columns.IMAGE_COLUMNS, what="image", source=str(source))
    caption_column = columns.pick_column(
        header,
        columns.CAPTION_COLUMNS,
        what="caption",
        source=str(source),
        explicit=text_column,
        option="text_column / --text-column",
    )
    known = {image_column, caption_column, columns.SPLIT_COLUMN, *columns.ID_COLUMNS}
    issues = _unknown_column_warnings(rows, known, source)
    has_split = default_split is not None or columns.SPLIT_COLUMN in header
    _require_split_info(has_split, wanted, source)
    root = image_root or source.parent
    grouped: dict[str, CaptionRecord] = {}
    seen: set[str | None] = set()
    for number, row in rows:
        where = f"{source.name} row {number}"
        image = row.get(image_column)
        value = row.get(caption_column)
        if image in (None, "") or value is None:
            missing = image_column if image in (None, "") else caption_column
            issues.append(Issue(MISSING_COLUMN, f"{where}: no {missing!r}"))
            continue
        if not isinstance(image, str) or not _is_text_or_texts(value):
            issues.append(
                Issue(
                    BAD_VALUE,
                    f"{where}: {image_column!r} must be text and {caption_column!r} text or a list of texts",
                )
            )
            continue
        row_split = normalize_split(row.get(columns.SPLIT_COLUMN)) or default_split
        seen.add(row_split)
        if wanted is not None and row_split != wanted:
            continue
        path = absolute(root, image)
        texts = [value] if isinstance(value, str) else list(value)
        if path in grouped:
            grouped[path].captions.extend(texts)
            continue
        image_id = row.get("image_id")
        if image_id in (None, ""):
            image_id = Path(os.path.relpath(path, id_root)).as_posix() if id_root else image
        grouped[path] = CaptionRecord(path, texts, str(image_id), row_split)
    details = {
        "image_column": image_column,
        "caption_column": caption_column,
        "has_split_column": columns.SPLIT_COLUMN in header,
        "has_image_id_column": "image_id" in header,
        "list_captions": any(isinstance(row.get(caption_column), list) for _, row in rows),
        "file": source.name,
        "splits_seen": seen,
    }
    return ParsedCaptions(list(grouped.values()), issues, ROWS, source, details)


def _read_rows(source: Path) -> tuple[list[str], list[tuple[int, dict[str, Any]]]]:
    """(all column names seen, (line or index, row)) for a CSV, JSONL or JSON-list file."""
    suffix = source.suffix.lower()
    if suffix == ".csv":
        return read_csv(source)
    if suffix == ".jsonl":
        pairs = list(iter_jsonl(source))
    else:
        data = read_json(source)
        if not isinstance(data, list):
            raise DataError(f"{source}: expected a JSON list of rows")
        pairs = list(enumerate(data))
    rows: list[tuple[int, dict[str, Any]]] = []
    for number, row in pairs:
        if not isinstance(row, dict):
            raise DataError(f"{source} row {number}: expected a JSON object, found {type(row).__name__}")
        rows.append((number, row))
    header = list(dict.fromkeys(key for _, row in rows for key in row))
    return header, rows


def _is_text_or_texts(value: Any) -> bool:
    return isinstance(value, str) or (
        isinstance(value, list) and all(isinstance(item, str) for item in value)
    )


def _unknown_column_warnings(
    rows: Iterable[tuple[int, dict[str, Any]]], known: set[str], source: Path
) -> list[Issue]:
    """One warning per unknown column (not per row), with how many rows carry it."""
    counts = Counter(key for _, row in rows for key in row if key not in known)
    return [
        Issue(UNKNOWN_COLUMN, f"{source.name}: column {name!r} ignored ({n} rows)")
        for name, n in counts.items()
    ]


# --- public API ------------------------------------------------------------------------------


def load_caption_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    text_column: str | None = None,
    on_bad: OnBad = "raise",
    check_images: bool = True,
) -> list[CaptionRecord]:
    """Load a caption dataset as one :class:`CaptionRecord` per image, auto-detecting its format.

    Formats:

    - Karpathy-split JSON (``{"images": [{"filename", "filepath"?, "split", "sentences": [{"raw"}]}]}``);
      images under ``<json folder>/images/`` (or the JSON's own folder) unless ``image_root`` is given;
      ``restval`` counts as ``train``.
    - COCO captions JSON (``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``);
      the split comes from the file name (``captions_val2014.json``).
    - HF imagefolder: a folder with ``metadata.jsonl``/``metadata.csv`` (``file_name`` plus ``text``,
      ``caption`` or ``captions``, or ``text_column``), or split sub-folders each holding one.
    - CSV, JSONL or a JSON list of rows with an image column (image, image_path, file_name, path) and a
      caption column (caption, captions, text); optional ``split`` and ``image_id`` columns; relative
      image paths are relative to the file's folder or ``image_root``.

    Several rows for one image are grouped into one record. ``image_id`` is Karpathy's ``cocoid``, else
    its ``imgid``, else the file name; COCO's image ``id``; a row's ``image_id`` column, else the image
    path as written (for an imagefolder, relative to the folder). Before returning, every record is
    validated (see :func:`assistant.datasets.validate`): with ``on_bad="raise"`` any problem raises one
    DataError listing all of them; with ``on_bad="skip"`` bad rows are dropped and a one-line summary is
    logged.
    """
    parsed = parse_caption_dataset(path, split=split, image_root=image_root, text_column=text_column)
    return apply_policy(
        parsed.records,
        on_bad=on_bad,
        check_images=check_images,
        parse_issues=parsed.issues,
        source=str(parsed.source),
    )


def check_caption_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    text_column: str | None = None,
    check_images: bool = True,
    max_examples: int = 5,
) -> ValidationReport:
    """Parse and validate a caption dataset, returning the report instead of raising on bad rows."""
    parsed = parse_caption_dataset(path, split=split, image_root=image_root, text_column=text_column)
    return validate(
        parsed.records,
        check_images=check_images,
        max_examples=max_examples,
        parse_issues=parsed.issues,
        source=str(parsed.source),
    )
