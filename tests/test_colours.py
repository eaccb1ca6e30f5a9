"""Colour answers checked against the picture's pixels (assistant.vision.tasks.colours)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from assistant.vision.io import THUMBNAIL_SIDE, thumbnail
from assistant.vision.tasks import colours


def _named(rgb: tuple[int, int, int]) -> set[str]:
    found = colours.memberships(np.array([[rgb]], dtype=np.uint8))[0, 0]
    return {c for c, m in zip(colours.COLOURS, found, strict=True) if m}


@pytest.mark.parametrize(("rgb", "names"), [
    ((255, 0, 0), {"red"}),
    ((165, 42, 42), {"brown"}),  # CSS "brown", easy-vqa's
    ((150, 10, 20), {"red", "brown"}),  # deep dark red is both: the model decides between them
    ((240, 130, 130), {"red", "pink"}),  # a red coat's highlight
    ((110, 70, 40), {"brown"}),
    ((255, 255, 255), {"white"}),
    ((0, 0, 0), {"black"}),
    ((128, 128, 128), {"gray"}),
    ((0, 128, 128), {"teal"}),
    ((0, 0, 255), {"blue"}),
    ((20, 30, 90), {"blue"}),
    ((0, 255, 0), {"green"}),
    ((255, 255, 0), {"yellow"}),
    ((255, 165, 0), {"orange"}),
    ((210, 180, 140), {"tan"}),
    ((255, 192, 203), {"pink"}),
    ((128, 0, 128), {"purple"}),
])
def test_pixels_are_named_as_people_name_colours(rgb: tuple[int, int, int], names: set[str]) -> None:
    assert _named(rgb) == names


@pytest.mark.parametrize(("question", "asks"), [
    ("what color is the car?", True),
    ("um, what colour is the dog", True),
    ("What is the COLOR of the sofa?", True),
    ("what colors are the flowers?", True),
    ("is it colourful?", False),
    ("what is the man holding?", False),
])
def test_colour_questions_are_told_apart(question: str, asks: bool) -> None:
    assert colours.is_colour_question(question) is asks


@pytest.mark.parametrize(("question", "asks"), [
    ("what color is the car?", True),
    ("What colours are her shoes", True),
    ("what is the colour of the sofa?", True),
    ("what's the color of the sky", True),
    ("which color does the flag have?", True),
    ("what is white in colour?", False),  # a thing (DAQUAR asks so)
    ("is the car red or blue?", False),
    ("how many colours are there?", False),
])
def test_questions_whose_answer_is_a_colour_are_told_apart(question: str, asks: bool) -> None:
    assert colours.asks_for_colour(question) is asks


def test_only_a_single_colour_word_is_a_colour_answer() -> None:
    assert colours.colour_word("Grey.") == "gray"
    assert colours.colour_word("blue") == "blue"
    assert colours.colour_word("dark blue") is None
    assert colours.colour_word("white, black") is None
    assert colours.colour_word("dog") is None


@pytest.mark.parametrize(("question", "presence", "thing"), [
    ("is there a blue shape?", ("blue", False), "what color is the shape?"),
    ("are there any red cars in the street", ("red", False), "what color are the cars?"),
    ("does the image not contain a grey shape?", ("gray", True), "what color is the shape?"),
    ("is a brown shape present?", ("brown", False), "what color is the shape?"),
    ("is no green shape present?", ("green", True), "what color is the shape?"),
    ("is a red car visible in the picture", ("red", False), "what color is the car?"),
    ("is there any red in the picture?", ("red", False), None),
    ("is the car red?", None, None),
    ("is a car visible?", None, None),
    ("is there a dog present?", None, None),
])
def test_presence_questions_name_the_colour_and_the_thing(question: str, presence: tuple[str, bool] | None,
                                                          thing: str | None) -> None:
    assert colours.colour_presence(question) == presence
    assert colours.thing_colour_question(question) == thing


def test_thumbnail_is_the_model_s_square_view() -> None:
    wide = Image.new("RGB", (800, 200), (255, 0, 0))
    wide.paste((0, 0, 255), (400, 0, 800, 200))  # right half blue
    small = thumbnail(wide)
    assert small.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3) and small.dtype == np.uint8
    assert tuple(small[50, 10]) == (255, 0, 0) and tuple(small[50, -10]) == (0, 0, 255)


def test_a_region_weighs_only_its_own_pixels() -> None:
    pixels = np.zeros((THUMBNAIL_SIDE, THUMBNAIL_SIDE, 3), dtype=np.uint8)
    pixels[:, : THUMBNAIL_SIDE // 2] = (255, 255, 0)  # left half yellow, right half black
    left = np.zeros((THUMBNAIL_SIDE, THUMBNAIL_SIDE))
    left[:, : THUMBNAIL_SIDE // 2] = 1 / (THUMBNAIL_SIDE * THUMBNAIL_SIDE // 2)
    shares = colours.colour_shares(left, pixels)
    assert shares["yellow"] == pytest.approx(1.0) and shares["black"] == pytest.approx(0.0)


@pytest.fixture(scope="module")
def tiny_vqa(tiny_models):  # type: ignore[no-untyped-def]
    from assistant import vision

    torch.set_num_threads(1)
    return {fast: vision.load(str(tiny_models["vqa"]), "vqa", fast=fast) for fast in (False, True)}


@pytest.mark.parametrize("fast", [False, True], ids=["float32", "fast"])
def test_the_region_comes_from_the_question_s_first_encoder_pass(tiny_vqa, fast: bool) -> None:  # type: ignore[no-untyped-def]
    """On a Salesforce-class model, on both paths: one attention map per cross-attention layer (the
    decoder's scoring passes after it are not mixed in), a square grid, a region that sums to 1."""
    from assistant.vision.runtime.encoding import tokenize

    blip = tiny_vqa[fast]
    ckpt = blip.checkpoint
    feats = blip.encode_images([Image.new("RGB", (64, 64), (0, 200, 0))])
    layers = sum(getattr(layer, "crossattention", None) is not None
                 for layer in ckpt.model.text_encoder.encoder.layer)
    with colours._cross_attention(ckpt) as attention:
        colours.rank_answers(ckpt, feats.embeds, ["what color is the box?"], list(colours.COLOURS))
    assert len(attention) == layers
    assert attention[0].shape[-1] == feats.embeds.shape[1]
    ids, _ = tokenize(ckpt, ["what color is the box?"])
    region = colours._region(attention, ids[0], ckpt)
    assert region.shape == (THUMBNAIL_SIDE, THUMBNAIL_SIDE) and region.sum() == pytest.approx(1.0)
    found = colours.grounded_colour(ckpt, feats.embeds, "what color is the box?", feats.thumbnails[0])
    assert found is not None and found[0] in colours.COLOURS
    assert sum(found[2].values()) == pytest.approx(1.0)


@pytest.mark.parametrize("fmt", ["bf16", "int8", "fp32"])
def test_colour_questions_are_answered_on_every_plan(tiny_models, monkeypatch, fmt: str) -> None:  # type: ignore[no-untyped-def]
    """Each precision a CPU's plan can pick. On a bfloat16 plan the absorbed cross-attention keeps its key
    projection in bfloat16 beside a float32 bias: the region's recomputation once raised a dtype error
    there, so a colour question failed on every CPU with bfloat16 units."""
    from assistant import vision
    from assistant.vision.runtime.fast import FastPlan, loading
    from assistant.vision.runtime.fast.plan import _probe

    if not _probe(fmt):
        pytest.skip(f"no {fmt} kernels here")
    plan = FastPlan(image=fmt, text=fmt, encoder=fmt, head=fmt)
    monkeypatch.setattr(loading, "default_plan", lambda device="cpu": plan)
    blip = vision.load(str(tiny_models["vqa"]), "vqa", fast=True)
    assert blip.checkpoint.extras["fast"]["image"] == fmt
    feats = blip.encode_images([Image.new("RGB", (64, 64), (0, 200, 0))])
    found = colours.grounded_colour(blip.checkpoint, feats.embeds, "what color is the box?",
                                    feats.thumbnails[0])
    assert found is not None and found[0] in colours.COLOURS
    assert blip.ask(feats, "what colour is the box?")[0].answer


def test_a_colour_that_is_nowhere_in_the_picture_is_not_the_answer(tiny_vqa) -> None:  # type: ignore[no-untyped-def]
    """Random weights rank colours at random; on a picture that is all one colour, the pixels leave that
    colour the answer unless the model is very sure of another (which random weights are not)."""
    from assistant.vision.tasks.ask import rank_answers

    blip = tiny_vqa[False]
    ckpt = blip.checkpoint
    won = 0
    for rgb, name in (((0, 200, 0), "green"), ((255, 255, 0), "yellow"), ((0, 0, 230), "blue")):
        feats = blip.encode_images([Image.new("RGB", (64, 64), rgb)])
        plain = rank_answers(ckpt, feats.embeds, ["what color is the box?"], list(colours.COLOURS))[0]
        answer, _confidence, scores = colours.grounded_colour(ckpt, feats.embeds, "what color is the box?",
                                                             feats.thumbnails[0])
        won += answer == name
        # the pixels move every absent colour down against the picture's own
        for c in colours.COLOURS:
            assert scores[c] / scores[name] <= plain[c] / plain[name] + 1e-9
    assert won == 3


def _shape_picture(rgb: tuple[int, int, int]) -> Image.Image:
    """An easy-vqa-like picture: one coloured disc on white."""
    from PIL import ImageDraw

    picture = Image.new("RGB", (224, 224), (255, 255, 255))
    ImageDraw.Draw(picture).ellipse((50, 50, 170, 170), fill=rgb)
    return picture


@pytest.fixture(scope="module")
def builtin_vqa():  # type: ignore[no-untyped-def]
    from assistant import vision

    torch.set_num_threads(1)
    return vision.load("builtin", "vqa")


@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 128, 128), (255, 255, 0)], ids=["red", "teal", "yellow"])
def test_the_built_in_model_says_no_to_a_colour_the_picture_does_not_have(builtin_vqa, rgb) -> None:  # type: ignore[no-untyped-def]
    """Generated and ranked yes/no alike, negated questions too; the confidence is high."""
    feats = builtin_vqa.encode_images([_shape_picture(rgb)])
    for question, expected in (("is there a blue shape?", "no"), ("is there not a blue shape?", "yes"),
                               ("does the image contain a gray shape?", "no"),
                               ("does the image not contain a purple shape?", "yes")):
        said = builtin_vqa.ask(feats, question)[0]
        ranked = builtin_vqa.ask(feats, question, choices=["yes", "no"])[0]
        assert said.answer == ranked.answer == expected, question
        assert said.confidence >= 0.95 and ranked.scores[expected] >= 0.95


