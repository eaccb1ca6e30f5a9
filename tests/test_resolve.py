"""Finding checkpoints: aliases, folders, the hub (offline-aware), the built-in model."""

from __future__ import annotations

import time

import pytest

from assistant import vision
from assistant.vision.errors import ModelNotFoundError, UnsupportedModelError
from assistant.vision.runtime import resolve


def test_alias_of_missing_hub_model_fails_fast_offline(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = time.monotonic()
    with pytest.raises(ModelNotFoundError) as info:
        resolve.resolve_checkpoint("base")
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "Salesforce/blip-image-captioning-base" in message
    assert "HF_HUB_OFFLINE" in message and "hf download" in message


def test_no_network_fails_with_how_to(monkeypatch, tmp_path) -> None:
    # This sandbox has no route to the hub: the download attempt must fail quickly and clearly.
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_ETAG_TIMEOUT", "3")
    monkeypatch.setenv("HF_HUB_DOWNLOAD_TIMEOUT", "3")
    with pytest.raises(ModelNotFoundError, match="blip-vqa-base"):
        resolve.resolve_checkpoint("Salesforce/blip-vqa-base")


def test_local_folder_and_errors(tiny_models, tmp_path) -> None:
    assert resolve.resolve_checkpoint(tiny_models["vqa"]) == tiny_models["vqa"]
    with pytest.raises(ModelNotFoundError, match=r"no config\.json"):
        resolve.resolve_checkpoint(tmp_path)
    with pytest.raises(ModelNotFoundError, match="alias"):
        resolve.resolve_checkpoint("./does/not/exist")
    for empty in ("", "  "):  # not the current folder
        with pytest.raises(ModelNotFoundError, match="model name is empty"):
            resolve.resolve_checkpoint(empty)


def test_builtin_dir_env_override(tiny_models, monkeypatch) -> None:
    monkeypatch.setenv(resolve.BUILTIN_ENV, str(tiny_models["builtin"]))
    assert vision.load("builtin").tasks == {"caption", "vqa", "itm", "itc"}


def test_non_blip_and_pickle_only_checkpoints_refused(tmp_path) -> None:
    (tmp_path / "config.json").write_text('{"architectures": ["BertModel"], "model_type": "bert"}')
    with pytest.raises(UnsupportedModelError, match="BLIP"):
        vision.load(tmp_path)
    (tmp_path / "config.json").write_text('{"architectures": ["BlipForConditionalGeneration"]}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(ModelNotFoundError, match="safetensors"):
        vision.load(tmp_path)
