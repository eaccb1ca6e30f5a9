"""Weight interpolation between two fine-tunings (assistant.training.interpolate), on the tiny built-in
model the other training tests use, and through `blip-assistant model interpolate`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import typer
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from assistant.training.cli import register
from assistant.training.interpolate import interpolate


def _tensors(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


@pytest.fixture()
def pair(tmp_path: Path, tiny_models: dict[str, Path]) -> tuple[Path, Path]:
    before = tmp_path / "before"
    shutil.copytree(tiny_models["builtin"], before)
    after = tmp_path / "after"
    shutil.copytree(before, after)
    moved = {k: (v + 1.0 if v.is_floating_point() else v) for k, v in _tensors(before).items()}
    save_file(moved, after / "model.safetensors", metadata={"format": "pt"})
    return before, after


def test_a_quarter_of_the_way_moves_every_learnt_tensor_a_quarter(
    pair: tuple[Path, Path], tmp_path: Path
) -> None:
    before, after = pair
    out = interpolate(before, after, 0.25, tmp_path / "mix")
    a, b, mix = _tensors(before), _tensors(after), _tensors(out)
    assert mix.keys() == a.keys()
    floats = [k for k in a if a[k].is_floating_point()]
    assert floats
    for key in floats:
        assert mix[key].dtype == a[key].dtype
        torch.testing.assert_close(mix[key].float(), a[key].float() + 0.25 * (b[key] - a[key]).float(),
                                   atol=2e-3, rtol=0)
    with safe_open(out / "model.safetensors", "pt") as f:
        assert f.metadata() == {"format": "pt"}
    # the rest of the folder is the first model's: it loads as the engine loads any model folder
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in before.iterdir())
    from assistant import vision

    assert vision.load(str(out)).caption([_image()], max_new_tokens=3)


def test_the_ends_are_the_inputs(pair: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = pair
    for weight, same in ((0.0, before), (1.0, after)):
        mix = _tensors(interpolate(before, after, weight, tmp_path / f"w{weight}"))
        for key, value in _tensors(same).items():
            assert torch.equal(mix[key], value), (weight, key)


def test_mismatched_models_and_bad_weights_are_refused(pair: tuple[Path, Path], tmp_path: Path) -> None:
    before, after = pair
    fewer = dict(list(_tensors(after).items())[1:])
    save_file(fewer, after / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match="different models"):
        interpolate(before, after, 0.5, tmp_path / "mix")
    with pytest.raises(ValueError, match="between 0 and 1"):
        interpolate(before, before, 1.5, tmp_path / "mix")
    with pytest.raises(ValueError, match="one of the inputs"):
        interpolate(before, after, 0.5, before)
    assert not (tmp_path / "mix").exists()


def test_the_command(pair: tuple[Path, Path], tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    before, after = pair
    result = CliRunner().invoke(app, ["interpolate", str(before), str(after), "--weight", "0.5",
                                      "--out", str(tmp_path / "mix")])
    assert result.exit_code == 0, result.output
    assert "interpolated weights saved to" in result.output
    bad = CliRunner().invoke(app, ["interpolate", str(before), str(after), "--weight", "2",
                                   "--out", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "between 0 and 1" in bad.output


def _image() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 30, 30))