@pytest.mark.parametrize("rgb", [(255, 0, 0), (0, 160, 0), (0, 0, 230)], ids=["red", "green", "blue"])
def test_the_built_in_model_says_yes_to_the_colour_the_thing_has(builtin_vqa, rgb) -> None:  # type: ignore[no-untyped-def]
    """The colour is there and it is the shape's: "yes" ("no" negated), generated and ranked alike. Before
    the shape's own colour was looked up, the model said "no" to 72 such easy-vqa test questions."""
    name = {(255, 0, 0): "red", (0, 160, 0): "green", (0, 0, 230): "blue"}[rgb]
    feats = builtin_vqa.encode_images([_shape_picture(rgb)])
    asked = ((f"is there a {name} shape?", "yes"), (f"is there not a {name} shape?", "no"),
             (f"is a {name} shape present?", "yes"), (f"is no {name} shape present?", "no"))
    for question, expected in asked:
        said = builtin_vqa.ask(feats, question)[0]
        ranked = builtin_vqa.ask(feats, question, choices=["yes", "no"])[0]
        assert said.answer == ranked.answer == expected, question
        assert said.confidence >= colours.SEEN_CONFIDENCE
        assert ranked.scores[expected] == pytest.approx(ranked.confidence)


def test_the_built_in_model_names_the_colour_of_a_plain_shape(builtin_vqa) -> None:  # type: ignore[no-untyped-def]
    for rgb, name in (((255, 0, 0), "red"), ((0, 160, 0), "green"), ((255, 255, 0), "yellow"),
                      ((0, 0, 0), "black")):
        feats = builtin_vqa.encode_images([_shape_picture(rgb)])
        assert builtin_vqa.ask(feats, "what color is the shape?")[0].answer == name


