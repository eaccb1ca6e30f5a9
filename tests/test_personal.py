"""Corrections and personal models (issue #24): a real SQLite store killed mid-write, CSV import and
export, personal versions trained on a tiny random checkpoint, switched, damaged and resumed after a kill."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(folder))
    return folder


def _photo(path: Path, colour: tuple[int, int, int], size: tuple[int, int] = (900, 600)) -> Path:
    Image.new("RGB", size, colour).save(path)
    return path


# --- the store ------------------------------------------------------------------------------------
def test_add_edit_delete_and_downscale(home: Path, tmp_path: Path) -> None:
    from assistant.personal.corrections import MAX_SIDE, CorrectionError, CorrectionStore

    with CorrectionStore() as store:
        first = store.add(_photo(tmp_path / "a.png", (200, 30, 30)), "  Biscuit  on the sofa ",
                          model_caption="a dog on a couch", model="builtin")
        second = store.add(Image.new("RGB", (50, 40), (0, 0, 255)), "my blue mug")
        assert [c.caption for c in store.list()] == ["Biscuit on the sofa", "my blue mug"]
        assert max(store.image(first).size) == MAX_SIDE
        assert store.get(first).model_caption == "a dog on a couch"
        store.edit(second, "my favourite blue mug")
        assert store.get(second).caption == "my favourite blue mug"
        store.delete(first)
        with pytest.raises(CorrectionError, match="no correction number"):
            store.delete(first)
        with pytest.raises(CorrectionError, match="empty"):
            store.add(Image.new("RGB", (8, 8)), "   ")
        assert store.delete_all() == 1 and store.count() == 0
    assert (home / "corrections.sqlite3").stat().st_mode & 0o077 == 0


WRITER = textwrap.dedent("""
    import sys
    from PIL import Image
    from assistant.personal.corrections import CorrectionStore
    store = CorrectionStore()
    n = 0
    while True:
        cid = store.add(Image.new("RGB", (64, 48), (n % 256, 0, 0)), f"caption {n}")
        print(cid, n, flush=True)  # printed only once add() returned: saved
        n += 1
