"""Checking a dataset before anything trains on it: every problem found at once, in one report.

Problems come from two places: the parser (rows that lack a required column, values of the wrong
type) and :func:`validate` (missing or unreadable images, empty captions or questions). Both end up
in one :class:`ValidationReport` so that a user fixes a dataset in one pass instead of one error per
run.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from assistant.datasets.records import CaptionRecord, VQARecord
from assistant.vision import defaults
from assistant.vision.errors import DataError

log = logging.getLogger(__name__)

OnBad = Literal["raise", "skip"]

# Problem kinds. Errors make a row unusable; warnings are reported but never fail a dataset.
MISSING_IMAGE = "missing_image"
UNREADABLE_IMAGE = "unreadable_image"
IMAGE_TOO_LARGE = "image_too_large"
EMPTY_CAPTION = "empty_caption"
EMPTY_QUESTION = "empty_question"
MISSING_COLUMN = "missing_column"
BAD_VALUE = "bad_value"
NO_ANNOTATION = "no_annotation"
UNKNOWN_COLUMN = "unknown_column"

WARNING_KINDS = frozenset({UNKNOWN_COLUMN})

_DESCRIPTIONS = {
    MISSING_IMAGE: "missing image",
    UNREADABLE_IMAGE: "unreadable image",
    IMAGE_TOO_LARGE: "image over the pixel limit",
    EMPTY_CAPTION: "empty caption",
    EMPTY_QUESTION: "empty question",
    MISSING_COLUMN: "row missing a required column",
    BAD_VALUE: "row with a value of the wrong type",
    NO_ANNOTATION: "question without an annotation",
    UNKNOWN_COLUMN: "unknown column",
}


@dataclass(frozen=True)
class Issue:
    """One problem: its kind, where it is (a row, a file), and the record it spoils if any.

    ``record`` is the index into the loaded record list; None for rows that never became a record
    (the parser dropped them) and for file-level warnings.
    """

    kind: str
    where: str
    record: int | None = None

    @property
    def is_error(self) -> bool:
        return self.kind not in WARNING_KINDS


@dataclass
class ValidationReport:
    """Everything wrong with a dataset: counts per problem kind and the first few examples of each."""

    n_records: int
    issues: list[Issue] = field(default_factory=list)
    source: str | None = None
    max_examples: int = 5
    notes: list[str] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """Number of problems per kind, errors and warnings alike."""
        return dict(Counter(issue.kind for issue in self.issues))

    @property
    def errors(self) -> list[Issue]:
        return [issue for issue in self.issues if issue.is_error]

    @property
    def warnings(self) -> list[Issue]:
        return [issue for issue in self.issues if not issue.is_error]

    @property
    def ok(self) -> bool:
        """True when nothing would make a row unusable (warnings allowed)."""
        return not self.errors

    @property
    def bad_records(self) -> set[int]:
        """Indices of records spoilt by at least one error."""
        return {issue.record for issue in self.errors if issue.record is not None}

    def examples(self, kind: str) -> list[str]:
        """The first ``max_examples`` locations of a problem kind."""
        return [issue.where for issue in self.issues if issue.kind == kind][: self.max_examples]

    def summary(self) -> str:
        """One line: ``3 missing image, 1 empty caption`` (or ``no problems``)."""
        counts = Counter(issue.kind for issue in self.errors)
        if not counts:
            return "no problems"
        return ", ".join(f"{n} {_DESCRIPTIONS.get(kind, kind)}" for kind, n in counts.items())

    def format(self) -> str:
        """A multi-line, human-readable report of every problem kind with examples."""
        where = f" in {self.source}" if self.source else ""
        if not self.issues:
            return f"no problems{where} ({self.n_records} records)"
        lines = [f"{len(self.errors)} problem(s){where} ({self.n_records} records):"]
        for kind, n in Counter(issue.kind for issue in self.issues).items():
            label = _DESCRIPTIONS.get(kind, kind)
            tag = " (warning)" if kind in WARNING_KINDS else ""
            examples = "; ".join(self.examples(kind))
            more = ", ..." if n > self.max_examples else ""
            lines.append(f"  - {n} x {label}{tag}: {examples}{more}")
        lines.extend(f"  note: {note}" for note in self.notes)
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()

    def raise_if_bad(self) -> None:
        """Raise one :class:`~assistant.vision.errors.DataError` listing every error, or return quietly."""
        if self.ok:
            return
        raise DataError(
            self.format() + '\nFix these rows, or load with on_bad="skip" (--on-bad skip) to drop them.'
        )


def check_image(path: str) -> str | None:
    """The problem kind of one image file, or None when it opens and verifies.

    Only the header is decoded (``Image.verify``), so this is cheap enough to run on every image of a
    dataset before training.
    """
    from PIL import Image

    file = Path(path)
    if not file.is_file():
        return MISSING_IMAGE
    try:
        with Image.open(file) as image:
            width, height = image.size
            if width * height > defaults.MAX_IMAGE_PIXELS:
                return IMAGE_TOO_LARGE
            image.verify()
    except Image.DecompressionBombError:
        return IMAGE_TOO_LARGE
    except Exception:  # PIL raises many types for a bad file; every one means "unreadable"
        return UNREADABLE_IMAGE
    return None


def validate(
    records: Sequence[CaptionRecord | VQARecord],
    *,
    check_images: bool = True,
    max_examples: int = 5,
    parse_issues: Iterable[Issue] = (),
    source: str | None = None,
) -> ValidationReport:
    """Check records for missing/unreadable images and empty captions or questions.

    ``parse_issues`` are problems the parser already found (rows with missing columns); they are
    included so that one report holds everything. Each image file is checked once however many
    records use it.
    """
    issues = list(parse_issues)
    image_status: dict[str, str | None] = {}
    for index, record in enumerate(records):
        if check_images:
            if record.image not in image_status:
                image_status[record.image] = check_image(record.image)
            kind = image_status[record.image]
            if kind is not None:
                issues.append(Issue(kind, record.image, index))
        if isinstance(record, CaptionRecord):
            if not record.captions:
                issues.append(Issue(EMPTY_CAPTION, f"image {record.image_id} has no caption", index))
            for number, caption in enumerate(record.captions):
                if not caption.strip():
                    issues.append(Issue(EMPTY_CAPTION, f"image {record.image_id} caption {number}", index))
        elif not record.question.strip():
            issues.append(Issue(EMPTY_QUESTION, f"question {record.question_id}", index))
    return ValidationReport(len(records), issues, source=source, max_examples=max_examples)


def drop_bad(
    records: Sequence[CaptionRecord | VQARecord], report: ValidationReport
) -> list[CaptionRecord | VQARecord]:
    """Records without errors; empty captions are removed and a record left with none is dropped."""
    bad = {
        issue.record for issue in report.errors if issue.record is not None and issue.kind != EMPTY_CAPTION
    }
    kept: list[CaptionRecord | VQARecord] = []
    for index, record in enumerate(records):
        if index in bad:
            continue
        if isinstance(record, CaptionRecord):
            captions = [caption for caption in record.captions if caption.strip()]
            if not captions:
                continue
            if len(captions) != len(record.captions):
                record = CaptionRecord(record.image, captions, record.image_id, record.split)
        kept.append(record)
    return kept


def apply_policy(
    records: list,
    *,
    on_bad: OnBad,
    check_images: bool,
    parse_issues: Iterable[Issue],
    source: str,
    notes: Iterable[str] = (),
) -> list:
    """Validate loaded records and either raise on any error or drop bad rows with a one-line log."""
    if on_bad not in ("raise", "skip"):
        raise ValueError(f'on_bad must be "raise" or "skip", not {on_bad!r}')
    report = validate(records, check_images=check_images, parse_issues=parse_issues, source=source)
    report.notes.extend(notes)
    for warning in report.warnings:
        log.warning("%s: %s", source, warning.where)
    if on_bad == "raise":
        report.raise_if_bad()
        return records
    if report.ok:
        return records
    kept = drop_bad(records, report)
    log.warning(
        "%s: skipped bad rows (%s); kept %d of %d records", source, report.summary(), len(kept), len(records)
    )
    return kept
