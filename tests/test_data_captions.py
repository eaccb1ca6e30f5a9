"""Caption dataset loaders: each format on small files made here, with tiny real images."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from PIL import Image

from assistant.datasets import CaptionRecord, detect_caption_format, load_caption_dataset
from assistant.vision.errors import DataError


def make_image(path: Path, color: tuple[int, int, int] = (200, 30, 30)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), color).save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def karpathy(tmp_path: Path) -> Path:
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        make_image(tmp_path / "images" / name)
    entries = [
        {
            "filename": "a.jpg",
            "imgid": 0,
            "split": "train",
            "sentences": [{"raw": "A dog ."}, {"raw": "A pup ."}],
        },
        {"filename": "b.jpg", "imgid": 1, "split": "restval", "sentences": [{"raw": "A cat ."}]},
        {"filename": "c.jpg", "imgid": 2, "split": "val", "sentences": [{"raw": "A car ."}]},
        {"filename": "d.jpg", "imgid": 3, "split": "test", "sentences": [{"tokens": ["a", "tree"]}]},
    ]
    return write_json(tmp_path / "dataset_tiny.json", {"dataset": "tiny", "images": entries})


def test_karpathy_splits_restval_and_paths(tmp_path: Path) -> None:
    path = karpathy(tmp_path)
    assert detect_caption_format(path)[0] == "karpathy"
    everything = load_caption_dataset(path)
    assert [r.image_id for r in everything] == ["0", "1", "2", "3"]
    train = load_caption_dataset(path, split="train")
    # restval is training data in the Karpathy split
    assert [(r.image_id, r.split) for r in train] == [("0", "train"), ("1", "train")]
    assert train[0].captions == ["A dog .", "A pup ."]
    assert train[0].image == str(tmp_path / "images" / "a.jpg")
    assert Path(train[0].image).is_absolute()
    assert load_caption_dataset(path, split="validation")[0].image_id == "2"
    # a sentence with only tokens still gives a caption
    assert load_caption_dataset(path, split="test")[0].captions == ["a tree"]


def test_karpathy_filepath_and_image_root(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    make_image(root / "val2014" / "x.jpg")
    entries = [
        {
            "filepath": "val2014",
            "filename": "x.jpg",
            "cocoid": 42,
            "imgid": 0,
            "split": "test",
            "sentences": [{"raw": "a thing"}],
        }
    ]
    path = write_json(tmp_path / "ann" / "karpathy.json", {"images": entries})
    records = load_caption_dataset(path, image_root=root)
    assert records == [CaptionRecord(str(root / "val2014" / "x.jpg"), ["a thing"], "42", "test")]


def test_unknown_split_names_the_splits_present(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no rows of split 'tset'.*test, train, val"):
        load_caption_dataset(karpathy(tmp_path), split="tset")


def test_coco_captions_grouped_per_image(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "COCO_val2014_000000000001.jpg")
    make_image(tmp_path / "images" / "COCO_val2014_000000000002.jpg")
    data = {
        "info": {"description": "tiny"},
        "images": [
            {"id": 1, "file_name": "COCO_val2014_000000000001.jpg"},
            {"id": 2, "file_name": "COCO_val2014_000000000002.jpg"},
        ],
        "annotations": [
            {"image_id": 1, "id": 10, "caption": "one"},
            {"image_id": 2, "id": 11, "caption": "two"},
            {"image_id": 1, "id": 12, "caption": "uno"},
        ],
    }
    path = write_json(tmp_path / "captions_val2014.json", data)
    records = load_caption_dataset(path, split="val")
    assert [(r.image_id, r.captions, r.split) for r in records] == [
        ("1", ["one", "uno"], "val"),
        ("2", ["two"], "val"),
    ]
    assert records[0].image == str(tmp_path / "images" / "COCO_val2014_000000000001.jpg")
    with pytest.raises(DataError, match="holds the 'val' split, not 'train'"):
        load_caption_dataset(path, split="train")


def test_coco_images_in_sibling_year_folder(tmp_path: Path) -> None:
    make_image(tmp_path / "val2014" / "p.jpg")
    data = {"images": [{"id": 5, "file_name": "p.jpg"}], "annotations": [{"image_id": 5, "caption": "x"}]}
    path = write_json(tmp_path / "annotations" / "captions_val2014.json", data)
    assert load_caption_dataset(path)[0].image == str(tmp_path / "val2014" / "p.jpg")


def test_imagefolder_jsonl_with_text_and_list_captions(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    make_image(folder / "a.png")
    make_image(folder / "sub" / "b.png")
    write_jsonl(
        folder / "metadata.jsonl",
        [
            {"file_name": "a.png", "captions": ["first", "second"]},
            {"file_name": "sub/b.png", "captions": ["third"]},
        ],
    )
    assert detect_caption_format(folder)[0] == "imagefolder"
    records = load_caption_dataset(folder)
    assert [(r.image_id, r.captions, r.split) for r in records] == [
        ("a.png", ["first", "second"], None),
        ("sub/b.png", ["third"], None),
    ]
    assert records[1].image == str(folder / "sub" / "b.png")
    with pytest.raises(DataError, match="no split information"):
        load_caption_dataset(folder, split="train")


def test_imagefolder_csv_with_named_text_column(tmp_path: Path) -> None:
    folder = tmp_path / "folder"
    make_image(folder / "a.png")
    with (folder / "metadata.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file_name", "alt", "text"])
        writer.writerow(["a.png", "alt text", "main text"])
    assert load_caption_dataset(folder)[0].captions == ["main text"]  # "text" is a caption column
    assert load_caption_dataset(folder, text_column="alt")[0].captions == ["alt text"]
    with pytest.raises(DataError, match=r"no column 'nope'.*file_name, alt, text"):
        load_caption_dataset(folder, text_column="nope")


def test_imagefolder_split_folders(tmp_path: Path) -> None:
    for split in ("train", "validation"):
        make_image(tmp_path / split / "x.png")
        write_jsonl(tmp_path / split / "metadata.jsonl", [{"file_name": "x.png", "text": f"{split} caption"}])
    records = load_caption_dataset(tmp_path)
    assert sorted((r.split, r.image_id) for r in records) == [
        ("train", "train/x.png"),
        ("val", "validation/x.png"),
    ]
    val = load_caption_dataset(tmp_path, split="val")
    assert [r.captions for r in val] == [["validation caption"]]


def test_csv_rows_grouped_with_split_column(tmp_path: Path) -> None:
    make_image(tmp_path / "img" / "a.jpg")
    make_image(tmp_path / "img" / "b.jpg")
    path = tmp_path / "data.csv"
    path.write_text(
        "image_path,caption,split\nimg/a.jpg,one,train\nimg/b.jpg,two,test\nimg/a.jpg,again,train\n",
        encoding="utf-8",
    )
    assert detect_caption_format(path)[0] == "rows"
    train = load_caption_dataset(path, split="train")
    assert [(r.image_id, r.captions) for r in train] == [("img/a.jpg", ["one", "again"])]
    assert train[0].image == str(tmp_path / "img" / "a.jpg")


def test_jsonl_rows_absolute_paths_and_image_ids(tmp_path: Path) -> None:
    image = make_image(tmp_path / "elsewhere" / "a.jpg")
    path = write_jsonl(
        tmp_path / "data" / "rows.jsonl",
        [
            {"image": str(image), "text": "abs path", "image_id": "img-1"},
            {"image": "../elsewhere/a.jpg", "text": "relative again", "image_id": "img-1"},
        ],
    )
    records = load_caption_dataset(path)
    assert records == [CaptionRecord(str(image), ["abs path", "relative again"], "img-1", None)]


def test_json_list_rows_blip_annotation_style(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    path = write_json(tmp_path / "blip_test.json", [{"image": "a.jpg", "caption": ["c1", "c2"]}])
    assert load_caption_dataset(path)[0].captions == ["c1", "c2"]


def test_image_root_overrides_rows_folder(tmp_path: Path) -> None:
    make_image(tmp_path / "pics" / "a.jpg")
    path = write_jsonl(tmp_path / "rows.jsonl", [{"file_name": "a.jpg", "caption": "x"}])
    assert load_caption_dataset(path, image_root=tmp_path / "pics")[0].image == str(
        tmp_path / "pics" / "a.jpg"
    )


def test_missing_required_columns_are_file_level_errors(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "rows.jsonl", [{"img": "a.jpg", "caption": "x"}])
    with pytest.raises(
        DataError, match=r"no image column: expected one of image, .*its columns are: img, caption"
    ):
        load_caption_dataset(path)
    path = write_jsonl(tmp_path / "rows2.jsonl", [{"image": "a.jpg", "captoin": "x"}])
    with pytest.raises(DataError, match=r"no caption column.*--text-column.*captoin"):
        load_caption_dataset(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"questions": []}, "VQA file"),
        ({"foo": 1}, "unknown caption JSON layout"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_json_files(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "x.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError, match=message):
        load_caption_dataset(path)


def test_missing_path_and_unknown_suffix(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_caption_dataset(tmp_path / "nope.json")
    (tmp_path / "x.txt").write_text("hi")
    with pytest.raises(DataError, match="unsupported"):
        load_caption_dataset(tmp_path / "x.txt")


def test_folder_with_one_dataset_file_is_used(tmp_path: Path) -> None:
    karpathy(tmp_path)
    assert len(load_caption_dataset(tmp_path, split="train")) == 2
    write_json(tmp_path / "other.json", [])
    with pytest.raises(DataError, match="cannot tell which caption dataset"):
        load_caption_dataset(tmp_path)
