"""Fuzz load_image: mutated image files give an RGB image or an ImageError, nothing else, quickly.

The seed files and the mutation operators come from tests/reliability/fuzz_images.py (the long run);
here hypothesis draws the mutations, derandomized so every run tries the same ~300 inputs.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.vision.errors import ImageError
from assistant.vision.io import load_image
from reliability_scripts import load as load_script

fuzz = load_script("fuzz_images")
SEEDS: dict[str, bytes] = fuzz.seed_images()
NAMES = sorted(SEEDS)
OTHERS = [SEEDS[name] for name in NAMES]

_position = st.integers(0, 1 << 20) | st.integers(0, 63)
_payload = st.sampled_from(fuzz.INTERESTING) | st.binary(min_size=1, max_size=8)
_none = st.just(b"")
OPS = st.one_of(
    st.tuples(st.just("flip"), _position, st.integers(0, 7), _none),
    st.tuples(st.just("byte"), _position, st.integers(0, 255), _none),
    st.tuples(st.just("truncate"), _position, st.just(0), _none),
    st.tuples(st.just("splice"), _position, st.integers(0, len(NAMES) - 1), _none),
    st.tuples(st.just("header"), st.integers(0, 63), st.just(0), _payload),
    st.tuples(st.just("insert"), _position, st.just(0), st.binary(min_size=1, max_size=16)),
    st.tuples(st.just("delete"), _position, st.integers(0, 63), _none),
    st.tuples(st.just("dup"), _position, st.integers(0, 255), _none),
    st.just(("fixcrc", 0, 0, b"")),
)


def test_every_seed_is_a_valid_image() -> None:
    """The fuzzer starts from valid files, or it would only ever test the error path."""
    assert {"jpeg", "png", "gif", "webp", "tiff", "bmp"} <= set(NAMES)
    for name, data in SEEDS.items():
        assert load_image(data).mode == "RGB", name


def test_mutations_change_the_bytes() -> None:
    data = SEEDS["png"]
    assert fuzz.apply_ops(data, [("truncate", 10, 0, b"")], OTHERS) == data[:10]
    assert fuzz.apply_ops(data, [("flip", 0, 0, b"")], OTHERS)[0] == data[0] ^ 1
    edited = fuzz.apply_ops(data, [("header", 16, 0, b"\xff\xff"), ("fixcrc", 0, 0, b"")], OTHERS)
    with pytest.raises(ImageError):  # the repaired CRC lets the absurd width reach the size check
        load_image(edited)


@pytest.mark.filterwarnings("ignore")  # PIL warns about each corrupt tag it skips
@settings(
    max_examples=300,
    derandomize=True,
    deadline=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(name=st.sampled_from(NAMES), ops=st.lists(OPS, min_size=1, max_size=4))
def test_mutated_images_give_rgb_or_image_error(name: str, ops: list[tuple[str, int, int, bytes]]) -> None:
    data = fuzz.apply_ops(SEEDS[name], ops, OTHERS)
    try:
        image = load_image(data)
    except ImageError as e:
        assert "<bytes>" in str(e)
        return
    assert image.mode == "RGB"
    assert image.width > 0 and image.height > 0
    image.tobytes()  # really decoded: no lazy surprise left for the caller


def test_fuzz_script_short_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert fuzz.main(["--n", "150", "--seed", "7"]) == 0
    out = capsys.readouterr().out
    assert "inputs: 150" in out
    assert "OK: every input gave an RGB image or an ImageError" in out


def test_fuzz_script_reports_hangs(capsys: pytest.CaptureFixture[str]) -> None:
    # No input can answer within a microsecond: each one must be reported as a hang, and fail the run.
    assert fuzz.main(["--n", "2", "--time-limit", "0.000001"]) == 1
    assert "HANG: input #0" in capsys.readouterr().out
