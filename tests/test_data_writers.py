"""Saving caption datasets back in their own format (what CapFilt does with its filtered data)."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest
from PIL import Image

from assistant.datasets import detect_caption_format, load_caption_dataset, save_caption_dataset
from assistant.vision.errors import DataError


def make_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), (90, 90, 200)).save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def capfilt(records: list) -> list:
    """What CapFilt does: drop a noisy caption, add a synthetic one, drop an image."""
    first = replace(records[0], captions=[records[0].captions[0], "a synthetic caption"])
    return [first, *records[1:-1]]


@pytest.fixture
def karpathy_file(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        make_image(tmp_path / "images" / name)
    entries = [
        {
            "filename": "a.jpg",
            "imgid": 0,
            "split": "train",
            "sentids": [0, 1],
            "sentences": [
                {"raw": "web text one", "tokens": ["web"], "imgid": 0, "sentid": 0},
                {"raw": "web text two", "tokens": ["web"], "imgid": 0, "sentid": 1},
            ],
        },
        {
            "filename": "b.jpg",
            "imgid": 1,
            "split": "restval",
            "sentids": [2],
            "sentences": [{"raw": "bee", "tokens": ["bee"], "imgid": 1, "sentid": 2}],
        },
        {
            "filename": "c.jpg",
            "imgid": 2,
            "split": "train",
            "sentids": [3],
            "sentences": [{"raw": "sea", "tokens": ["sea"], "imgid": 2, "sentid": 3}],
        },
    ]
    return write_json(tmp_path / "dataset_x.json", {"dataset": "x", "images": entries})


def test_karpathy_round_trip_keeps_original_fields(karpathy_file: Path) -> None:
    records = capfilt(load_caption_dataset(karpathy_file))
    out = save_caption_dataset(records, karpathy_file.parent / "filtered.json", like=karpathy_file)
    assert load_caption_dataset(out) == records
    data = json.loads(out.read_text())
    assert data["dataset"] == "x"
    first, second = data["images"]
    assert first["sentences"][0] == {"raw": "web text one", "tokens": ["web"], "imgid": 0, "sentid": 0}
    assert first["sentences"][1] == {
        "raw": "a synthetic caption",
        "tokens": ["a", "synthetic", "caption"],
        "imgid": 0,
        "sentid": 4,
    }  # a fresh id after the largest one
    assert first["sentids"] == [0, 4]
    assert second["split"] == "restval"  # loaded as train, saved as it was
    assert first["filename"] == "a.jpg" and "filepath" not in first


def test_karpathy_saved_elsewhere_uses_absolute_paths(karpathy_file: Path, tmp_path: Path) -> None:
    records = load_caption_dataset(karpathy_file)
    out = save_caption_dataset(records, tmp_path / "other" / "copy.json", like=karpathy_file)
    entry = json.loads(out.read_text())["images"][0]
    assert Path(entry["filepath"]).is_absolute()
    assert load_caption_dataset(out) == records


def test_coco_round_trip_keeps_ids_and_info(tmp_path: Path) -> None:
    for i in (1, 2, 3):
        make_image(tmp_path / "images" / f"{i}.jpg")
    original = write_json(
        tmp_path / "captions_train2014.json",
        {
            "info": {"year": 2014},
            "licenses": [{"id": 1}],
            "images": [{"id": i, "file_name": f"{i}.jpg", "license": 1} for i in (1, 2, 3)],
            "annotations": [
                {"image_id": 1, "id": 100, "caption": "one"},
                {"image_id": 1, "id": 101, "caption": "uno"},
                {"image_id": 2, "id": 102, "caption": "two"},
                {"image_id": 3, "id": 103, "caption": "3"},
            ],
        },
    )
    records = capfilt(load_caption_dataset(original))
    out = save_caption_dataset(records, tmp_path / "captions_train2014_filtered.json", like=original)
    assert load_caption_dataset(out) == records
    data = json.loads(out.read_text())
    assert data["info"] == {"year": 2014} and data["licenses"] == [{"id": 1}]
    assert data["images"] == [
        {"id": 1, "file_name": "1.jpg", "license": 1},
        {"id": 2, "file_name": "2.jpg", "license": 1},
    ]
    assert data["annotations"] == [
        {"image_id": 1, "id": 100, "caption": "one"},
        {"image_id": 1, "id": 104, "caption": "a synthetic caption"},
        {"image_id": 2, "id": 102, "caption": "two"},
    ]


def test_csv_round_trip_keeps_columns_and_splits(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        make_image(tmp_path / "img" / f"{name}.jpg")
    original = tmp_path / "data.csv"
    original.write_text(
        "image_path,caption,split\nimg/a.jpg,one,train\nimg/a.jpg,uno,train\n"
        "img/b.jpg,two,test\nimg/c.jpg,three,train\n"
    )
    records = capfilt(load_caption_dataset(original))
    out = save_caption_dataset(records, tmp_path / "filtered.csv", like=original)
    assert load_caption_dataset(out) == records
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows == [
        {"image_path": "img/a.jpg", "split": "train", "caption": "one"},
        {"image_path": "img/a.jpg", "split": "train", "caption": "a synthetic caption"},
        {"image_path": "img/b.jpg", "split": "test", "caption": "two"},
    ]
    with pytest.raises(DataError, match="same suffix"):
        save_caption_dataset(records, tmp_path / "filtered.jsonl", like=original)


def test_jsonl_list_captions_stay_lists(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "b.jpg")
    original = tmp_path / "rows.jsonl"
    original.write_text(
        "".join(
            json.dumps(row) + "\n"
            for row in [{"image": "a.jpg", "captions": ["x", "y"]}, {"image": "b.jpg", "captions": ["z"]}]
        )
    )
    records = load_caption_dataset(original)
    out = save_caption_dataset(records, tmp_path / "out.jsonl", like=original)
    assert [json.loads(line) for line in out.read_text().splitlines()] == [
        {"image": "a.jpg", "captions": ["x", "y"]},
        {"image": "b.jpg", "captions": ["z"]},
    ]


def test_imagefolder_with_split_folders_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "source"
    for split in ("train", "test"):
        make_image(source / split / "x.png")
        (source / split / "metadata.jsonl").write_text(
            json.dumps({"file_name": "x.png", "text": split}) + "\n"
        )
    records = load_caption_dataset(source)
    out = save_caption_dataset(records, source, like=source)
    assert sorted(p.relative_to(source).as_posix() for p in out.rglob("metadata.jsonl")) == [
        "test/metadata.jsonl",
        "train/metadata.jsonl",
    ]
    assert json.loads((source / "train" / "metadata.jsonl").read_text()) == {
        "file_name": "x.png",
        "text": "train",
    }
    assert load_caption_dataset(out) == records


@pytest.mark.parametrize(
    ("name", "kind"),
    [("new.json", "karpathy"), ("new.jsonl", "rows"), ("new.csv", "rows"), ("newfolder", "imagefolder")],
)
def test_without_like_the_name_picks_the_format(tmp_path: Path, name: str, kind: str) -> None:
    make_image(tmp_path / "pics" / "a.jpg")
    records = load_caption_dataset(
        write_json(tmp_path / "in.json", [{"image": "pics/a.jpg", "caption": ["one", "two"], "split": "val"}])
    )
    out = save_caption_dataset(records, tmp_path / name)
    assert detect_caption_format(out)[0] == kind
    reloaded = load_caption_dataset(out)
    assert [(r.image, r.captions, r.split) for r in reloaded] == [
        (r.image, r.captions, r.split) for r in records
    ]