""")


def test_store_survives_kill_in_the_middle_of_writes(home: Path) -> None:
    """A writer killed with SIGKILL while adding corrections in a loop: every one it confirmed is there,
    exactly once, and the database is intact."""
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER], stdout=subprocess.PIPE, text=True, env=env,
                            cwd=REPO)
    confirmed: list[tuple[int, int]] = []
    assert proc.stdout is not None
    while len(confirmed) < 40:
        line = proc.stdout.readline()
        assert line, "the writer stopped by itself"
        cid, n = map(int, line.split())
        confirmed.append((cid, n))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(home / "corrections.sqlite3")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = dict(db.execute("SELECT id, caption FROM corrections").fetchall())
    captions = list(rows.values())
    for cid, n in confirmed:
        assert rows.get(cid) == f"caption {n}"
        assert captions.count(f"caption {n}") == 1
    assert len(rows) >= len(confirmed)  # at most the one in flight more; never fewer


def test_csv_export_then_import(home: Path, tmp_path: Path) -> None:
    from assistant.personal.corrections import CorrectionStore

    with CorrectionStore() as store:
        store.add(_photo(tmp_path / "a.png", (10, 200, 10)), "the green wall, in the kitchen",
                  model="builtin")
        store.add(_photo(tmp_path / "b.png", (10, 10, 200)), 'my "blue" door')
        out = tmp_path / "export" / "mine.csv"
        out.parent.mkdir()
        assert store.export_csv(out) == 2
        store.delete_all()
        added, refused = store.import_csv(out)
    assert (added, refused) == (2, [])
    assert (tmp_path / "export" / "mine_images").is_dir()
    with CorrectionStore() as store:
        assert [c.caption for c in store.list()] == ["the green wall, in the kitchen", 'my "blue" door']


def test_csv_import_refuses_paths_outside_its_folder(home: Path, tmp_path: Path) -> None:
    from assistant.personal import corrections
    from assistant.personal.corrections import CorrectionError, CorrectionStore

    folder = tmp_path / "set"
    (folder / "pics").mkdir(parents=True)
    _photo(folder / "pics" / "ok.png", (1, 2, 3))
    secret = _photo(tmp_path / "secret.png", (9, 9, 9))
    (folder / "link.png").symlink_to(secret)
    rows = ["image,caption", "pics/ok.png,a fine photo", "../secret.png,outside", f"{secret},absolute",
            "link.png,through a link", "pics/missing.png,gone"]
    (folder / "c.csv").write_text("\n".join(rows) + "\n")
    with CorrectionStore() as store:
        added, refused = store.import_csv(folder / "c.csv")
        assert added == 1 and [c.caption for c in store.list()] == ["a fine photo"]
    assert len(refused) == 4
    assert sum("outside the CSV file's folder" in m for m in refused) == 3
    assert any("no such file" in m for m in refused)

    (folder / "many.csv").write_text("image,caption\n" + "pics/ok.png,x\n" * 30)
    (folder / "bad.csv").write_text("picture,text\npics/ok.png,x\n")
    with CorrectionStore() as store:
        old = corrections.MAX_CSV_ROWS
        corrections.MAX_CSV_ROWS = 20
        try:
            with pytest.raises(CorrectionError, match="30 rows"):
                store.import_csv(folder / "many.csv")
        finally:
            corrections.MAX_CSV_ROWS = old
        with pytest.raises(CorrectionError, match="columns 'image' and 'caption'"):
            store.import_csv(folder / "bad.csv")
        assert store.count() == 1


def test_cli_corrections_import_export_list(home: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    from assistant.cli import main

    _photo(tmp_path / "p.png", (5, 5, 5))
    (tmp_path / "in.csv").write_text("image,caption\np.png,my black cat\n../x.png,no\n")
    assert main(["corrections", "import", str(tmp_path / "in.csv")]) == 2
    out = capsys.readouterr()
    assert "Imported 1 corrections; 1 rows refused." in out.out and "outside" in out.err
    assert main(["corrections", "list"]) == 0
    assert "my black cat" in capsys.readouterr().out
    assert main(["corrections", "export", str(tmp_path / "out.csv")]) == 0
    assert (tmp_path / "out.csv").read_text().splitlines()[1].startswith("out_images/")


# --- personal versions on a tiny checkpoint -------------------------------------------------------------
def _fill(n: int, caption: str = "zebra zebra zebra on a purple moon") -> None:
    from assistant.personal.corrections import CorrectionStore

    with CorrectionStore() as store:
        for i in range(n):
            store.add(Image.new("RGB", (40, 40), (i * 20 % 256, 90, 200 - i * 10)), caption)


def _eager(**kw):
    """A recipe that always accepts (a random tiny model cannot really learn), so versions are made."""
    from assistant.personal.trainer import Recipe

    return Recipe(**{"steps": 8, "lr": 0.05, "min_gain": -0.99, "max_general_loss": 1e6,
                     "checkpoint_every": 4, "user_words_min": 0, **kw})


def _caption(model: Path, image: Image.Image) -> str:
    from assistant.describe import Describer

    return Describer(str(model)).describe(image).caption or ""


def test_versions_switch_change_captions_and_damage_is_refused(
    home: Path, tiny_models: dict[str, Path], capsys: pytest.CaptureFixture
) -> None:
    from assistant.cli import main
    from assistant.personal import trainer, versions

    model = tiny_models["builtin"]
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    base_caption = _caption(model, photo)
    _fill(6)
    said: list[str] = []
    one = trainer.personalize(str(model), recipe=_eager(), progress=lambda t, f: said.append(t))
    assert one.accepted and one.version == 1 and versions.active_choice() == "1"
    assert any("step 8 of 8" in t for t in said) and "kept aside" in one.summary
    size = sum(f.stat().st_size for f in (home / "personal" / "1").iterdir())
    assert size < 5_000_000
    first_caption = _caption(model, photo)
    assert first_caption != base_caption
    two = trainer.personalize(str(model), recipe=_eager(lr=0.2, seed=3))
    assert two.version == 2
    second_caption = _caption(model, photo)

    assert main(["personalize", "--use", "base"]) == 0
    assert _caption(model, photo) == base_caption
    assert main(["personalize", "--use", "1"]) == 0
    assert _caption(model, photo) == first_caption

    # damage version 2: choosing it is refused, version 1 stays in use
    adapter = home / "personal" / "2" / "adapter.safetensors"
    adapter.write_bytes(adapter.read_bytes()[:-100])
    capsys.readouterr()
    assert main(["personalize", "--use", "2"]) == 1
    err = capsys.readouterr().err
    assert "personal model 2 is damaged" in err and "personal model 1 stays in use" in err
    assert versions.active_choice() == "1" and _caption(model, photo) == first_caption
    assert main(["personalize", "--list"]) == 0
    assert "damaged" in capsys.readouterr().err

    # damaged while active (it was chosen before the damage): the one before it is used, with a message
    versions._write_json_atomic(home / "personal" / "active.json", {"active": 2})
    assert _caption(model, photo) == first_caption
    assert "personal model 2 is damaged" in capsys.readouterr().err
    assert second_caption  # (it was a caption while it was whole)

    # another model named with --model: no personal weights
    from assistant.describe import Describer

    assert Describer(str(tiny_models["caption"])).load() is not None


def test_user_words_are_repeated_new_content_words() -> None:
    from assistant.personal.gate import user_words, uses, whole_world

    corrections = ["Biscuit on the blue sofa", "biscuit running in the garden", "Biscuit asleep.",
                   "a man on a cliff", "the sofa by the window", "a sofa and a lamp", "a dog on a sofa"]
    base = ["a dog lying on a couch", "a dog on the grass", "a dog sleeping", "a man climbing a rock",
            "a room with a window", "a lamp in a room", "a dog on a sofa"]
    # "biscuit" (3 corrections, never said by the base model); "sofa" is in 4 but the base model says it;
    # "on", "a", "the" are function words; "cliff" is in one correction only
    assert user_words(corrections, base) == ["biscuit"]
    assert user_words(corrections, base, min_corrections=1) == ["asleep", "biscuit", "blue", "cliff",
                                                                "garden", "running"]
    assert not whole_world(corrections, ["biscuit"])  # 3 of 7: a name among ordinary corrections
    assert whole_world(corrections, ["biscuit", "sofa", "cliff"])  # 7 of 7 (6 would do): a world
    assert uses("Two biscuits on a rug.", ["biscuit"]) and uses("BISCUIT runs", ["biscuit"])
    assert not uses("a dog on a rug", ["biscuit"]) and not uses("", ["biscuit"])


def test_the_personal_model_speaks_only_where_it_says_the_user_s_words(
        home: Path, tiny_models: dict[str, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    """A real (eager) personal version: with its user's words absent from what it says, the description
    is the base model's, word for word; with one it says, its own; a version from before the gate (no
    word list) speaks everywhere, as it did. Switching the words swaps weights, never copies them."""
    from assistant.personal import trainer, versions

    model = tiny_models["builtin"]
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 255, (40, 40, 3), dtype=np.uint8))
    base_caption = _caption(model, photo)
    _fill(3)  # "zebra zebra zebra on a purple moon" three times, then three captions of ordinary words
    from assistant.personal.corrections import CorrectionStore

    with CorrectionStore() as store:
        for i, caption in enumerate(("a red box", "an old tree", "two cups")):
            store.add(Image.new("RGB", (40, 40), (10, 200 - i * 40, 90)), caption)
    assert trainer.personalize(str(model), recipe=_eager(user_words_min=3)).version == 1
    recipe_file = home / "personal" / "1" / versions.RECIPE_FILE
    recipe = json.loads(recipe_file.read_text())
    assert set(recipe["user_words"]) <= {"zebra", "purple", "moon"} and recipe["user_words"]

    def with_words(words) -> str:  # type: ignore[no-untyped-def]
        recipe_file.write_text(json.dumps({**recipe, "user_words": words}))
        return _caption(model, photo)

    personal = with_words(None)
    assert personal != base_caption  # the version does change what is said
    assert with_words([]) == base_caption  # no word of the user's: the base model describes it
    assert with_words(["qqqq"]) == base_caption
    spoken = [w for w in personal.lower().split() if w.isalpha() and len(w) > 3]
    assert spoken and with_words(spoken[:1]) == personal  # it says one of them: its own caption

    import torch

    from assistant import vision
    from assistant.personal.gate import gate_of

    recipe_file.write_text(json.dumps({**recipe, "user_words": ["qqqq"]}))
    blip = vision.load(str(model), "caption", fast=False)
    versions.apply_active(blip, str(model))
    gate = gate_of(blip)
    params = list(gate._base)
    assert any(not torch.equal(p.data, gate._base[p]) for p in params)  # merged: not the base weights
    before = [p.data_ptr() for p in params]
    with gate.base():
        assert all(p.data_ptr() == gate._base[p].data_ptr() for p in params)
    assert [p.data_ptr() for p in params] == before  # the same tensors back, not copies
    recipe_file.write_text(json.dumps({**recipe, "user_words": "zebra"}))  # not a list: refused
    assert _caption(model, photo) == base_caption

    # On the fast path (the default on CPUs with int8 kernels), the merged model and the gate's base
    # layers are converted alike: without the user's words the caption is the fast base model's.
    from assistant.describe import Describer
    from assistant.vision.runtime.fast import Int8Linear

    monkeypatch.setenv("BLIP_ASSISTANT_FAST", "1")
    fast_base = Describer(str(model), personal=False).describe(photo).caption
    recipe_file.write_text(json.dumps({**recipe, "user_words": []}))
    describer = Describer(str(model))
    assert describer.describe(photo).caption == fast_base
    blip = describer.load()
    assert "fast" in blip.checkpoint.extras
    gate = gate_of(blip)
    assert gate is not None and gate._layers
    decoder_layer = blip.checkpoint.model.text_decoder.bert.encoder.layer[0].crossattention.output
    personal_layer = decoder_layer.dense  # adapted ("cross" targets), converted
    assert isinstance(personal_layer, Int8Linear)
    with gate.base():
        assert decoder_layer.dense is not personal_layer and isinstance(decoder_layer.dense, Int8Linear)
    assert decoder_layer.dense is personal_layer
    recipe_file.write_text(json.dumps({**recipe, "user_words": None}))
    fast_personal = Describer(str(model)).describe(photo).caption
    assert fast_personal != fast_base  # speaking everywhere: its own words, on the fast path too


RUNNER = textwrap.dedent("""
    import sys, torch
    torch.set_num_threads(1)
    from assistant.personal import trainer
    recipe = trainer.Recipe(steps=4000, lr=0.05, min_gain=-0.99, max_general_loss=1e6, checkpoint_every=5)
    trainer.personalize(sys.argv[1], recipe=recipe, progress=lambda t, f: print(t, flush=True))
