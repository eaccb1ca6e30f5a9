"""Batch jobs on the local engine: every input kind, every op, resumption and exact-once output.

A tiny random-weight checkpoint and a few dozen generated images keep each test to seconds; the Ray
engine's tests are in test_jobs_ray.py.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from blipkit.errors import DataError, JobError
from blipkit.jobs import JobSpec, plan_shards, read_output, run_job
from blipkit.jobs.reader import read_samples, webdataset_key

ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
FAST_CAPTION = {"decoding": "greedy", "max_new_tokens": 6, "min_new_tokens": 1}


def png_bytes(seed: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def make_images(folder: Path, n: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        path = folder / f"img{i:03d}.png"
        path.write_bytes(png_bytes(i, 24 + i % 3 * 8))
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> str:
    from blipkit.testing import make_tiny_checkpoint

    return str(make_tiny_checkpoint("builtin", tmp_path_factory.mktemp("model") / "tiny"))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return make_images(tmp_path_factory.mktemp("data") / "imgs", 23)


def embeddings_by_image(output: str) -> dict[str, list[float]]:
    table = read_output(output)
    return dict(zip(table.column("image").to_pylist(), table.column("embedding").to_pylist(), strict=True))


# --- planning -----------------------------------------------------------------------------------------


def test_shards_are_fixed_size_slices_in_sorted_order(images: list[Path], tmp_path: Path) -> None:
    spec = JobSpec("embed", str(images[0].parent), str(tmp_path / "out"), shard_size=10)
    shards = plan_shards(spec)
    assert [s.size for s in shards] == [10, 10, 3]
    assert [s.name for s in shards] == ["part-00000", "part-00001", "part-00002"]
    assert [i.source for s in shards for i in s.items] == [str(p) for p in images]
    assert plan_shards(spec) == shards  # deterministic


def test_brace_and_webdataset_keys() -> None:
    from blipkit.jobs.shards import expand_braces

    assert expand_braces("s-{008..011}.tar") == ["s-008.tar", "s-009.tar", "s-010.tar", "s-011.tar"]
    assert webdataset_key("a/000123.jpg") == ("a/000123", "jpg")
    assert webdataset_key("000123.seg.PNG") == ("000123", "seg.png")


def test_missing_input_and_empty_folder_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        plan_shards(JobSpec("embed", str(tmp_path / "nope"), str(tmp_path / "out")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        plan_shards(JobSpec("embed", str(tmp_path / "empty"), str(tmp_path / "out")))


# --- every input kind gives the same rows ---------------------------------------------------------------


def test_every_input_kind_reads_the_same_images(model: str, images: list[Path], tmp_path: Path) -> None:
    """Folder, glob, list file, Parquet (paths and bytes), JSONL and tar shards: same images, same vectors."""
    folder = images[0].parent
    subset = images[:8]
    relative = [os.path.relpath(p, tmp_path) for p in subset]  # list entries are relative to the list
    (tmp_path / "list.txt").write_text("# eight images\n" + "\n".join(relative))
    pq.write_table(pa.table({"image_path": [str(p) for p in subset]}), tmp_path / "paths.parquet")
    pq.write_table(pa.table({"key": [p.stem for p in subset], "jpg": [p.read_bytes() for p in subset]}),
                   tmp_path / "bytes.parquet", row_group_size=3)
    (tmp_path / "rows.jsonl").write_text("".join(json.dumps({"url": str(p)}) + "\n" for p in subset))
    for shard, members in enumerate((subset[:5], subset[5:])):
        with tarfile.open(tmp_path / f"shard-{shard:03d}.tar", "w") as tar:
            for p in members:
                for name, data in ((f"{p.stem}.png", p.read_bytes()), (f"{p.stem}.txt", b"a dog")):
                    info = tarfile.TarInfo(name)
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))

    def vectors(name: str, source: str, **kw: object) -> list[list[float]]:
        out = str(tmp_path / f"out-{name}")
        summary = run_job(JobSpec("embed", source, out, model=model, shard_size=3, batch_size=4, **kw),
                          progress=False)
        assert summary.rows == 8 and summary.failed == 0, name
        table = read_output(out)
        return table.column("embedding").to_pylist()

    reference = vectors("glob", str(folder / "img00[0-7].png"))
    assert len(reference) == 8
    for name, source in [
        ("list", str(tmp_path / "list.txt")), ("at-list", "@" + str(tmp_path / "list.txt")),
        ("parquet", str(tmp_path / "paths.parquet")), ("bytes", str(tmp_path / "bytes.parquet")),
        ("jsonl", str(tmp_path / "rows.jsonl")), ("tars", str(tmp_path / "shard-{000..001}.tar")),
        ("tar-glob", str(tmp_path / "shard-*.tar")),
    ]:
        got = vectors(name, source)
        # batches differ by source (a tar is one shard), and batched matmuls round differently
        np.testing.assert_allclose(np.array(got), np.array(reference), atol=1e-4, err_msg=name)
    tar_rows = read_output(str(tmp_path / "out-tars"))
    assert tar_rows.column("key").to_pylist() == [p.stem for p in subset]  # WebDataset keys
    assert tar_rows.column("image").to_pylist()[0].endswith("shard-000.tar#img000.png")
    assert read_output(str(tmp_path / "out-bytes")).column("key").to_pylist() == [p.stem for p in subset]
    # One part per tar: the tar is the shard.
    assert sorted(os.listdir(tmp_path / "out-tars")) == ["_SUCCESS", "_job.json", "part-00000.parquet",
                                                          "part-00001.parquet"]


def test_tar_texts_and_missing_images(tmp_path: Path) -> None:
    with tarfile.open(tmp_path / "s.tar", "w") as tar:
        for name, data in (("a.jpg", b"x"), ("a.txt", b" hello "), ("meta.json", b"{}"), ("b.png", b"y")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    spec = JobSpec("capfilt", str(tmp_path / "s.tar"), str(tmp_path / "out"))
    samples = list(read_samples(spec, plan_shards(spec)[0]))
    assert [(s.key, s.text, s.payload) for s in samples] == [("a", "hello", b"x"), ("b", None, b"y")]


# --- ops --------------------------------------------------------------------------------------------------


def test_caption_job_matches_the_library_and_reports_bad_images(model: str, images: list[Path],
                                                              tmp_path: Path) -> None:
    import blipkit

    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in images[:6]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "zz-broken.jpg").write_bytes(b"not an image at all")
    out = tmp_path / "captions.jsonl"
    summary = run_job(JobSpec("caption", str(folder), str(out), model=model, shard_size=4, batch_size=3,
                              format="jsonl", options=FAST_CAPTION), progress=False)
    assert (summary.shards, summary.rows, summary.failed) == (2, 7, 1)
    assert sorted(os.listdir(out)) == ["_SUCCESS", "_job.json", "part-00000.jsonl", "part-00001.jsonl"]
    rows = [json.loads(line) for name in ("part-00000.jsonl", "part-00001.jsonl")
            for line in (out / name).read_text().splitlines()]
    blip = blipkit.load(model)
    expected = blip.caption(sorted(str(p) for p in folder.iterdir()), **FAST_CAPTION)
    assert [r["image"] for r in rows] == [e.image for e in expected]
    assert [r["caption"] for r in rows] == [e.caption for e in expected]
    bad = rows[-1]
    assert bad["caption"] is None and bad["error_code"] == "image_decode_error"
    assert all(r["error"] is None for r in rows[:-1])


def test_embed_job_vectors_are_the_models(model: str, images: list[Path], tmp_path: Path) -> None:
    import blipkit

    out = str(tmp_path / "vecs")
    run_job(JobSpec("embed", str(images[0].parent), out, model=model, shard_size=7), progress=False)
    got = embeddings_by_image(out)
    blip = blipkit.load(model)
    want = blip.embed_images([str(p) for p in images])
    np.testing.assert_allclose(np.array([got[str(p)] for p in images]), want, atol=1e-5)
    assert pq.read_schema(Path(out) / "part-00000.parquet").field("embedding").type == pa.list_(pa.float32())


def test_capfilt_job_scores_every_text_like_capfilt(model: str, images: list[Path], tmp_path: Path) -> None:
    import blipkit
    from blipkit.capfilt import capfilt
    from blipkit.data.records import CaptionRecord
    from blipkit.jobs.runner import batch_seed

    subset = images[:5]
    table = pa.table({"path": [str(p) for p in subset], "caption": [f"a photo number {i}" for i in range(5)]})
    pq.write_table(table, tmp_path / "web.parquet")
    out = str(tmp_path / "capfilt")
    options = {"threshold": 0.5, "num_synthetic": 1}
    summary = run_job(JobSpec("capfilt", str(tmp_path / "web.parquet"), out, model=model, shard_size=5,
                              batch_size=5, options=options), progress=False)
    assert summary.failed == 0
    rows = read_output(out).to_pylist()
    assert len(rows) == 10  # one web caption and one synthetic caption per image
    assert sorted({r["source"] for r in rows}) == ["original", "synthetic"]
    assert all(r["kept"] == (r["score"] >= 0.5) for r in rows)
    # The same decisions as the library's CapFilt, seeded as the job seeds its first batch.
    records = [CaptionRecord(str(p), [f"a photo number {i}"], str(p)) for i, p in enumerate(subset)]
    shard = plan_shards(JobSpec("capfilt", str(tmp_path / "web.parquet"), out, shard_size=5))[0]
    direct = capfilt(records, blipkit.load(model), num_synthetic=1, threshold=0.5, batch_size=5,
                     seed=batch_seed(shard, 0))
    assert [(d.text, d.source) for d in direct.decisions] == [(r["text"], r["source"]) for r in rows]
    np.testing.assert_allclose([d.score for d in direct.decisions], [r["score"] for r in rows], atol=1e-6)


def test_capfilt_needs_a_text_column(images: list[Path], tmp_path: Path) -> None:
    pq.write_table(pa.table({"path": [str(images[0])]}), tmp_path / "t.parquet")
    with pytest.raises(DataError, match="no text column"):
        plan_shards(JobSpec("capfilt", str(tmp_path / "t.parquet"), str(tmp_path / "o")))


def test_index_job_fills_a_searchable_index(model: str, images: list[Path], tmp_path: Path) -> None:
    pytest.importorskip("lancedb")
    from blipkit.index.store import ImageIndex

    db = tmp_path / "index"
    summary = run_job(JobSpec("index", str(images[0].parent), str(db), model=model, shard_size=10,
                              options={**FAST_CAPTION, "tags": 2}), progress=False)
    assert (summary.rows, summary.failed) == (len(images), 0)
    index = ImageIndex.open(db)
    assert index.count() == len(images)
    rows = index.rows_where("path", [str(images[0].resolve())])
    assert rows and rows[0]["caption"] and len(rows[0]["vector"]) == 16 and len(rows[0]["tags"]) == 2
    assert rows[0]["size"] == images[0].stat().st_size
    staged = sorted(os.listdir(db / "_job"))
    assert not [n for n in staged if n.startswith("part-")]  # every part was moved into the index
    again = run_job(JobSpec("index", str(images[0].parent), str(db), model=model, shard_size=10,
                            options={**FAST_CAPTION, "tags": 2}), progress=False)
    assert (again.skipped, again.ran, index.count()) == (3, 0, len(images))


# --- outputs: resumption, refusal, object-store style URIs ----------------------------------------------


def test_rerun_skips_done_shards_and_refuses_another_job(model: str, images: list[Path],
                                                         tmp_path: Path) -> None:
    out = tmp_path / "out"
    spec = JobSpec("embed", str(images[0].parent), str(out), model=model, shard_size=10)
    first = run_job(spec, progress=False)
    assert (first.ran, first.skipped) == (3, 0)
    before = {n: (out / n).stat().st_mtime_ns for n in os.listdir(out) if n.startswith("part-")}
    (out / "part-00001.parquet").unlink()
    (out / ".part-00001.parquet.deadbeef.tmp").write_bytes(b"half a file from a killed writer")
    second = run_job(spec, progress=False)
    assert (second.ran, second.skipped, second.rows) == (1, 2, len(images))
    assert not (out / ".part-00001.parquet.deadbeef.tmp").exists()
    assert (out / "part-00000.parquet").stat().st_mtime_ns == before["part-00000.parquet"]
    assert read_output(str(out)).column("image").to_pylist() == [str(p) for p in images]
    with pytest.raises(JobError, match="shard_size"):
        run_job(JobSpec("embed", str(images[0].parent), str(out), model=model, shard_size=5), progress=False)
    with pytest.raises(JobError, match="input"):
        run_job(JobSpec("embed", str(images[0]), str(out), model=model, shard_size=10), progress=False)
    redo = run_job(JobSpec("embed", str(images[0]), str(out), model=model, shard_size=10), overwrite=True,
                   progress=False)
    assert (redo.shards, redo.rows) == (1, 1) and sorted(os.listdir(out))[-1] == "part-00000.parquet"
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(JobError, match="not empty"):
        run_job(JobSpec("embed", str(images[0]), str(tmp_path / "other"), model=model), progress=False)


def test_file_uris_go_through_pyarrow_file_systems(model: str, images: list[Path], tmp_path: Path) -> None:
    pq.write_table(pa.table({"image": [p.as_uri() for p in images[:4]]}), tmp_path / "uris.parquet")
    out = (tmp_path / "uri-out").as_uri()
    spec = JobSpec("embed", (tmp_path / "uris.parquet").as_uri(), out, model=model)
    summary = run_job(spec, progress=False)
    assert (summary.rows, summary.failed) == (4, 0)
    assert len(read_output(out)) == 4


def test_jobs_import_no_ray() -> None:
    code = "import sys, blipkit.jobs, blipkit.cli.jobs; assert 'ray' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, **ENV}, timeout=120)


# --- the CLI, and a real crash ------------------------------------------------------------------------------


def test_cli_job_embed_prints_a_summary(model: str, images: list[Path], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from blipkit.cli.main import app

    out = tmp_path / "cli"
    result = CliRunner().invoke(app, ["job", "embed", "--input", str(images[0].parent), "--output", str(out),
                                      "--model", model, "--shard-size", "10", "--json", "--no-progress"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["rows"] == len(images) and summary["shards"] == 3
    bad = CliRunner().invoke(app, ["job", "embed", "--input", str(tmp_path / "none"), "--output", str(out),
                                   "--model", model])
    assert bad.exit_code == 1 and "not found" in bad.output


def test_killed_run_resumes_to_the_uninterrupted_output(model: str, tmp_path: Path) -> None:
    """SIGKILL a `blipkit job caption` process mid-run; the re-run finishes it, row for row."""
    from typer.testing import CliRunner

    from blipkit.cli.main import app

    folder = tmp_path / "imgs"
    make_images(folder, 120)
    args = ["job", "caption", "--input", str(folder), "--model", model, "--shard-size", "10",
            "--batch-size", "5", "--decoding", "greedy", "--max-new-tokens", "6", "--min-new-tokens", "1",
            "--no-progress"]
    reference = tmp_path / "reference"
    assert CliRunner().invoke(app, [*args, "--output", str(reference)]).exit_code == 0

    crashed = tmp_path / "crashed"
    cli = [sys.executable, "-c", "from blipkit.cli.main import app; app()"]
    proc = subprocess.Popen([*cli, *args, "--output", str(crashed)], env={**os.environ, **ENV},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if crashed.exists() and sum(n.startswith("part-") for n in os.listdir(crashed)) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the job finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    written = sorted(n for n in os.listdir(crashed) if n.startswith("part-"))
    assert 2 <= len(written) < 12 and not (crashed / "_SUCCESS").exists()

    result = CliRunner().invoke(app, [*args, "--output", str(crashed)])
    assert result.exit_code == 0, result.output
    assert "shards done before" in result.output
    assert read_output(str(crashed)).equals(read_output(str(reference)))
    keys = read_output(str(crashed)).column("key").to_pylist()
    assert len(keys) == len(set(keys)) == 120


def test_job_caption_takes_every_decoding_option_of_caption(model: str, images: list[Path],
                                                           tmp_path: Path) -> None:
    """`job caption` decodes as `caption` does, options included; a bad value fails before any work."""
    from typer.testing import CliRunner

    import blipkit
    from blipkit.cli.main import app
    from blipkit.tasks.generation import GenerationSettings

    folder = tmp_path / "imgs"
    folder.mkdir()
    for p in images[:4]:
        (folder / p.name).write_bytes(p.read_bytes())
    base = ["job", "caption", "--input", str(folder), "--model", model, "--format", "jsonl", "--no-progress",
            "--decoding", "greedy", "--max-new-tokens", "8", "--min-new-tokens", "8"]
    loose = ["--allow-repeat-words", "--no-repeat-ngram-size", "0", "--repetition-penalty", "0.5"]
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [*base, *loose, "--output", str(out)])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (out / "part-00000.jsonl").read_text().splitlines()]
    settings = GenerationSettings(decoding="greedy", max_new_tokens=8, min_new_tokens=8,
                                  no_repeat_words=False, no_repeat_ngram_size=0, repetition_penalty=0.5)
    expected = blipkit.load(model).caption(sorted(str(p) for p in folder.iterdir()), settings=settings)
    assert [r["caption"] for r in rows] == [e.caption for e in expected]
    default = blipkit.load(model).caption(sorted(str(p) for p in folder.iterdir()),
                                          settings=GenerationSettings(decoding="greedy", max_new_tokens=8,
                                                                      min_new_tokens=8))
    assert [e.caption for e in expected] != [e.caption for e in default]  # the options did change something

    bad = CliRunner().invoke(app, [*base, "--repetition-penalty", "0", "--output", str(tmp_path / "bad")])
    assert bad.exit_code != 0 and "repetition_penalty" in bad.output
    assert not (tmp_path / "bad").exists()


@pytest.mark.parametrize(("op", "options", "says"), [
    ("caption", {"num_beams": 0}, "num_beams"),
    ("index", {"tags": -1}, "tags"),
    ("capfilt", {"threshold": 2}, "threshold"),
    ("capfilt", {"top_p": 0}, "top_p"),
])
def test_bad_options_are_refused_before_the_output_is_made(model: str, images: list[Path], tmp_path: Path,
                                                           op: str, options: dict, says: str) -> None:
    """A refused job leaves no output folder behind: its manifest would block the corrected re-run."""
    out = tmp_path / "out"
    with pytest.raises(JobError, match=says):
        run_job(JobSpec(op, str(images[0].parent), str(out), model=model, options=options), progress=False)
    assert not out.exists()


def test_a_run_that_wrote_no_shard_does_not_block_the_corrected_one(model: str, images: list[Path],
                                                                    tmp_path: Path) -> None:
    """A job that failed before its first shard (a model that is not there) leaves only its manifest; the
    re-run with the right model takes the folder over. One that wrote a shard still guards it."""
    out = tmp_path / "out"
    source = str(images[0].parent)
    with pytest.raises(Exception, match="no model folder"):
        run_job(JobSpec("embed", source, str(out), model=str(tmp_path / "nope")), progress=False)
    assert sorted(os.listdir(out)) == ["_job.json"]
    summary = run_job(JobSpec("embed", source, str(out), model=model, shard_size=10), progress=False)
    assert summary.rows == len(images) and (out / "_SUCCESS").exists()
    with pytest.raises(JobError, match="differs in model"):
        run_job(JobSpec("embed", source, str(out), model=str(tmp_path / "nope"), shard_size=10),
                progress=False)


def test_a_relative_model_folder_is_the_same_job_from_any_folder(model: str, images: list[Path],
                                                                 tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The spec names a local model folder by its absolute path: workers load it whatever their working
    folder, and the re-run from elsewhere (spelling the folder differently) resumes the same job."""
    out = tmp_path / "out"
    model_path = Path(model)
    monkeypatch.chdir(model_path.parent)
    spec = JobSpec("embed", str(images[0].parent), str(out), model=model_path.name, shard_size=10)
    assert spec.model == str(model_path.resolve())
    first = run_job(spec, progress=False)
    monkeypatch.chdir(tmp_path)
    again = run_job(JobSpec("embed", str(images[0].parent), str(out), model=os.path.relpath(model_path),
                            shard_size=10), progress=False)
    assert again.skipped == first.shards and again.rows == len(images)
    assert JobSpec("embed", "x", "y", model="builtin").model == "builtin"  # names stay names
