"""Shared fixtures of the index/search/tags/moderation/alt-text tests (import them by name).

The tiny random ``builtin`` checkpoint's EfficientNet trunk is so deep and so randomly initialised that
its output vanishes (about 1e-10): every image would get the same embedding. ``calibrated_builtin``
re-estimates its BatchNorm statistics on random inputs once, so that embeddings depend on the image,
which is what search tests need to have a right answer.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from blipkit.tasks.generation import GenerationSettings

# Captions in tests: short and greedy, to keep the CPU time small.
FAST = GenerationSettings(decoding="greedy", max_new_tokens=5, min_new_tokens=1)


def calibrated_builtin(path: Path) -> Path:
    """A tiny random builtin checkpoint whose image embeddings differ between images."""
    import torch
    from torch import nn

    from blipkit.models.builtin import BuiltinBlipModel
    from blipkit.testing import make_tiny_checkpoint

    make_tiny_checkpoint("builtin", path)
    model = BuiltinBlipModel.from_pretrained(path)
    trunk = model.vision_model.trunk
    for module in trunk.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a cumulative average: one batch sets the statistics
    trunk.train()
    with torch.no_grad():
        trunk(torch.randn(32, 3, 32, 32, generator=torch.Generator().manual_seed(0)))
    model.eval()
    model.save_pretrained(path)
    return path


def make_images(folder: Path, n: int, *, seed: int = 0, prefix: str = "img") -> list[Path]:
    """``n`` distinct small PNG images (random blocks of colour, varied sizes)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        blocks = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        size = (32 + 4 * (i % 5), 24 + 8 * (i % 3))
        image = Image.fromarray(blocks).resize(size, Image.NEAREST)
        path = folder / f"{prefix}{i:03d}.png"
        image.save(path)
        paths.append(path)
    return paths


# Each test module that imports these fixtures gets its own copy of their definitions, so "session" scope
# alone would still build the checkpoint once per module: this cache makes it once per test run.
_SHARED: dict[str, object] = {}


@pytest.fixture(scope="session")
def tiny_builtin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if "checkpoint" not in _SHARED:
        _SHARED["checkpoint"] = calibrated_builtin(tmp_path_factory.mktemp("ckpt") / "tiny-builtin")
    return _SHARED["checkpoint"]  # type: ignore[return-value]


@pytest.fixture(scope="session")
def blip(tiny_builtin: Path):
    import blipkit

    if "blip" not in _SHARED:
        _SHARED["blip"] = blipkit.load(str(tiny_builtin))
    return _SHARED["blip"]


@pytest.fixture(scope="session")
def cli_app():
    """A typer app with only this area's commands (the rest of the CLI may be mid-change)."""
    import typer

    from blipkit.cli import index as index_cli

    app = typer.Typer()
    index_cli.register(app)
    return app


def test_calibrated_checkpoint_tells_images_apart(blip, tmp_path: Path) -> None:
    vecs = blip.embed_images([str(p) for p in make_images(tmp_path, 4)])
    sims = vecs @ vecs.T
    assert np.allclose(np.diag(sims), 1.0, atol=1e-5)
    assert (sims[~np.eye(4, dtype=bool)] < 0.999).all()
