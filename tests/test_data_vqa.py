"""VQA dataset loaders: VQAv2 question/annotation pairs (DAQUAR and COCO naming) and JSONL rows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from assistant.datasets import VQARecord, check_vqa_dataset, load_vqa_dataset
from assistant.vision.errors import DataError


def make_image(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (10, 120, 200)).save(path)
    return path


def write_json(path: Path, data: object) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def daquar_like(folder: Path, split: str = "train", *, with_annotations: bool = True) -> Path:
    make_image(folder / "images" / "image3.jpg")
    make_image(folder / "images" / "image5.jpg")
    questions = [
        {"image_id": 3, "question": "what is on the desk ?", "question_id": 11},
        {"image_id": 5, "question": "what is under the table ?", "question_id": 25},
    ]
    write_json(folder / f"tiny_{split}_questions.json", {"data_subtype": split, "questions": questions})
    if with_annotations:
        annotations = [
            {
                "image_id": 3,
                "question_id": 11,
                "multiple_choice_answer": "lamp",
                "answers": [{"answer": "lamp", "answer_id": 1}],
            },
            {
                "image_id": 5,
                "question_id": 25,
                "multiple_choice_answer": "paper, book",
                "answers": [{"answer": "paper", "answer_id": 1}, {"answer": "book", "answer_id": 2}],
            },
        ]
        write_json(
            folder / f"tiny_{split}_annotations.json", {"data_subtype": split, "annotations": annotations}
        )
    return folder / f"tiny_{split}_questions.json"


EXPECTED_TRAIN = [
    ("11", "3", "what is on the desk ?", ["lamp"], "lamp", "train"),
    ("25", "5", "what is under the table ?", ["paper", "book"], "paper, book", "train"),
]


def summary(records: list[VQARecord]) -> list[tuple]:
    return [(r.question_id, r.image_id, r.question, r.answers, r.answer, r.split) for r in records]


def test_vqav2_pair_from_questions_file(tmp_path: Path) -> None:
    records = load_vqa_dataset(daquar_like(tmp_path))
    assert summary(records) == EXPECTED_TRAIN
    assert records[0].image == str(tmp_path / "images" / "image3.jpg")


def test_vqav2_pair_from_annotations_file_or_folder_and_split(tmp_path: Path) -> None:
    daquar_like(tmp_path, "train")
    daquar_like(tmp_path, "test")
    assert summary(load_vqa_dataset(tmp_path / "tiny_train_annotations.json")) == EXPECTED_TRAIN
    assert summary(load_vqa_dataset(tmp_path, split="train")) == EXPECTED_TRAIN
    assert {r.split for r in load_vqa_dataset(tmp_path, split="test")} == {"test"}
    with pytest.raises(DataError, match="cannot pick one VQA questions file"):
        load_vqa_dataset(tmp_path)


def test_test_questions_without_annotations_load_with_empty_answers(tmp_path: Path) -> None:
    records = load_vqa_dataset(daquar_like(tmp_path, "test", with_annotations=False))
    assert [(r.answers, r.answer) for r in records] == [([], ""), ([], "")]


def test_question_missing_from_annotations_is_reported(tmp_path: Path) -> None:
    questions = daquar_like(tmp_path)
    data = json.loads(questions.read_text())
    data["questions"].append({"image_id": 3, "question": "how many chairs ?", "question_id": 99})
    questions.write_text(json.dumps(data))
    report = check_vqa_dataset(questions)
    assert report.counts == {"no_annotation": 1}
    assert report.examples("no_annotation") == ["question 99"]
    assert len(load_vqa_dataset(questions, on_bad="skip")) == 2


def test_coco_style_image_names(tmp_path: Path) -> None:
    make_image(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    write_json(
        tmp_path / "v2_OpenEnded_mscoco_val2014_questions.json",
        {
            "data_subtype": "val2014",
            "questions": [{"image_id": 42, "question": "is it blue?", "question_id": 420}],
        },
    )
    write_json(
        tmp_path / "v2_mscoco_val2014_annotations.json",
        {
            "data_subtype": "val2014",
            "annotations": [
                {
                    "image_id": 42,
                    "question_id": 420,
                    "multiple_choice_answer": "yes",
                    "answers": [{"answer": "yes"}] * 9 + [{"answer": "no"}],
                }
            ],
        },
    )
    (record,) = load_vqa_dataset(tmp_path, split="validation", image_root=tmp_path)
    assert record.image == str(tmp_path / "val2014" / "COCO_val2014_000000000042.jpg")
    assert record.answers == ["yes"] * 9 + ["no"]
    assert (record.answer, record.split) == ("yes", "val")


def test_unfound_images_are_reported_with_the_patterns_tried(tmp_path: Path) -> None:
    write_json(
        tmp_path / "q_questions.json",
        {
            "questions": [{"image_id": 7, "question": "what ?", "question_id": 1}],
        },
    )
    report = check_vqa_dataset(tmp_path / "q_questions.json")
    assert report.counts == {"missing_image": 1}
    assert report.examples("missing_image") == [str(tmp_path / "images" / "image7.jpg")]
    assert "image<id>.jpg, COCO_<subtype>_<12-digit id>.jpg" in report.format()


def test_jsonl_rows_with_answers_list_or_single_answer(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    rows = [
        {"image": "a.jpg", "question": "what color?", "answers": ["red", "red", "blue"], "question_id": "q1"},
        {"image": "a.jpg", "question": "is it?", "answer": "yes"},
        {"image": "a.jpg", "question": "unanswered?"},
    ]
    path = tmp_path / "vqa.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = load_vqa_dataset(path)
    assert [(r.question_id, r.answers, r.answer, r.image_id) for r in records] == [
        ("q1", ["red", "red", "blue"], "red", "a.jpg"),
        ("2", ["yes"], "yes", "a.jpg"),  # no question_id: the line number stands in
        ("3", [], "", "a.jpg"),
    ]


def test_json_list_rows_blip_vqa_style(tmp_path: Path) -> None:
    make_image(tmp_path / "a.jpg")
    write_json(
        tmp_path / "vqa_test.json",
        [
            {"question_id": 5, "image": "a.jpg", "question": "q?", "answer": ["x", "y", "y"]},
        ],
    )
    (record,) = load_vqa_dataset(tmp_path / "vqa_test.json")
    assert (record.question_id, record.answers, record.answer) == ("5", ["x", "y", "y"], "y")


def test_rows_without_question_column_fail_clearly(tmp_path: Path) -> None:
    path = tmp_path / "vqa.jsonl"
    path.write_text(json.dumps({"image": "a.jpg", "query": "what?"}) + "\n")
    with pytest.raises(DataError, match=r"no question column.*image, query"):
        load_vqa_dataset(path)


def test_annotations_without_questions_file(tmp_path: Path) -> None:
    write_json(tmp_path / "only_annotations.json", {"annotations": [{"question_id": 1, "answers": []}]})
    with pytest.raises(DataError, match="no questions file"):
        load_vqa_dataset(tmp_path / "only_annotations.json")


def test_split_of_a_file_without_split_information(tmp_path: Path) -> None:
    make_image(tmp_path / "images" / "image1.jpg")
    write_json(
        tmp_path / "q_questions.json", {"questions": [{"image_id": 1, "question": "?", "question_id": 1}]}
    )
    assert len(load_vqa_dataset(tmp_path / "q_questions.json")) == 1
    with pytest.raises(DataError, match="no split information"):
        load_vqa_dataset(tmp_path / "q_questions.json", split="train")
    daquar_like(tmp_path / "d", "train")
    with pytest.raises(DataError, match="holds the 'train' split, not 'test'"):
        load_vqa_dataset(tmp_path / "d" / "tiny_train_questions.json", split="test")
