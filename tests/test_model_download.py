"""Model downloads on request: sized first, progress, cancel, resume with HTTP Range, checksums, and a model
folder that appears only complete. Against a local stand-in for the hub (tests/hub_server.py)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from assistant import model_download, model_store
from assistant.model_download import ChecksumError, DownloadCancelled, Downloader, DownloadError, fetch_plan
from hub_server import fake_hub, files_of

BASE = "Salesforce/blip-image-captioning-base"
CONFIG = json.dumps({"architectures": ["BlipForConditionalGeneration"], "model_type": "blip"}).encode()
WEIGHTS = os.urandom(3 * 1024 * 1024 + 123)  # not a real model: the downloader never looks inside


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)  # a user-requested download; the server is local
    monkeypatch.delenv("HF_ENDPOINT", raising=False)
    return tmp_path / "home"


def fake_files() -> dict[str, bytes]:
    return {"config.json": CONFIG, "model.safetensors": WEIGHTS, "vocab.txt": b"[PAD]\n[UNK]\nhello\n",
            "preprocessor_config.json": b"{}", "pytorch_model.bin": b"pickle: never fetched",
            "README.md": b"# never fetched"}


def test_the_size_is_known_before_any_file_is_fetched() -> None:
    with fake_hub({BASE: fake_files()}) as hub:
        plan = fetch_plan("base", endpoint_url=hub.url)
        assert {f.path for f in plan.files} == {"config.json", "model.safetensors", "vocab.txt",
                                                "preprocessor_config.json"}
        assert plan.total_bytes == len(CONFIG) + len(WEIGHTS) + 18 + 2
        assert plan.revision == hub.revision
        assert [s.path for s in hub.log] == [f"/api/models/{BASE}/revision/main"]  # nothing downloaded yet
    assert not (model_store.models_dir() / "base").exists()


def test_the_endpoint_comes_from_hf_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    with fake_hub({BASE: fake_files()}) as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        assert fetch_plan("base").endpoint == hub.url


def test_download_reports_progress_and_installs_a_complete_folder() -> None:
    seen: list[tuple[int, int]] = []
    with fake_hub({BASE: fake_files()}) as hub:
        plan = fetch_plan("base", endpoint_url=hub.url)
        folder = Downloader(plan, progress=lambda done, total, _f: seen.append((done, total))).run()
    assert folder == model_store.models_dir() / "base"
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
    assert not (folder / "pytorch_model.bin").exists() and not (folder / "README.md").exists()
    assert model_store.installed("base") == folder
    assert model_store.installed(BASE) == folder  # the hub id names the same download
    assert not model_store.incomplete_dir("base").exists()
    dones = [d for d, _ in seen]
    assert dones == sorted(dones) and dones[-1] == plan.total_bytes and len(seen) > 5
    assert {t for _, t in seen} == {plan.total_bytes}
    manifest = json.loads((folder / model_store.MANIFEST).read_text())
    assert manifest["revision"] == hub.revision and manifest["repo"] == BASE


def test_cancel_leaves_no_model_folder_and_keeps_the_part_to_resume() -> None:
    cancel = threading.Event()

    def progress(done: int, total: int, file: str) -> None:
        if file == "model.safetensors" and done > 1024 * 1024:
            cancel.set()

    with fake_hub({BASE: fake_files()}) as hub:
        plan = fetch_plan("base", endpoint_url=hub.url)
        with pytest.raises(DownloadCancelled):
            Downloader(plan, progress=progress, cancel=cancel).run()
    assert not (model_store.models_dir() / "base").exists()
    assert model_store.installed("base") is None
    assert 1024 * 1024 <= model_store.partial_bytes("base") < plan.total_bytes


def test_an_interrupted_download_resumes_with_range_and_fetches_no_byte_twice() -> None:
    with fake_hub({BASE: fake_files()}, drop_after={"model.safetensors": 1_000_000}) as hub:
        plan = fetch_plan("base", endpoint_url=hub.url)
        with pytest.raises(DownloadError, match="continues from there"):
            Downloader(plan, retries=0).run()  # the server drops the connection mid-file
        assert model_store.installed("base") is None
        part = model_store.incomplete_dir("base") / "model.safetensors.part"
        offset = part.stat().st_size
        assert offset == 1_000_000
        again = Downloader(fetch_plan("base", endpoint_url=hub.url))
        folder = again.run()
        weights_requests = [s for s in hub.log if s.path.endswith("/model.safetensors")]
        assert [s.range for s in weights_requests] == [None, f"bytes={offset}-"]
        assert weights_requests[1].status == 206
        assert hub.sent_bytes("model.safetensors") == len(WEIGHTS)  # not one byte fetched twice
        assert again.resumed_from == {"model.safetensors": offset}
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_a_dropped_connection_is_resumed_within_one_run() -> None:
    with fake_hub({BASE: fake_files()}, drop_after={"model.safetensors": 500_000}) as hub:
        downloader = Downloader(fetch_plan("base", endpoint_url=hub.url))
        folder = downloader.run()
        assert downloader.resumed_from == {"model.safetensors": 500_000}
        assert hub.sent_bytes("model.safetensors") == len(WEIGHTS)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


def test_a_server_that_ignores_range_restarts_the_file_and_still_verifies() -> None:
    with fake_hub({BASE: fake_files()}, drop_after={"model.safetensors": 500_000}, ignore_range=True) as hub:
        folder = Downloader(fetch_plan("base", endpoint_url=hub.url)).run()
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS


@pytest.mark.parametrize("bad", ["model.safetensors", "vocab.txt"])
def test_a_checksum_mismatch_is_refused(bad: str) -> None:
    with fake_hub({BASE: fake_files()}, wrong_sha={bad}) as hub, pytest.raises(ChecksumError, match=bad):
        Downloader(fetch_plan("base", endpoint_url=hub.url)).run()
    assert model_store.installed("base") is None
    assert not (model_store.models_dir() / "base").exists()
    assert not (model_store.incomplete_dir("base") / (bad + ".part")).exists()  # the damaged part is gone


def test_the_engine_never_sees_a_staging_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant.vision.errors import ModelNotFoundError
    from assistant.vision.runtime.resolve import resolve_checkpoint

    looked: list[Path | None] = []

    def progress(done: int, total: int, file: str) -> None:
        if file == "model.safetensors" and not looked:
            looked.append(model_store.installed("base"))
            with pytest.raises(ModelNotFoundError):  # offline: not the staging folder, not the hub
                monkeypatch.setenv("HF_HUB_OFFLINE", "1")
                resolve_checkpoint("base")
            monkeypatch.delenv("HF_HUB_OFFLINE")

    with fake_hub({BASE: fake_files()}) as hub:
        Downloader(fetch_plan("base", endpoint_url=hub.url), progress=progress).run()
    assert looked == [None]
    # a folder without the manifest (copied by hand, or left by a crash mid-rename) is not loaded either
    (model_store.models_dir() / "base" / model_store.MANIFEST).unlink()
    assert model_store.installed("base") is None


def test_hf_hub_offline_refuses_before_any_request(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with fake_hub({BASE: fake_files()}) as hub:
        with pytest.raises(model_download.OfflineError):
            fetch_plan("base", endpoint_url=hub.url)
        assert hub.log == []


def test_an_unreachable_hub_is_said_in_words() -> None:
    with fake_hub({}) as hub:
        url = hub.url
    with pytest.raises(DownloadError, match="could not reach the model hub"):
        fetch_plan("base", endpoint_url=url)


def test_a_downloaded_tiny_checkpoint_loads_in_the_engine(tiny_models: dict[str, Path],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole path: the hub's files, downloaded, verified, renamed, then loaded by name."""
    from assistant import vision

    with fake_hub({BASE: files_of(tiny_models["caption"])}) as hub:
        folder = Downloader(fetch_plan("base", endpoint_url=hub.url)).run()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # loads from the store, not the hub cache
    blip = vision.load("base", "caption", threads=1)
    assert blip.checkpoint.path == folder