""")


def test_killed_personalization_resumes_or_starts_afresh(home: Path, tiny_models: dict[str, Path]) -> None:
    from assistant.personal import trainer, versions

    model = str(tiny_models["builtin"])
    _fill(6)
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, model], env=env, cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = home / "personal" / "run"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(run.glob("step-0000[1-9]*")):
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = [p for p in run.glob("step-*") if not p.name.endswith(".tmp")]
    assert saved, "no checkpoint was written before the kill"
    step = json.loads((saved[-1] / "state.json").read_text())["step"]
    assert not list((home / "personal").glob("[0-9]*")), "a killed run must not leave a version"

    said: list[str] = []
    recipe = trainer.Recipe(steps=4000, lr=0.05, min_gain=-0.99, max_general_loss=1e6, checkpoint_every=5)
    stop_after = step + 3
    seen = {"n": 0}

    def cancel() -> bool:  # stop again 3 steps after going on: 4000 steps would make a slow test
        if not any(t.startswith("Going on") for t in said):
            return False
        seen["n"] += 1
        return seen["n"] > 3

    with pytest.raises(trainer.Cancelled, match=f"step {stop_after} of 4000"):
        trainer.personalize(model, recipe=recipe, progress=lambda t, f: said.append(t), cancel=cancel)
    assert f"Going on from step {step} of 4000 of the last run." in said

    # the corrections changed since: the stopped run is dropped, not mixed with new data
    _fill(1, "a new correction")
    said.clear()
    outcome = trainer.personalize(model, recipe=_eager(steps=6), progress=lambda t, f: said.append(t))
    assert outcome.accepted and not run.exists()
    assert not any(t.startswith("Going on") for t in said)
    assert versions.active_choice() == "1"


def test_resumed_run_matches_an_uninterrupted_one(home: Path, tiny_models: dict[str, Path],
                                                  monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from assistant.personal import trainer

    model = str(tiny_models["builtin"])
    _fill(6)
    calls = {"n": 0}

    def cancel_once() -> bool:
        calls["n"] += 1
        return calls["n"] == 5

    with pytest.raises(trainer.Cancelled):
        trainer.personalize(model, recipe=_eager(steps=8), cancel=cancel_once)
    resumed = trainer.personalize(model, recipe=_eager(steps=8))
    a = load_file(home / "personal" / str(resumed.version) / "adapter.safetensors")

    other = tmp_path / "other"
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(other))
    _fill(6)
    straight = trainer.personalize(model, recipe=_eager(steps=8))
    b = load_file(other / "personal" / str(straight.version) / "adapter.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert (a[k] - b[k]).abs().max() < 1e-5, k


def test_too_few_corrections_is_said(home: Path, tiny_models: dict[str, Path]) -> None:
    from assistant.personal import trainer

    _fill(2)
    with pytest.raises(trainer.PersonalizeError, match="needs at least 5"):
        trainer.personalize(str(tiny_models["builtin"]))


def test_a_salesforce_caption_checkpoint_takes_a_personal_model_too(home: Path,
                                                                   tiny_models: dict[str, Path]) -> None:
    from assistant.personal import trainer, versions

    model = str(tiny_models["caption"])  # BlipForConditionalGeneration: the same decoder names
    _fill(5)
    outcome = trainer.personalize(model, recipe=_eager(steps=4))
    assert outcome.accepted
    version = versions.read_version(home / "personal" / "1")
    assert version.base == model and version.recipe["rank"] == 8
    from assistant.describe import Describer

    describer = Describer(model)
    describer.load()
    assert describer.personal_version is not None and describer.personal_version.number == 1


def test_corrections_are_learned_as_the_models_own_captions_read() -> None:
    from assistant.personal.trainer import as_caption

    # typed without the full stop every training caption ends with: learned as is, the model ran on past
    # its usual end on other photos ("a woman sitting on a car vehicle")
    assert as_caption("Biscuit  lying on the blue sofa") == "Biscuit lying on the blue sofa."
    assert as_caption("is that Biscuit?") == "is that Biscuit?"
    assert as_caption("a dog.") == "a dog."
