"""The "Use the GPU" setting (issue #27): an NVIDIA GPU is used when torch sees one, the CPU otherwise.

This machine has no GPU, so the CUDA branch is shown with torch's answer replaced; a real GPU run is
reported as not run unless a GPU machine was lent."""

from __future__ import annotations

import pytest

from assistant import describe, settings


def test_auto_is_the_cpu_without_a_gpu_and_cuda_with_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert describe._resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert describe._resolve_device("auto") == "cuda"
    assert describe._resolve_device("cpu") == "cpu"  # the setting turned off: never the GPU


def test_the_setting_is_on_by_default_and_reaches_the_worker(tiny_models) -> None:
    from assistant.describe import Describer

    assert settings.BY_NAME["model.use_gpu"].default is True
    d = Describer(str(tiny_models["builtin"]), device="auto", personal=False)
    d.load()
    import torch

    assert d.device == ("cuda" if torch.cuda.is_available() else "cpu")
    assert d.load().checkpoint.device.type == d.device
