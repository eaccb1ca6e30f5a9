"""The Python API: inputs of every kind, one bad image never sinks a batch, shared vision passes."""

from __future__ import annotations

import io

import numpy as np
import pytest

from assistant import vision
from assistant.vision.errors import TextError, UnsupportedModelError
from assistant.vision.tasks.generation import GenerationSettings


@pytest.fixture(scope="module")
def builtin(tiny_models):
    return vision.load(tiny_models["builtin"])


def test_load_reports_tasks_and_checks_task(tiny_models) -> None:
    assert vision.load(tiny_models["caption"]).tasks == {"caption"}
    assert vision.load(tiny_models["itm"]).tasks == {"itm", "itc"}
    assert vision.load(tiny_models["builtin"]).tasks == {"caption", "vqa", "itm", "itc"}
    with pytest.raises(UnsupportedModelError, match="cannot do 'vqa'"):
        vision.load(tiny_models["caption"], task="vqa")


def test_unusable_device_or_dtype_fails_before_loading(tiny_models) -> None:
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no usable CUDA"):
            vision.load(tiny_models["builtin"], device="cuda")
    with pytest.raises(ValueError, match="not a device: 'gpu'"):
        vision.load(tiny_models["builtin"], device="gpu")
    with pytest.raises(ValueError, match="dtype must be one of"):
        vision.load(tiny_models["builtin"], dtype="float8")
    assert vision.load(tiny_models["builtin"], dtype="BF16", fast=False).checkpoint.dtype == torch.bfloat16


def test_wrong_head_fails_with_clear_error(tiny_models, images) -> None:
    blip = vision.load(tiny_models["caption"])
    with pytest.raises(UnsupportedModelError, match="itc"):
        blip.embed_images(images)


def test_every_input_kind(builtin, image_dir, images) -> None:
    path = image_dir / "a.jpg"
    data = path.read_bytes()
    array = np.asarray(images[0])
    results = builtin.caption([str(path), path, data, images[0], array], decoding="greedy", max_new_tokens=4)
    assert [r.ok for r in results] == [True] * 5
    assert results[0].caption == results[1].caption == results[2].caption
    assert results[3].caption == results[4].caption


def test_folder_is_expanded_recursively(builtin, image_dir) -> None:
    results = builtin.caption(image_dir, decoding="greedy", max_new_tokens=3)
    assert sorted(r.image.rsplit("/", 1)[-1] for r in results) == ["a.jpg", "b.png", "c.webp", "d.jpg"]


def test_bad_images_get_their_own_errors_and_rest_completes(builtin, image_dir, tmp_path) -> None:
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes((image_dir / "a.jpg").read_bytes()[:200])
    text = tmp_path / "notes.jpg"
    text.write_text("hello")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    inputs = [image_dir / "a.jpg", truncated, tmp_path / "missing.jpg", text, empty, image_dir / "b.png"]
    results = builtin.caption(inputs, decoding="greedy", max_new_tokens=3)
    codes = [r.error_code for r in results]
    assert codes == [
        None,
        "image_decode_error",
        "image_not_found",
        "image_decode_error",
        "image_decode_error",
        None,
    ]
    assert results[0].caption and results[-1].caption
    assert all(r.error for r in results[1:5])


def test_decompression_bomb_refused(builtin, tmp_path) -> None:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 50000, 50000, 8, 2, 0, 0, 0)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )
    [result] = builtin.caption([bomb])
    assert result.error_code == "image_too_large"


def test_one_vision_pass_feeds_every_task(builtin, images) -> None:
    feats = builtin.encode_images(images)
    assert feats.embeds.shape[0] == 3
    direct = builtin.caption(images, decoding="greedy", max_new_tokens=4)
    shared = builtin.caption(feats, decoding="greedy", max_new_tokens=4)
    assert [r.caption for r in direct] == [r.caption for r in shared]
    np.testing.assert_allclose(builtin.embed_images(feats), builtin.embed_images(images), atol=1e-6)
    answers = builtin.ask(feats, ["what is it?"] * 3)
    assert all(a.ok for a in answers)


def test_embeddings_are_normalised_and_similarity_matches(builtin, images) -> None:
    img = builtin.embed_images(images)
    txt = builtin.embed_texts(["a dog", "a red car on the street"])
    assert img.shape == (3, builtin.embedding_dim) and txt.shape == (2, builtin.embedding_dim)
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(builtin.similarity(img, txt), img @ txt.T, atol=1e-5)


