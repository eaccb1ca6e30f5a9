"""VQA datasets: the VQAv2 questions + annotations pair, and plain JSONL/JSON rows.

The VQAv2 layout is what the VQA challenge and DAQUAR (as stored in shared/data) use: a questions
file (``{"questions": [{"image_id", "question", "question_id"}]}``) and an annotations file
(``{"annotations": [{"question_id", "multiple_choice_answer", "answers": [{"answer"}]}]}``). Test
questions come without annotations and load with empty answers.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant.datasets import columns
from assistant.datasets.captions import absolute, split_from_name
from assistant.datasets.files import iter_jsonl, read_json
from assistant.datasets.records import VQARecord, normalize_split
from assistant.datasets.validation import (
    BAD_VALUE,
    MISSING_COLUMN,
    NO_ANNOTATION,
    UNKNOWN_COLUMN,
    Issue,
    OnBad,
    ValidationReport,
    apply_policy,
    validate,
)
from assistant.vision.errors import DataError

# How VQAv2-style image ids become file names, in the order they are tried. DAQUAR stores
# images/image<N>.jpg; COCO (VQAv2 proper) stores <subtype>/COCO_<subtype>_<12-digit id>.jpg.
IMAGE_NAME_PATTERNS: tuple[str, ...] = (
    "image{id}.jpg",
    "COCO_{subtype}_{id:012d}.jpg",
    "{id:012d}.jpg",
    "{id}.jpg",
    "{id}.png",
)

_ROW_COLUMNS = {*columns.QUESTION_COLUMNS, "question_id", *columns.ANSWER_COLUMNS, columns.SPLIT_COLUMN,
                *columns.ID_COLUMNS}


@dataclass
class ParsedVQA:
    """The records of a VQA dataset, the problems met while parsing, and notes for the report."""

    records: list[VQARecord]
    issues: list[Issue]
    source: Path
    notes: list[str] = field(default_factory=list)


def _mentions(name: str, token: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(token.lower())}(?![a-z])", name.lower()) is not None


def _json_files(folder: Path, word: str) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if word in p.name.lower())


def _resolve(path: Path, split: str | None) -> tuple[Path, Path | None]:
    """(questions file or rows file, annotations file or None) for any accepted path."""
    if path.is_dir():
        questions = _json_files(path, "question")
        if split is not None:
            questions = [p for p in questions if _mentions(p.name, split)]
        if len(questions) == 1:
            return _resolve(questions[0], split)
        if not questions:
            rows = sorted(path.glob("*.jsonl"))
            if len(rows) == 1 and split is None:
                return rows[0], None
        found = ", ".join(p.name for p in questions) or "none"
        wanted = f" for split {split!r}" if split else ""
        raise DataError(
            f"cannot pick one VQA questions file{wanted} in {path}: questions files found: {found}; "
            "pass the file itself, or a split"
        )
    if not path.is_file():
        raise DataError(f"dataset not found: {path}")
    if path.suffix.lower() == ".jsonl":
        return path, None
    data = read_json(path)
    if isinstance(data, list):
        return path, None
    if isinstance(data, dict) and "questions" in data:
        return path, _partner(path, data, "annotations")
    if isinstance(data, dict) and "annotations" in data:
        questions = _partner(path, data, "questions")
        if questions is None:
            raise DataError(
                f"found no questions file beside the annotations file {path} (the questions hold the text)"
            )
        return questions, path
    raise DataError(
        f"{path}: not a VQA file; expected a VQAv2 questions or annotations file, or rows of "
        "{'image', 'question', 'answers'}"
    )


def _partner(path: Path, data: dict[str, Any], kind: str) -> Path | None:
    """The annotations file of a questions file, or the reverse, in the same folder."""
    own = "annotations" if kind == "questions" else "questions"
    direct = path.with_name(path.name.replace(own, kind))
    if direct != path and direct.is_file():
        return direct
    subtype = data.get("data_subtype")
    candidates = [p for p in _json_files(path.parent, kind) if p != path]
    if isinstance(subtype, str) and subtype:
        candidates = [p for p in candidates if subtype in p.name]
    if len(candidates) > 1:
        raise DataError(
            f"several {kind} files could belong to {path}: {', '.join(p.name for p in candidates)}"
        )
    return candidates[0] if candidates else None


def _subtype_split(data: dict[str, Any], source: Path) -> tuple[str, str | None]:
    """(data_subtype as written, e.g. 'train2014'; normalised split, e.g. 'train')."""
    subtype = data.get("data_subtype")
    if isinstance(subtype, str) and subtype:
        return subtype, normalize_split(re.sub(r"\d+$", "", subtype))
    return "", split_from_name(source)


def _image_namer(
    image_ids: list[str], folder: Path, subtype: str, image_root: Path | None
) -> tuple[Path, str, list[str]]:
    """Find which root folder and naming pattern the images follow by trying a few image ids."""
    bases = (
        [image_root] if image_root else [folder / "images", folder, folder.parent / "images", folder.parent]
    )
    # COCO keeps each split in its own folder (train2014/), so look there first.
    roots = [base / subtype for base in bases] + bases if subtype else bases
    sample = image_ids[:5]
    for root in roots:
        for pattern in IMAGE_NAME_PATTERNS:
            names = [name for name in (_name(pattern, image_id, subtype) for image_id in sample) if name]
            if any(Path(absolute(root, name)).is_file() for name in names):
                return root, pattern, []
    fallback = IMAGE_NAME_PATTERNS[1] if re.search(r"\d{4}$", subtype) else IMAGE_NAME_PATTERNS[0]
    tried = ", ".join(
        p.replace("{id:012d}", "<12-digit id>").replace("{id}", "<id>").replace("{subtype}", "<subtype>")
        for p in IMAGE_NAME_PATTERNS
    )
    note = f"no image found for the first questions; looked under {bases[0]} (and nearby folders) for {tried}"
    return bases[0], fallback, [note]


def _name(pattern: str, image_id: str, subtype: str) -> str | None:
    if "012d" in pattern or "subtype" in pattern:
        if not image_id.isdigit() or ("subtype" in pattern and not subtype):
            return None
        return pattern.format(id=int(image_id), subtype=subtype)
    return pattern.format(id=image_id)


def _parse_vqav2(
    questions_file: Path, annotations_file: Path | None, image_root: Path | None, wanted: str | None
) -> ParsedVQA:
    questions_data = read_json(questions_file)
    subtype, file_split = _subtype_split(questions_data, questions_file)
    _check_split_info(wanted, file_split is not None, questions_file)
    if wanted is not None and file_split != wanted:
        raise DataError(f"{questions_file} holds the {file_split!r} split, not {wanted!r}")
    issues: list[Issue] = []
    annotations: dict[str, dict[str, Any]] | None = None
    if annotations_file is not None:
        annotations = {}
        for number, annotation in enumerate(read_json(annotations_file).get("annotations") or []):
            if not isinstance(annotation, dict) or "question_id" not in annotation:
                issues.append(
                    Issue(MISSING_COLUMN, f"{annotations_file.name} annotations[{number}]: no 'question_id'")
                )
                continue
            annotations[str(annotation["question_id"])] = annotation
    rows: list[tuple[str, str, str]] = []
    for number, question in enumerate(questions_data.get("questions") or []):
        where = f"{questions_file.name} questions[{number}]"
        if not isinstance(question, dict) or any(
            k not in question for k in ("image_id", "question", "question_id")
        ):
            issues.append(Issue(MISSING_COLUMN, f"{where}: needs 'image_id', 'question' and 'question_id'"))
            continue
        if not isinstance(question["question"], str):
            issues.append(Issue(BAD_VALUE, f"{where}: question is not text"))
            continue
        rows.append((str(question["question_id"]), str(question["image_id"]), question["question"]))
    root, pattern, notes = _image_namer(
        [image_id for _, image_id, _ in rows], questions_file.parent, subtype, image_root
    )
    records: list[VQARecord] = []
    for question_id, image_id, text in rows:
        name = _name(pattern, image_id, subtype) or image_id
        answers: list[str] = []
        answer = ""
        if annotations is not None:
            annotation = annotations.get(question_id)
            if annotation is None:
                issues.append(Issue(NO_ANNOTATION, f"question {question_id}", len(records)))
            else:
                answers = [
                    str(a["answer"])
                    for a in annotation.get("answers") or []
                    if isinstance(a, dict) and "answer" in a
                ]
                answer = str(annotation.get("multiple_choice_answer") or most_common(answers))
        records.append(
            VQARecord(absolute(root, name), text, answers, answer, question_id, image_id, file_split)
        )
    return ParsedVQA(records, issues, questions_file, notes)


def most_common(answers: list[str]) -> str:
    """The most frequent answer (the first one among ties), or "" when there is none."""
    return Counter(answers).most_common(1)[0][0] if answers else ""


def _parse_rows(source: Path, image_root: Path | None, wanted: str | None) -> ParsedVQA:
    if source.suffix.lower() == ".jsonl":
        pairs = list(iter_jsonl(source))
    else:
        data = read_json(source)
        pairs = list(enumerate(data))
    header = list(dict.fromkeys(key for _, row in pairs if isinstance(row, dict) for key in row))
    image_column = columns.pick_column(header, columns.IMAGE_COLUMNS, what="image", source=str(source))
    columns.pick_column(header, columns.QUESTION_COLUMNS, what="question", source=str(source))
    _check_split_info(wanted, "split" in header, source)
    unknown = Counter(
        key
        for _, row in pairs
        if isinstance(row, dict)
        for key in row
        if key not in _ROW_COLUMNS and key != image_column
    )
    issues = [
        Issue(UNKNOWN_COLUMN, f"{source.name}: column {name!r} ignored ({n} rows)")
        for name, n in unknown.items()
    ]
    root = image_root or source.parent
    records: list[VQARecord] = []
    for number, row in pairs:
        where = f"{source.name} row {number}"
        if not isinstance(row, dict):
            issues.append(Issue(BAD_VALUE, f"{where}: not a JSON object"))
            continue
        image, question = row.get(image_column), row.get("question")
        if image in (None, "") or question is None:
            issues.append(
                Issue(MISSING_COLUMN, f"{where}: no {image_column if image in (None, '') else 'question'!r}")
            )
            continue
        answers = _row_answers(row)
        if not isinstance(image, str) or not isinstance(question, str) or answers is None:
            issues.append(
                Issue(BAD_VALUE, f"{where}: image and question must be text, answers text or a list")
            )
            continue
        row_split = normalize_split(row.get("split"))
        if wanted is not None and row_split != wanted:
            continue
        answer = row.get("multiple_choice_answer")
        if not isinstance(answer, str):
            answer = row["answer"] if isinstance(row.get("answer"), str) else most_common(answers)
        question_id = str(row.get("question_id", number))
        image_id = str(row.get("image_id", image))
        records.append(
            VQARecord(absolute(root, image), question, answers, answer, question_id, image_id, row_split)
        )
    return ParsedVQA(records, issues, source)


def _row_answers(row: dict[str, Any]) -> list[str] | None:
    """All answers of a row (``answers`` list or ``answer`` text/list); None when of the wrong type."""
    for key in ("answers", "answer"):
        value = row.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            return [value]
        if isinstance(value, list):
            texts = [item.get("answer") if isinstance(item, dict) else item for item in value]
            return [str(t) for t in texts] if all(isinstance(t, str | int | float) for t in texts) else None
        return None
    return []


def _check_split_info(wanted: str | None, has_split: bool, source: Path) -> None:
    if wanted is not None and not has_split:
        raise DataError(f"{source} has no split information, so split={wanted!r} cannot be selected")


def parse_vqa_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
) -> ParsedVQA:
    """Read a VQA dataset without validating images (see :func:`load_vqa_dataset`)."""
    wanted = normalize_split(split)
    root = Path(image_root) if image_root is not None else None
    source, annotations = _resolve(Path(path), wanted)
    data_kind = "rows" if source.suffix.lower() == ".jsonl" else None
    if data_kind is None and annotations is None:
        data = read_json(source)
        data_kind = "rows" if isinstance(data, list) else "vqav2"
    if data_kind == "rows":
        parsed = _parse_rows(source, root, wanted)
    else:
        parsed = _parse_vqav2(source, annotations, root, wanted)
    if wanted is not None and not parsed.records:
        raise DataError(f"{source} has no questions of split {wanted!r}")
    return parsed


def load_vqa_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    on_bad: OnBad = "raise",
    check_images: bool = True,
) -> list[VQARecord]:
    """Load a VQA dataset as one :class:`VQARecord` per question.

    ``path`` may be a VQAv2 questions file (its annotations file is found beside it), an annotations
    file (its questions file is found beside it), a folder plus ``split`` (the questions file whose
    name mentions the split), or JSONL / a JSON list of ``{"image", "question", "answers": [...]}``
    or ``{"image", "question", "answer": "..."}`` rows. VQAv2 images are looked up as
    ``image<N>.jpg`` (DAQUAR), ``COCO_<subtype>_<12-digit id>.jpg`` (COCO) or ``<id>.jpg`` under
    ``<folder>/images``, the folder itself, or ``image_root``.

    Validation and ``on_bad`` work as for :func:`assistant.datasets.load_caption_dataset`.
    """
    parsed = parse_vqa_dataset(path, split=split, image_root=image_root)
    return apply_policy(
        parsed.records,
        on_bad=on_bad,
        check_images=check_images,
        parse_issues=parsed.issues,
        source=str(parsed.source),
        notes=parsed.notes,
    )


def check_vqa_dataset(
    path: str | os.PathLike[str],
    *,
    split: str | None = None,
    image_root: str | os.PathLike[str] | None = None,
    check_images: bool = True,
    max_examples: int = 5,
) -> ValidationReport:
    """Parse and validate a VQA dataset, returning the report instead of raising on bad rows."""
    parsed = parse_vqa_dataset(path, split=split, image_root=image_root)
    report = validate(
        parsed.records,
        check_images=check_images,
        max_examples=max_examples,
        parse_issues=parsed.issues,
        source=str(parsed.source),
    )
    report.notes.extend(parsed.notes)
    return report
