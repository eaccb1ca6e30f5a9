"""Security at run time (issue #28, item 6), beside the static scan of ``test_reliability_supply_chain.py``:
the user's paths through the model (describe, ask, a personal model) unpickle nothing, call ``torch.load``
never, and never reach remote code; corrections files that are too big or too long are refused whole,
with a message, by the command a user runs. The trigger socket's checks (another user refused, unknown
actions refused) are in ``test_ipc.py``: ``test_other_user_cannot_reach_or_use_the_socket`` runs its
client as ``nobody``, ``test_unknown_action_and_bad_requests_are_refused``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
COMMAND = Path(sys.executable).parent / "blip-assistant"

WATCHED = r"""
import json, pickle, sys
events = []
sys.addaudithook(lambda event, args: events.append(f"{event} {args[:2]!r}")
                 if event == "pickle.find_class" else None)

import torch
real_load = torch.load
def load(*args, **kwargs):
    events.append(f"torch.load weights_only={kwargs.get('weights_only')!r}")
    return real_load(*args, **kwargs)
torch.load = load

import transformers
from transformers import dynamic_module_utils
def remote(*args, **kwargs):
    events.append("remote code")
    raise RuntimeError("remote code")
dynamic_module_utils.get_class_from_dynamic_module = remote
real_from_pretrained = transformers.PreTrainedModel.from_pretrained.__func__
def from_pretrained(cls, *args, **kwargs):
    if kwargs.get("trust_remote_code"):
        events.append("trust_remote_code=True")
    return real_from_pretrained(cls, *args, **kwargs)
transformers.PreTrainedModel.from_pretrained = classmethod(from_pretrained)

if sys.argv[1] == "control":  # the watch itself can see an unpickling
    import pathlib
    pickle.loads(pickle.dumps(pathlib.PurePosixPath("x")))
else:
    from assistant.cli import main
    for args in (["describe", sys.argv[2], "--json"], ["ask", sys.argv[2], "is there a cat?", "--json"],
                 ["describe", sys.argv[2], "--model", sys.argv[3]]):
        assert main(args) == 0, args
    from assistant.describe import Describer
    describer = Describer(sys.argv[3])
    describer.load()
    assert describer.personal_version is not None  # the personal model's safetensors were read too
print("EVENTS " + json.dumps(events))
"""


def _events(out: str) -> list[str]:
    line = next(line for line in out.splitlines() if line.startswith("EVENTS "))
    return json.loads(line.removeprefix("EVENTS "))


def test_the_runtime_watch_sees_an_unpickling(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", WATCHED, "control"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert any(e.startswith("pickle.find_class") for e in _events(done.stdout))


@pytest.mark.slow  # the shipped model, and a personal model trained for it (about a minute here)
def test_describe_ask_and_a_personal_model_unpickle_nothing_at_run_time(tmp_path: Path, tiny_models) -> None:
    """The built-in model (as shipped) and a tiny model with a personal version of the user's: no
    ``pickle.find_class``, no ``torch.load``, no remote code, in the whole path a user takes."""
    home = tmp_path / "home"
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    trained = subprocess.run([sys.executable, "-c", (
        "import sys; sys.path.insert(0, 'tests'); from test_personal import _eager, _fill\n"
        "from assistant.personal import trainer\n_fill(6)\n"
        f"assert trainer.personalize({str(tiny_models['builtin'])!r}, recipe=_eager()).version == 1")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    photo = tmp_path / "cat.jpg"
    Image.open(ROOT / "resources" / "images" / "chelsea.jpg").save(photo)
    done = subprocess.run([sys.executable, "-c", WATCHED, "app", str(photo), str(tiny_models["builtin"])],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _events(done.stdout) == []


# --- imported corrections files -------------------------------------------------------------------
def _run(args: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home)}
    return subprocess.run([str(COMMAND), *args], env=env, capture_output=True, text=True, timeout=120)


def test_a_huge_corrections_file_is_refused_whole_with_a_message(tmp_path: Path) -> None:
    from assistant.personal import corrections

    folder = tmp_path / "set"
    folder.mkdir()
    Image.new("RGB", (32, 32), "green").save(folder / "ok.png")
    big = folder / "big.csv"
    with big.open("w") as f:  # a real file over the limit: one good row, then padding in a column
        f.write("image,caption,notes\nok.png,a green square,")
        f.write("x" * (corrections.MAX_CSV_BYTES + 1_000_000))
        f.write("\n")
    out = _run(["corrections", "import", str(big)], tmp_path / "home")
    assert out.returncode == 1
    limit_mb = corrections.MAX_CSV_BYTES // 1_000_000
    assert f"a corrections file may be at most {limit_mb} MB" in out.stderr, out.stderr
    long = folder / "long.csv"
    long.write_text("image,caption\n" + "ok.png,a green square\n" * (corrections.MAX_CSV_ROWS + 1))
    out = _run(["corrections", "import", str(long)], tmp_path / "home")
    assert out.returncode == 1
    assert f"has {corrections.MAX_CSV_ROWS + 1} rows; at most {corrections.MAX_CSV_ROWS} can be imported" \
        in out.stderr, out.stderr
    outside = folder / "outside.csv"
    outside.write_text("image,caption\n../secret.png,a secret\n/etc/hostname,a system file\n")
    (tmp_path / "secret.png").write_bytes((folder / "ok.png").read_bytes())
    out = _run(["corrections", "import", str(outside)], tmp_path / "home")
    assert out.returncode == 2 and out.stderr.count("is outside the CSV file's folder") == 2, out.stderr
    listed = _run(["corrections", "list"], tmp_path / "home")
    assert "No corrections yet" in listed.stdout  # nothing from any refused file was added


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as nobody")
def test_the_socket_tests_run_as_another_user_here() -> None:
    """The other-user test of test_ipc.py must not be skipped on this machine (we are root)."""
    from test_ipc import as_nobody_available

    assert as_nobody_available() is None
