"""Validation before training: every problem in one report, raise or skip, and no torch import."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from assistant.datasets import (
    CaptionRecord,
    VQARecord,
    check_caption_dataset,
    check_image,
    load_caption_dataset,
    load_vqa_dataset,
    validate,
)
from assistant.vision import defaults
from assistant.vision.errors import DataError


def make_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (0, 128, 0)).save(path)
    return path


@pytest.fixture
def messy(tmp_path: Path) -> Path:
    """A JSONL caption file with one problem of each kind next to two good rows."""
    make_image(tmp_path / "good1.png")
    make_image(tmp_path / "good2.png")
    (tmp_path / "broken.jpg").write_bytes(b"this is not a JPEG")
    rows = [
        {"image": "good1.png", "caption": "a good row", "source": "web"},
        {"image": "good2.png", "caption": "another good row"},
        {"image": "good2.png", "caption": "   "},  # an empty caption on an image with a good one
        {"image": "missing.png", "caption": "its image is gone"},
        {"image": "broken.jpg", "caption": "its image is not an image"},
        {"image": "good1.png"},  # no caption column
        {"image": "good1.png", "caption": 7},  # a number is not a caption
    ]
    path = tmp_path / "messy.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_report_counts_every_problem_with_examples(messy: Path) -> None:
    report = check_caption_dataset(messy)
    assert report.counts == {
        "unknown_column": 1,
        "missing_column": 1,
        "bad_value": 1,
        "empty_caption": 1,
        "missing_image": 1,
        "unreadable_image": 1,
    }
    assert not report.ok
    assert report.examples("missing_image") == [str(messy.parent / "missing.png")]
    assert report.examples("missing_column") == ["messy.jsonl row 6: no 'caption'"]
    assert report.examples("unknown_column") == ["messy.jsonl: column 'source' ignored (1 rows)"]
    assert len(report.errors) == 5 and len(report.warnings) == 1
    assert report.summary() == (
        "1 row missing a required column, 1 row with a value of the wrong type, 1 empty caption, "
        "1 missing image, 1 unreadable image"
    )


def test_raise_if_bad_lists_all_problems_in_one_message(messy: Path) -> None:
    with pytest.raises(DataError) as caught:
        load_caption_dataset(messy)
    message = str(caught.value)
    for expected in (
        "missing.png",
        "broken.jpg",
        "row 6: no 'caption'",
        "row 7",
        "empty caption",
        'on_bad="skip"',
    ):
        assert expected in message
    assert caught.value.code == "bad_data"


def test_skip_mode_drops_bad_rows_and_logs_one_line(messy: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="assistant.datasets"):
        records = load_caption_dataset(messy, on_bad="skip")
    assert [(Path(r.image).name, r.captions) for r in records] == [
        ("good1.png", ["a good row"]),
        ("good2.png", ["another good row"]),  # the empty caption is dropped, the image kept
    ]
    summaries = [r.getMessage() for r in caplog.records if "skipped bad rows" in r.getMessage()]
    assert len(summaries) == 1
    assert "kept 2 of 4 records" in summaries[0]


def test_check_images_false_skips_file_checks(messy: Path) -> None:
    report = check_caption_dataset(messy, check_images=False)
    assert "missing_image" not in report.counts and "unreadable_image" not in report.counts


def test_max_examples_limits_examples_not_counts(tmp_path: Path) -> None:
    records = [CaptionRecord(str(tmp_path / f"{i}.png"), ["x"], str(i)) for i in range(7)]
    report = validate(records, max_examples=3)
    assert report.counts == {"missing_image": 7}
    assert len(report.examples("missing_image")) == 3
    assert "7 x missing image" in report.format() and ", ..." in report.format()


def test_each_image_checked_once_and_vqa_empty_question(tmp_path: Path) -> None:
    image = str(make_image(tmp_path / "a.png"))
    records = [
        VQARecord(image, "what?", ["x"], "x", "1", "a"),
        VQARecord(image, "  ", ["x"], "x", "2", "a"),
    ]
    report = validate(records)
    assert report.counts == {"empty_question": 1}
    assert report.bad_records == {1}


def test_image_over_the_pixel_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = str(make_image(tmp_path / "a.png"))  # 64 pixels
    assert check_image(image) is None
    monkeypatch.setattr(defaults, "MAX_IMAGE_PIXELS", 63)
    assert check_image(image) == "image_too_large"


def test_truncated_png_is_unreadable(tmp_path: Path) -> None:
    path = make_image(tmp_path / "a.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 20])
    assert check_image(str(path)) == "unreadable_image"


def test_clean_dataset_reports_no_problems(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"image": "a.png", "caption": "fine"}) + "\n")
    report = check_caption_dataset(tmp_path / "rows.jsonl")
    assert report.ok and report.counts == {} and report.summary() == "no problems"
    report.raise_if_bad()  # returns quietly


def test_vqa_skip_mode(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    rows = [{"image": "a.png", "question": "ok?", "answer": "yes"}, {"image": "gone.png", "question": "x?"}]
    (tmp_path / "vqa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(DataError, match=r"gone\.png"):
        load_vqa_dataset(tmp_path / "vqa.jsonl")
    assert [r.question for r in load_vqa_dataset(tmp_path / "vqa.jsonl", on_bad="skip")] == ["ok?"]


def test_on_bad_must_be_known(tmp_path: Path) -> None:
    make_image(tmp_path / "a.png")
    (tmp_path / "rows.jsonl").write_text(json.dumps({"image": "a.png", "caption": "fine"}) + "\n")
    with pytest.raises(ValueError, match="on_bad"):
        load_caption_dataset(tmp_path / "rows.jsonl", on_bad="ignore")  # type: ignore[arg-type]


def test_data_and_metrics_modules_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "import assistant.datasets, assistant.datasets.writers, assistant.evaluation\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
