"""Decompression bombs and huge canvases are refused from their header, with bounded memory.

The files and the subprocess measurement come from tests/reliability/bombs.py (which also prints the
figures recorded in tests/reliability/README.md).
"""

from __future__ import annotations

import inspect
import io
from pathlib import Path

import pytest
from PIL import Image

from assistant.vision import defaults
from assistant.vision.errors import ImageTooLargeError
from assistant.vision.io import load_image
from reliability_scripts import load as load_script

bombs = load_script("bombs")
CASES = bombs.cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name.split(" (")[0] for c in CASES])
def test_crafted_files_announce_the_size_they_claim(case, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """The bombs are real: with every limit off, Pillow reads the huge size from their headers."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)
    with Image.open(io.BytesIO(case.make())) as im:
        assert im.width * im.height == case.pixels


def test_bombs_are_refused_with_bounded_memory(tmp_path: Path) -> None:
    baseline, results = bombs.run(folder=tmp_path)
    assert 10 < baseline < 500, baseline
    by_name = {m.name: m for m in results}
    for m in results:
        if m.expect_refused:
            assert m.outcome == "ImageTooLargeError", (m.name, m.outcome, m.detail)
            assert m.growth_mb < bombs.DEFAULT_BOUND_MB, (m.name, m.growth_mb)
    # The measurement can see a decode: the allowed 4000x4000 control costs its pixels (64 MB as RGBX).
    control = next(m for name, m in by_name.items() if name.startswith("control"))
    assert control.outcome == "ok"
    assert control.growth_mb > 48, control.growth_mb


def test_limit_defaults_to_the_single_source_of_truth() -> None:
    from assistant.vision.blip import Blip
    from assistant.vision.runtime.encoding import encode_images

    for fn in (load_image, encode_images, Blip.encode_images):
        assert inspect.signature(fn).parameters["max_pixels"].default == defaults.MAX_IMAGE_PIXELS, fn
    assert 0 < defaults.MAX_IMAGE_PIXELS < Image.MAX_IMAGE_PIXELS * 2  # below Pillow's own hard ceiling


def test_limit_is_configurable_to_the_pixel() -> None:
    data = bombs.small_png(100, 50)
    assert load_image(data, max_pixels=5000).size == (100, 50)
    with pytest.raises(ImageTooLargeError, match="100x50"):
        load_image(data, max_pixels=4999)


def test_blip_encode_images_passes_the_limit_on(tmp_path: Path) -> None:
    from assistant import vision
    from assistant.vision.testing import make_tiny_checkpoint

    blip = vision.load(make_tiny_checkpoint("builtin", tmp_path / "m"))
    data = bombs.small_png(100, 50)
    feats = blip.encode_images([data, data], max_pixels=4999)
    assert sorted(feats.errors) == [0, 1]
    assert all(e.code == ImageTooLargeError.code for e in feats.errors.values())
    assert blip.encode_images([data], max_pixels=5000).rows == [0]


def test_pillow_ceiling_holds_even_when_the_limit_is_lifted() -> None:
    """A caller may raise max_pixels, never past Pillow's DecompressionBombError: 2.5 Gpx stays refused."""
    with pytest.raises(ImageTooLargeError):
        load_image(bombs.png_bomb(50_000, 50_000), max_pixels=10**12)
