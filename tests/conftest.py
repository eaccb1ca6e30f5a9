"""Shared fixtures: tiny random-weight checkpoints of every kind, and a few generated images."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

# Tests run single-threaded: on this class of machine two OpenMP threads can be 10x slower than one.
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
# The suite pins transformers' float32 path, which many tests compare with transformers token for token. The
# fast path's tests ask for it with fast=True; test_fast.py checks what the unpinned default resolves to.
os.environ.setdefault("BLIP_ASSISTANT_FAST", "0")

REPO = Path(__file__).resolve().parents[1]

# hypothesis keeps a cache (.hypothesis/) in the working directory even with database=None; the repository's
# top level stays the design card's, so it goes to a temporary folder
with contextlib.suppress(ImportError):
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "blip-assistant-hypothesis")
DATA_DIR = Path(os.environ.get("BLIP_ASSISTANT_DATA_DIR", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny checkpoints saved with save_pretrained: caption, vqa, itm (Salesforce classes) and builtin."""
    import torch

    from assistant.vision.testing import KINDS, make_tiny_checkpoint

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiny_models")
    return {kind: make_tiny_checkpoint(kind, root / kind) for kind in KINDS}


def _image(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype("uint8"))


@pytest.fixture(scope="session")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four small photos-to-be (random pixels, different sizes and formats)."""
    folder = tmp_path_factory.mktemp("images")
    _image(0).save(folder / "a.jpg")
    _image(1, (64, 32)).save(folder / "b.png")
    _image(2, (30, 50)).save(folder / "c.webp")
    (folder / "sub").mkdir()
    _image(3).save(folder / "sub" / "d.jpg")
    return folder


@pytest.fixture()
def images() -> list[Image.Image]:
    return [_image(i) for i in range(3)]


@pytest.fixture(scope="module")
def desktop():  # type: ignore[no-untyped-def]
    """A real X server (Xvfb) with a window manager and a tray host, shared by one test module's apps."""
    from desktop import start_tray_host
    from xserver import require, xvfb

    require("Xvfb", "openbox", "xdotool", "espeak-ng")
    with xvfb(1280, 800, wm=True) as server:
        start_tray_host(server)
        yield server