def test_a_negative_batch_size_is_refused_not_a_silent_loss(builtin, images) -> None:
    for call in (lambda: builtin.caption(images, batch_size=-1),
                 lambda: builtin.match(images, "a", batch_size=-1),
                 lambda: builtin.embed_images(images, batch_size=-1)):
        with pytest.raises(ValueError, match="batch size must be >= 1"):
            call()  # it returned [] (every input dropped) before


def test_similarity_of_different_sizes_and_empty_choices_are_refused(builtin, images) -> None:
    with pytest.raises(ValueError, match="256 and 128 dimensions"):
        builtin.similarity(np.ones((2, 256)), np.ones((3, 128)))
    assert builtin.similarity(np.ones((2, 4)), np.ones((3, 4))).shape == (2, 3)
    with pytest.raises(ValueError, match="choices is empty"):  # not a quiet switch to generation
        builtin.ask(images[:1], "what is it?", choices=[])


def test_failed_image_gives_nan_embedding_row(builtin, images) -> None:
    vecs = builtin.embed_images([images[0], b"garbage"])
    assert np.isfinite(vecs[0]).all() and np.isnan(vecs[1]).all()


def test_text_validation(builtin, images) -> None:
    with pytest.raises(TextError, match="empty"):
        builtin.embed_texts(["  "])
    with pytest.raises(TextError, match="characters"):
        builtin.embed_texts(["word " * 5000])
    [result] = builtin.ask(images[:1], "")
    assert result.error_code == "bad_text"


def test_a_bad_text_fails_only_its_own_results(builtin, images) -> None:
    """Texts are batched together; one empty or overlong text must not take its batch-mates down."""
    good = ["a dog on the grass", "a red car"]
    alone = [r.score for r in builtin.match(images[:2], good)]
    results = builtin.match(images[:2], [good[0], "  ", good[1], "word " * 5000])
    assert [r.error_code for r in results] == [None, "bad_text", None, "bad_text"] * 2
    np.testing.assert_allclose([r.score for r in results if r.ok], alone, atol=1e-4)

    answers = builtin.ask(images, ["what is it?", "", "what color is it?"], batch_size=3)
    assert [a.error_code for a in answers] == [None, "bad_text", None]
    assert answers[0].answer and answers[2].answer and "empty" in answers[1].error


def test_several_questions_about_one_image(builtin, images) -> None:
    """One image, many questions: one answer each, the same as asking them one by one."""
    questions = ["what is it?", "what color is it?", "", "how many are there?"]
    answers = builtin.ask(images[:1], questions, batch_size=2)
    assert [a.question for a in answers] == questions and len({a.image for a in answers}) == 1
    assert [a.error_code for a in answers] == [None, None, "bad_text", None]
    for answer in (answers[0], answers[1], answers[3]):
        [alone] = builtin.ask(images[:1], answer.question)
        assert (answer.answer, round(answer.confidence, 4)) == (alone.answer, round(alone.confidence, 4))
    [broken] = builtin.ask([b"not an image"], questions[:2])[:1]
    assert broken.error_code == "image_decode_error"
    with pytest.raises(ValueError, match="2 questions for 3 images"):
        builtin.ask(images, questions[:2])


def test_settings_and_generation_keywords_together_are_refused(builtin, images) -> None:
    with pytest.raises(TypeError, match="num_beams"):
        builtin.caption(images[:1], settings=GenerationSettings(decoding="greedy"), num_beams=5)


def test_long_text_is_truncated_not_refused(builtin) -> None:
    vec = builtin.embed_texts(["dog " * 400])
    assert np.isfinite(vec).all()


def test_nucleus_sampling_varies_and_beam_is_deterministic(builtin, images) -> None:
    import torch

    beam = [builtin.caption(images[:1], max_new_tokens=6)[0].caption for _ in range(2)]
    assert beam[0] == beam[1]
    torch.manual_seed(0)
    samples = {
        builtin.caption(
            images[:1],
            decoding="nucleus",
            top_p=1.0,
            temperature=1.5,
            max_new_tokens=6,
            no_repeat_ngram_size=0,
        )[0].caption
        for _ in range(5)
    }
    assert len(samples) > 1


def test_pil_image_from_bytes_io(builtin, image_dir) -> None:
    from PIL import Image

    img = Image.open(io.BytesIO((image_dir / "b.png").read_bytes()))
    assert builtin.caption([img], max_new_tokens=3)[0].ok