def test_a_colour_question_is_answered_without_writing_an_answer(builtin_vqa, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The built-in model's answer to "what color is ...?" is the colours' grounded ranking, and "is there a
    blue ...?" with no blue pixel is "no": no answer is generated first to be thrown away (172 and 84 ms
    against 78 ms for another question); other questions in the same call still are."""
    from assistant.vision.tasks import ask

    written: list[list[str]] = []
    generate = ask.answer

    def counting(ckpt, embeds, questions, settings=None):  # type: ignore[no-untyped-def]
        written.append(list(questions))
        return generate(ckpt, embeds, questions, settings)

    monkeypatch.setattr(ask, "answer", counting)
    feats = builtin_vqa.encode_images([_shape_picture((255, 0, 0))])
    results = builtin_vqa.ask(feats, ["what color is the shape?", "what is the shape?",
                                      "what is the colour of the shape", "is there a blue shape?",
                                      "is there a red shape?"])
    assert [r.answer for r in results] == ["red", results[1].answer, "red", "no", "yes"]
    # the red one is there: the model's yes/no is written, then checked against where it looks
    assert written == [["what is the shape?", "is there a red shape?"]]
    assert results[1].answer not in colours.COLOURS and results[3].confidence >= colours.ABSENT_CONFIDENCE


def test_a_spoken_colour_question_gets_a_grounded_spoken_answer(builtin_vqa) -> None:  # type: ignore[no-untyped-def]
    """Through the app's conversation layer: fillers, no question mark, and the answer as a sentence."""
    from assistant import conversation
    from assistant.describe import Describer

    describer = Describer("builtin")
    describer._blip = builtin_vqa
    picture = _shape_picture((0, 0, 230))
    assert conversation.answer(describer, picture, "um, is there a red shape").text == "No."
    said = conversation.answer(describer, picture, "what colour is the shape")
    assert said.answer == "blue" and "blue" in said.text


