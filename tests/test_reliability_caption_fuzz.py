"""Mutated image files through the whole caption path: every input gets a caption or an error row.

tests/test_fuzz_images.py holds ``load_image`` to its contract; this test holds ``Blip.caption`` to its
own (one result per input, never an exception) on the same mutated files, so that a file that decodes
but then trips the image processor, the vision encoder or generation is caught too. The inputs are
those of ``scripts/fuzz_images.py --seed 0`` (input ``i`` depends only on the seed and ``i``), plus
valid images of odd shapes and modes that the mutations rarely produce.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from assistant.vision import errors
from assistant.vision.results import CaptionResult
from reliability_scripts import load as load_script

N_MUTATED = 240
fuzz = load_script("fuzz_images")


def _png(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _odd_valid_images() -> list[bytes | Image.Image | np.ndarray]:
    """Valid inputs at the edges of what load_image accepts: each must get a caption."""
    return [
        _png(Image.new("RGB", (1, 1), "red")),
        _png(Image.new("L", (1, 4000))),  # extreme aspect ratios reach the resize with a 1-pixel side
        _png(Image.new("RGB", (4000, 1), "blue")),
        _png(Image.new("1", (3, 2))),
        _png(Image.new("I;16", (5, 7))),
        _png(Image.new("RGBA", (9, 9), (0, 0, 0, 0))),  # fully transparent: composited on white
        _png(Image.new("F", (4, 4)), "TIFF"),
        np.zeros((2, 3), dtype=np.uint8),
        np.ones((2, 2, 4), dtype=np.float32),
        Image.new("CMYK", (6, 6)),
        Image.new("P", (6, 6)),
    ]


def _error_codes() -> set[str]:
    classes = [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, errors.VisionError)]
    return {c.code for c in classes}


@pytest.fixture(scope="module")
def caption_blip(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    import torch

    from assistant import vision
    from assistant.vision.testing import make_tiny_checkpoint

    torch.set_num_threads(1)
    return vision.load(make_tiny_checkpoint("caption", tmp_path_factory.mktemp("fuzz_caption") / "m"))


def _check_rows(inputs: list[object], results: list[CaptionResult]) -> tuple[int, int]:
    assert len(results) == len(inputs), "one result per input, in order"
    codes = _error_codes()
    ok = failed = 0
    for i, result in enumerate(results):
        assert isinstance(result, CaptionResult), i
        if result.ok:
            assert isinstance(result.caption, str), f"input {i}: ok row without a caption"
            assert result.confidence is not None and 0.0 <= result.confidence <= 1.0 + 1e-6, i
            ok += 1
        else:
            assert result.caption is None, f"input {i}: a failed row must not carry a caption"
            assert result.error_code in codes, f"input {i}: unknown error code {result.error_code!r}"
            assert result.error, i
            assert set(result.to_dict()) >= {"image", "error", "error_code"}
            failed += 1
    return ok, failed


@pytest.mark.filterwarnings("ignore")  # PIL warns about each corrupt tag it skips
def test_mutated_files_through_caption_give_caption_or_error_row(caption_blip) -> None:  # type: ignore[no-untyped-def]
    seeds = fuzz.seed_images()
    inputs: list[object] = [fuzz.make_input(0, i, seeds)[1] for i in range(N_MUTATED)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # Small batches mix good and bad inputs in one vision pass, the case where one bad input could
        # cost its neighbours their captions.
        results = caption_blip.caption(inputs, decoding="greedy", max_new_tokens=4, batch_size=8)
    ok, failed = _check_rows(inputs, results)
    # The run exercises both paths: seed 0 decodes about a fifth of its inputs (scripts/fuzz_images.py).
    assert ok >= N_MUTATED // 10 and failed >= N_MUTATED // 2, (ok, failed)
    for result in results:
        if not result.ok:
            assert result.error_code in {cls.code for cls in (
                errors.ImageError, errors.ImageDecodeError, errors.ImageTooLargeError
            )}, result


def test_odd_valid_images_all_get_captions(caption_blip) -> None:  # type: ignore[no-untyped-def]
    inputs = _odd_valid_images()
    results = caption_blip.caption(inputs, decoding="greedy", max_new_tokens=4, batch_size=4)
    ok, _ = _check_rows(inputs, results)  # type: ignore[arg-type]
    assert ok == len(inputs), [r.to_dict() for r in results if not r.ok]


def test_bad_inputs_do_not_cost_good_neighbours_their_captions(caption_blip) -> None:  # type: ignore[no-untyped-def]
    good = _png(Image.new("RGB", (20, 10), "green"))
    alone = caption_blip.caption([good], decoding="greedy", max_new_tokens=4)[0].caption
    inputs = [b"", good, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, good, "/no/such/file.jpg", 12345, good]
    results = caption_blip.caption(inputs, decoding="greedy", max_new_tokens=4, batch_size=8)
    _check_rows(inputs, results)
    assert [r.ok for r in results] == [False, True, False, True, False, False, True]
    # The same image gives the same caption whether its batch holds failures or not.
    assert {r.caption for r in results if r.ok} == {alone}