@pytest.mark.parametrize(("bad", "message"), [
    ({"decoding": "nucleus", "top_p": 2.0}, "top_p"), ({"top_p": 0.0}, "top_p"),
    ({"top_p": float("nan")}, "top_p"), ({"decoding": "nucleus", "temperature": 0.0}, "temperature"),
    ({"repetition_penalty": -1.0}, "repetition_penalty"), ({"num_beams": 0}, "num_beams"),
    ({"no_repeat_ngram_size": -1}, "no_repeat_ngram_size"),
])
def test_decoding_settings_out_of_range_are_refused_up_front(builtin, images, bad, message) -> None:
    """Refused when the settings are made, with the name of the setting, not later by transformers (which
    crashed on temperature 0) or never (top_p 2 sampled garbage)."""
    with pytest.raises(ValueError, match=message):
        builtin.caption(images[:1], **bad)


def test_overlong_generation_request_is_capped(builtin, images) -> None:
    # the tiny model has 64 positions: 500 new tokens must be capped, not crash inside transformers
    [result] = builtin.caption(images[:1], decoding="greedy", max_new_tokens=500, min_new_tokens=500)
    assert result.ok and len(result.caption.split()) < 64
    # a prompt that fills every position leaves nothing to write: a clear error, not an IndexError
    positions = builtin.checkpoint.text_config.max_position_embeddings
    [result] = builtin.caption(images[:1], prompt="word " * positions)
    assert result.error_code == "bad_text" and f"this model reads at most {positions - 1}" in result.error
    [result] = builtin.caption(images[:1], prompt="word", decoding="greedy", max_new_tokens=positions)
    assert result.ok and result.caption.startswith("word")  # a prompt that fits leaves the rest to write


def test_no_repeated_words_keeps_each_content_word_once(builtin, images) -> None:
    """``no_repeat_words`` (the default): a content word said once is never said again; function words and
    sub-word pieces stay free ("a man in a red shirt in a park", "dog ... dogs")."""
    from assistant.vision.tasks.generation import FUNCTION_WORDS

    def content(caption: str) -> list[str]:
        return [w for w in caption.split() if w.isalpha() and w not in FUNCTION_WORDS]

    long = {"decoding": "greedy", "max_new_tokens": 24, "min_new_tokens": 24, "no_repeat_ngram_size": 0}
    plain = builtin.caption(images, no_repeat_words=False, **long)
    guarded = builtin.caption(images, **long)  # on by default
    # the random model loops
    assert any(len(set(content(r.caption))) < len(content(r.caption)) for r in plain)
    for result in guarded:
        words = content(result.caption)
        assert words and len(set(words)) == len(words), result.caption


def test_answers_never_repeat_a_content_word(builtin, images) -> None:
    """Open-ended answers run the same guard as captions ("books, paper, paper, paper" was a real answer)."""
    from assistant.vision import defaults
    from assistant.vision.tasks.generation import GenerationSettings, content_word_mask

    tokenizer, mask = builtin.checkpoint.tokenizer, content_word_mask(builtin.checkpoint)
    vocab = tokenizer.get_vocab()

    def repeats(answer: str) -> bool:
        words = [t for t in tokenizer.tokenize(answer) if mask[vocab[t]]]
        return len(set(words)) < len(words)

    loose = GenerationSettings(decoding="beam", max_new_tokens=defaults.VQA_MAX_NEW_TOKENS, min_new_tokens=1,
                               no_repeat_ngram_size=0, no_repeat_words=False)
    assert any(repeats(a.answer) for a in builtin.ask(images, "what is it?", settings=loose))  # it loops
    answers = builtin.ask(images, "what is it?")
    assert all(a.ok and a.answer and not repeats(a.answer) for a in answers), [a.answer for a in answers]


def test_no_repeated_words_processor_bans_only_generated_content_words(builtin) -> None:
    import torch

    from assistant.vision.tasks.generation import NoRepeatedWords, content_word_mask

    ckpt = builtin.checkpoint
    vocab = ckpt.tokenizer.get_vocab()
    mask = content_word_mask(ckpt)
    word = next(t for t, i in vocab.items() if mask[i])
    piece = next(t for t in vocab if t.startswith("##"))
    prompt_word = next(t for t, i in vocab.items() if mask[i] and t != word)
    bos = ckpt.text_config.bos_token_id
    ids = torch.tensor([[bos, vocab[prompt_word], vocab[word], vocab["a"], vocab[piece]]])
    scores = NoRepeatedWords(mask, prefix_len=2)(ids, torch.zeros(1, len(mask)))
    assert scores[0, vocab[word]] == float("-inf")
    assert scores[0, vocab[prompt_word]] == 0 and scores[0, vocab["a"]] == 0 and scores[0, vocab[piece]] == 0