def test_a_salesforce_model_only_loses_the_colours_the_picture_does_not_have(tiny_vqa) -> None:  # type: ignore[no-untyped-def]
    """The region weighing was measured on the built-in model only: a Salesforce question model keeps a
    colour the picture has, and trades one it does not have for one it has."""
    from assistant.vision.results import AnswerResult

    blip = tiny_vqa[False]
    assert not colours.weighs_regions(blip.checkpoint)
    feats = blip.encode_images([_shape_picture((255, 255, 0))])
    kept = AnswerResult(image="x", question="what color is the shape?", answer="yellow", confidence=0.4)
    blip._check_colour(kept, feats, 0)
    assert (kept.answer, kept.confidence) == ("yellow", 0.4)
    absent = AnswerResult(image="x", question="what color is the shape?", answer="blue", confidence=0.9)
    blip._check_colour(absent, feats, 0)
    assert absent.answer in {"yellow", "white"}
    off_topic = AnswerResult(image="x", question="what is the shape?", answer="blue", confidence=0.9)
    blip._check_colour(off_topic, feats, 0)
    assert off_topic.answer == "blue"


def test_a_choice_between_colours_drops_the_one_the_picture_does_not_have(builtin_vqa) -> None:  # type: ignore[no-untyped-def]
    feats = builtin_vqa.encode_images([_shape_picture((255, 255, 0))])
    for choices in (["blue", "yellow"], ["yellow", "blue"], ["grey", "yellow", "green"]):
        result = builtin_vqa.ask(feats, "is the shape " + " or ".join(choices) + "?", choices=choices)[0]
        assert result.answer == "yellow" and result.confidence == pytest.approx(1.0), choices
        assert sum(result.scores.values()) == pytest.approx(1.0)
    # both there: the model decides, nothing is dropped
    both = builtin_vqa.ask(feats, "is it white or yellow?", choices=["white", "yellow"])[0]
    assert min(both.scores.values()) > 0.0
