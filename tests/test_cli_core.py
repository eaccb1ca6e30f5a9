"""The caption/ask/match/embed commands, through the real CLI."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from blipkit.cli.main import app

runner = CliRunner()


@pytest.fixture()
def bad_dir(image_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "good.jpg").write_bytes((image_dir / "a.jpg").read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 broken")
    return folder


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_caption_json_and_partial_failure_exit_code(tiny_models, bad_dir) -> None:
    result = runner.invoke(
        app,
        [
            "caption",
            str(bad_dir),
            "-m",
            str(tiny_models["caption"]),
            "--json",
            "--max-new-tokens",
            "4",
            "--no-progress",
        ],
    )
    assert result.exit_code == 2, result.output
    rows = {r["image"].rsplit("/", 1)[-1]: r for r in _json_lines(result.stdout)}
    assert rows["good.jpg"]["caption"] and 0 < rows["good.jpg"]["confidence"] <= 1
    assert rows["broken.jpg"]["error_code"] == "image_decode_error"


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".parquet"])
def test_caption_out_files_and_resume(tiny_models, image_dir, tmp_path, suffix) -> None:
    out = tmp_path / f"caps{suffix}"
    args = [
        "caption",
        str(image_dir / "a.jpg"),
        str(image_dir / "b.png"),
        "-m",
        str(tiny_models["builtin"]),
        "--out",
        str(out),
        "--max-new-tokens",
        "3",
        "--no-progress",
    ]
    assert runner.invoke(app, args).exit_code == 0
    from blipkit.cli.common import read_rows

    assert len(read_rows(out)) == 2
    # resume with one more image: only the new one is processed, nothing is duplicated
    args[3:3] = [str(image_dir / "c.webp")]
    assert runner.invoke(app, [*args, "--resume"]).exit_code == 0
    rows = read_rows(out)
    assert sorted(r["image"].rsplit("/", 1)[-1] for r in rows) == ["a.jpg", "b.png", "c.webp"]


def test_ask_with_choices_and_match(tiny_models, image_dir) -> None:
    img = str(image_dir / "a.jpg")
    result = runner.invoke(
        app, ["ask", img, "what is it?", "--choices", "dog, cat,car", "-m", str(tiny_models["vqa"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    [row] = _json_lines(result.stdout)
    assert set(row["scores"]) == {"dog", "cat", "car"} and row["answer"] in row["scores"]
    result = runner.invoke(app, ["match", img, "a dog", "a cat", "-m", str(tiny_models["itm"]), "--json"])
    assert result.exit_code == 0
    scores = [r["score"] for r in _json_lines(result.stdout)]
    assert len(scores) == 2 and all(0 <= s <= 1 for s in scores)


def test_embed_parquet_and_npy(tiny_models, image_dir, tmp_path) -> None:
    out = tmp_path / "v.parquet"
    result = runner.invoke(
        app, ["embed", str(image_dir), "-m", str(tiny_models["itm"]), "-o", str(out), "--no-progress"]
    )
    assert result.exit_code == 0, result.output
    table = pq.read_table(out).to_pylist()
    assert len(table) == 4
    vec = np.array(table[0]["vector"])
    assert abs(np.linalg.norm(vec) - 1) < 1e-5
    npy = tmp_path / "t.npy"
    assert (
        runner.invoke(
            app,
            ["embed", "--text", "a dog", "--text", "a cat", "-m", str(tiny_models["itm"]), "-o", str(npy)],
        ).exit_code
        == 0
    )
    assert np.load(npy).shape[0] == 2


def test_embed_reports_a_bad_image_once_by_name(tiny_models, bad_dir, tmp_path) -> None:
    out = tmp_path / "v.parquet"
    result = runner.invoke(app, ["embed", str(bad_dir), "-m", str(tiny_models["itm"]), "-o", str(out),
                                 "--no-progress"])
    assert result.exit_code == 2
    [line] = [x for x in result.stderr.splitlines() if "broken.jpg" in x]
    assert line.count("broken.jpg") == 1, line
    rows = pq.read_table(out).to_pylist()
    assert [r["error"] is None for r in sorted(rows, key=lambda r: r["name"])] == [False, True]


def test_an_unwritable_out_fails_before_any_work(tiny_models, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "a-file").write_text("x")
    (tmp_path / "a-folder.parquet").mkdir()
    for out, why in ((tmp_path / "a-file" / "x.parquet", "cannot write --out"),
                     (tmp_path / "a-folder.parquet", "it is a folder")):
        for cmd in (["caption", "x.jpg"], ["embed", "x.jpg"]):
            result = runner.invoke(app, [*cmd, "--out", str(out), "-m", str(tiny_models["itm"])])
            assert result.exit_code == 1 and why in result.output, (cmd, result.output)
    # whatever still fails on a path reaches the console as one line, not a traceback
    from blipkit.cli.main import main

    page = tmp_path / "page.html"
    page.write_text("<p>no images</p>")
    argv = ["blipkit", "alt-text", str(page), "--out", str(tmp_path / "a-file" / "o.html")]
    monkeypatch.setattr("sys.argv", argv)
    monkeypatch.delenv("BLIPKIT_TRACEBACK", raising=False)
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: ") and "Traceback" not in err


def test_clear_errors(tiny_models, tmp_path) -> None:
    result = runner.invoke(app, ["caption", str(tmp_path / "nothing"), "-m", str(tiny_models["caption"])])
    assert result.exit_code == 2  # the missing path is reported as a failed input
    result = runner.invoke(app, ["ask", "x.jpg", "why?", "-m", str(tiny_models["caption"])])
    assert result.exit_code == 1 and "cannot do 'vqa'" in result.output
    result = runner.invoke(app, ["caption", "x.jpg", "--out", "x.txt"])
    assert result.exit_code == 1 and "--out must end in" in result.output
    result = runner.invoke(app, ["caption", "x.jpg", "--decoding", "nucleus", "--temperature", "0"])
    assert result.exit_code == 1 and "temperature must be > 0" in result.output
    result = runner.invoke(app, ["ask", "x.jpg", "why?", "--choices", " , "])
    assert result.exit_code == 1 and "--choices has no candidate answers" in result.output


def test_ask_over_a_folder_resumes(tiny_models, image_dir, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "a.jpg").write_bytes((image_dir / "a.jpg").read_bytes())
    out = tmp_path / "answers.jsonl"
    args = ["ask", str(folder), "what is it?", "-m", str(tiny_models["vqa"]), "--out", str(out)]
    args.append("--no-progress")
    assert runner.invoke(app, args).exit_code == 0
    from blipkit.cli.common import read_rows

    first = read_rows(out)
    assert [r["image"].rsplit("/", 1)[-1] for r in first] == ["a.jpg"]
    (folder / "b.png").write_bytes((image_dir / "b.png").read_bytes())
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    rows = read_rows(out)
    assert sorted(r["image"].rsplit("/", 1)[-1] for r in rows) == ["a.jpg", "b.png"]
    assert rows[0] == first[0]  # the first answer was kept, not redone


def test_an_interrupted_run_keeps_its_finished_results_even_in_parquet(tmp_path) -> None:
    """Ctrl-C mid-run: Parquet, written once at the end, is written with what was done, and exit 130."""
    import typer

    from blipkit.cli.common import EXIT_INTERRUPTED, ResultWriter, write_batches
    from blipkit.results import CaptionResult

    out = tmp_path / "captions.parquet"
    writer = ResultWriter(out, False, str, resume=True)

    def run(chunk):
        if chunk[0] >= 4:
            raise KeyboardInterrupt
        return [CaptionResult(image=f"img{i}", caption="a dog", confidence=0.5) for i in chunk]

    with pytest.raises(typer.Exit) as stopped:
        write_batches(list(range(10)), 2, False, writer, run)
    assert stopped.value.exit_code == EXIT_INTERRUPTED
    assert [r["image"] for r in pq.read_table(out).to_pylist()] == ["img0", "img1", "img2", "img3"]


def test_sigterm_stops_a_caption_run_with_its_parquet_written(tiny_models, image_dir, tmp_path) -> None:
    """A scheduler's SIGTERM ends `blipkit caption` like Ctrl-C: finished captions kept, --resume goes on."""
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(200):
        shutil.copy(image_dir / "a.jpg", folder / f"{i:03d}.jpg")
    out = tmp_path / "captions.parquet"
    args = ["caption", str(folder), "-m", str(tiny_models["caption"]), "--out", str(out), "--json",
            "--batch-size", "1", "--decoding", "greedy", "--max-new-tokens", "3", "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-c", "from blipkit.cli.main import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for _ in range(3):  # three captions streamed: the run is under way
        assert proc.stdout.readline().startswith("{")
    proc.send_signal(signal.SIGTERM)
    start = time.monotonic()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert time.monotonic() - start < 30 and "interrupted" in err
    kept = pq.read_table(out).to_pylist()
    assert 3 <= len(kept) < 200
    result = runner.invoke(app, [*args[:-4], "--resume", "--max-new-tokens", "3", "--decoding", "greedy"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(out).to_pylist()
    assert sorted(r["image"] for r in rows) == sorted(str(p) for p in folder.iterdir())


def test_embed_resumes_and_keeps_what_an_interrupted_run_did(tiny_models, image_dir, tmp_path,
                                                            monkeypatch) -> None:
    """Ctrl-C mid-run writes the vectors done so far (exit 130); --resume embeds only the rest."""
    from blipkit.blip import Blip

    out = tmp_path / "v.parquet"
    args = ["embed", str(image_dir), "-m", str(tiny_models["itm"]), "-o", str(out), "-b", "1",
            "--no-progress"]
    reference = tmp_path / "ref.parquet"
    assert runner.invoke(app, [*args[:5], str(reference), *args[6:]]).exit_code == 0
    real, calls = Blip.embed_images, []

    def stopped_on_the_third_batch(self, *a, **k):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(Blip, "embed_images", stopped_on_the_third_batch)
    result = runner.invoke(app, args)
    assert result.exit_code == 130, result.output
    assert len(pq.read_table(out)) == 2 and "--resume continues" in result.stderr
    monkeypatch.setattr(Blip, "embed_images", real)
    result = runner.invoke(app, [*args, "--resume"])
    assert result.exit_code == 0, result.output
    got = {r["name"]: r["vector"] for r in pq.read_table(out).to_pylist()}
    want = {r["name"]: r["vector"] for r in pq.read_table(reference).to_pylist()}
    assert got.keys() == want.keys() and len(pq.read_table(out)) == len(want) == 4
    for name, vector in want.items():
        np.testing.assert_allclose(got[name], vector, atol=1e-5)
    refused = runner.invoke(app, ["embed", str(image_dir), "-m", str(tiny_models["itm"]), "-o",
                                  str(tmp_path / "v.npy"), "--resume"])
    assert refused.exit_code == 1 and ".parquet" in refused.output
