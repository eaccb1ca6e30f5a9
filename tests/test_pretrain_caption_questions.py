"""Pre-training's caption-derived questions (issue #23 point 5): a recipe's VQA source can be a caption set
whose captions are turned into questions, and any source can be weighed by repeating it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.training.config import DataSource, load_config
from assistant.training.pretrain_data import _caption_rows, _vqa_rows

ROOT = Path(__file__).resolve().parents[1]
CAPTIONS = [
    "two dogs are running on the grass .",
    "two brown dogs run through the grass .",
    "a red ball lies on the grass near two dogs .",
    "two dogs are playing on the grass .",
    "dogs chase a red ball in a park .",
]


@pytest.fixture()
def flickr_like(tmp_path: Path) -> Path:
    """A Karpathy-style file: one train image whose captions agree on dogs, grass, a red ball, and two
    dogs; one test image that must never be asked about in a train-split source."""
    images = [
        {"filename": "dogs.jpg", "split": "train", "sentences": [{"raw": c} for c in CAPTIONS]},
        {"filename": "test.jpg", "split": "test", "sentences": [{"raw": "a man in a blue shirt ."}] * 5},
    ]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images}))
    return path


def test_a_caption_set_becomes_questions_with_their_answers(flickr_like: Path) -> None:
    rows = _vqa_rows(DataSource(path=str(flickr_like), split="train", caption_questions=True))
    asked = {(q, a) for _, q, a in rows}
    assert ("what color is the ball?", "red") in asked
    assert ("how many dogs are there?", "2") in asked
    presence = sorted(a for q, a in asked if q.startswith("is there"))
    assert presence == ["no", "yes"]  # one thing two captions name, one that no caption names
    assert ("is there a person in the picture?", "yes") not in asked
    assert {Path(image).name for image, _, _ in rows} == {"dogs.jpg"}  # the split is kept


def test_kinds_pick_questions_and_repeat_weighs_a_source(flickr_like: Path) -> None:
    colour = _vqa_rows(DataSource(path=str(flickr_like), split="train", caption_questions=True,
                                  kinds=["colour"]))
    assert [(q, a) for _, q, a in colour] == [("what color is the ball?", "red")]
    tripled = _vqa_rows(DataSource(path=str(flickr_like), split="train", caption_questions=True,
                                   kinds=["colour"], repeat=3))
    assert tripled == colour * 3
    captions = _caption_rows(DataSource(path=str(flickr_like), split="train", repeat=2))
    assert len(captions) == 2 * len(CAPTIONS)


def test_max_per_answer_caps_the_commonest_answer_and_keeps_the_rare_ones(tmp_path: Path) -> None:
    images = [{"filename": f"{n}-{i}.jpg", "split": "train",
               "sentences": [{"raw": f"{word} dogs run on the grass ."}] * 3}
              for n, word, copies in ((2, "two", 9), (3, "three", 2)) for i in range(copies)]
    path = tmp_path / "captions.json"
    path.write_text(json.dumps({"images": images}))
    source = {"path": str(path), "split": "train", "caption_questions": True, "kinds": ["count"]}
    every = _vqa_rows(DataSource(**source))
    assert sorted(a for _, _, a in every) == ["2"] * 9 + ["3"] * 2
    capped = _vqa_rows(DataSource(**source, max_per_answer=4))
    assert sorted(a for _, _, a in capped) == ["2"] * 4 + ["3"] * 2
    assert capped == [r for r in every if r in capped]  # a subset, in the source's order
    assert capped == _vqa_rows(DataSource(**source, max_per_answer=4))  # seeded


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"caption_questions": True, "path": "x.json", "kinds": ["colours"]}, "unknown caption question"),
        ({"caption_questions": True}, "needs the path of a caption set"),
        ({"path": "x.json", "kinds": ["colour"]}, "for caption_questions sources only"),
        ({"path": "x.json", "repeat": 0}, "repeat must be an integer >= 1"),
        ({"path": "x.json", "repeat": 1.5}, "repeat must be an integer >= 1"),
        ({"path": "x.json", "max_per_answer": 0}, "max_per_answer must be an integer >= 1"),
    ],
)
def test_a_wrong_source_is_refused_on_reading(tmp_path: Path, source: dict, message: str) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"data": {"vqa": [source]}}))
    with pytest.raises(ValueError, match=message):
        load_config(recipe)


def test_the_questions_recipe_continues_the_builtin_model_on_train_data_only() -> None:
    config = load_config(ROOT / "resources/models/builtin/recipe-questions.yaml")
    assert (ROOT / config.init / "model.safetensors").exists()  # init is relative to the repository root
    derived = [s for s in config.data.vqa if s.caption_questions]
    assert {k for s in derived for k in s.kinds or ()} == {"presence", "colour", "count", "activity", "place"}
    assert all(s.split == "train" for s in [*derived, *config.data.captions])
    assert config.train.amp == "off"


@pytest.mark.parametrize("recipe", ["recipe.yaml", "recipe-questions.yaml", "recipe-questions-2.yaml"])
def test_the_recipes_find_the_shared_data(recipe: str) -> None:
    if not (ROOT.parent / "shared" / "data" / "flickr8k").is_dir():
        pytest.skip("the shared data are not beside this checkout")
    config = load_config(ROOT / "resources/models/builtin" / recipe)
    sources = [*config.data.captions, *config.data.vqa, config.data.val_captions]
    paths = [s.path for s in sources if s and s.path]
    assert paths
    assert all(Path(p).exists() for p in paths), paths


def test_screens_are_drawn_once_captioned_with_their_kind_and_read_as_captions(
    tmp_path: Path, flickr_like: Path
) -> None:
    from PIL import Image

    (flickr_like.parent / "images").mkdir()
    Image.new("RGB", (60, 40), (20, 120, 40)).save(flickr_like.parent / "images" / "dogs.jpg")
    source = DataSource(screens=2, path=str(flickr_like), split="train", repeat=2)
    rows = _caption_rows(source, tmp_path / "run")
    assert len(rows) == 2 * 7 * 2
    by_file = {Path(image).name: caption for image, caption in rows}
    assert len(by_file) == 14
    kind_words = {"document": "document", "web-page": "web", "chart": "chart", "chat": "chat",
                  "dialog": ("dialog", "message box"), "code-editor": "code", "slide": "slide"}
    for name, caption in by_file.items():
        words = kind_words[name.rsplit("-", 2)[0]]
        assert any(w in caption for w in ((words,) if isinstance(words, str) else words)), (name, caption)
        with Image.open(tmp_path / "run" / "screens-2" / "images" / name) as image:
            assert max(image.size) <= 640
    # the web pages show the train photo and say what it shows, in its caption's words
    assert all("two dogs are running on the grass" in c for n, c in by_file.items() if n.startswith("web"))
    stamp = (tmp_path / "run" / "screens-2" / "captions.json").stat().st_mtime_ns
    assert _caption_rows(source, tmp_path / "run") == rows  # reproducible, and not drawn again
    assert (tmp_path / "run" / "screens-2" / "captions.json").stat().st_mtime_ns == stamp


def test_a_screen_source_needs_a_positive_count(tmp_path: Path) -> None:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(json.dumps({"data": {"captions": [{"screens": 0}]}}))
    with pytest.raises(ValueError, match="screens must be an integer >= 1"):
        load_config(recipe)