def test_folder_problems_are_specific(tiny_models: dict[str, Path], tmp_path: Path) -> None:
    assert model_store.folder_problem(tiny_models["caption"]) is None
    assert "not a folder" in model_store.folder_problem(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "no config.json" in model_store.folder_problem(empty)
    (empty / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"]}))
    assert "BLIP models only" in model_store.folder_problem(empty)
    (empty / "config.json").write_bytes(CONFIG)
    (empty / "pytorch_model.bin").write_bytes(b"x")
    assert "pickle" in model_store.folder_problem(empty)
    (empty / "model.safetensors").write_bytes(b"x")
    assert "preprocessor_config.json" in model_store.folder_problem(empty)


def test_a_describing_only_model_hands_questions_to_the_downloaded_question_model(
        tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch, images) -> None:
    from assistant.describe import Describer

    repos = {BASE: files_of(tiny_models["caption"]), "Salesforce/blip-vqa-base": files_of(tiny_models["vqa"])}
    with fake_hub(repos) as hub:
        Downloader(fetch_plan("base", endpoint_url=hub.url)).run()
        describer = Describer("base", personal=False)
        assert not describer.ask_model(images[0], "what is this?").ok  # no question model yet: said
        Downloader(fetch_plan("vqa", endpoint_url=hub.url)).run()
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    answer = describer.ask_model(images[0], "what is this?")
    assert answer.ok and answer.answer is not None
    assert describer._questions.checkpoint.path == model_store.models_dir() / "vqa"
    # a follow-up about the same image runs the question model's text side only
    calls: list[int] = []
    describer._questions.checkpoint.model.vision_model.register_forward_hook(lambda *_: calls.append(1))
    for question in ("is there a dog?", "what colour is it?"):
        assert describer.ask_model(images[0], question).ok
    assert calls == [], "a follow-up ran the question model's vision encoder again"
    assert describer.ask_model(images[1], "is there a dog?").ok
    assert calls == [1]  # a new image is encoded, once


def test_the_download_side_is_light() -> None:
    """The settings window imports the store and the downloader: neither may pull in torch or Qt."""
    import subprocess
    import sys

    code = ("import sys\nimport assistant.model_download, assistant.model_store\n"
            "print(sorted(m for m in ('torch', 'transformers', 'PySide6', 'huggingface_hub') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_resuming_survives_the_hubs_redirect_to_its_file_server() -> None:
    """The hub answers a weights URL with a redirect; the Range header must reach the file server."""
    with fake_hub({BASE: fake_files()}, drop_after={"model.safetensors": 700_000}, redirect=True) as hub:
        downloader = Downloader(fetch_plan("base", endpoint_url=hub.url))
        folder = downloader.run()
        served = [s for s in hub.log if s.path.startswith("/cdn/")]
        assert [s.range for s in served] == [None, "bytes=700000-"] and served[1].status == 206
        assert hub.sent_bytes("model.safetensors") == len(WEIGHTS)
    assert (folder / "model.safetensors").read_bytes() == WEIGHTS
