"""Jobs that read from and write to S3, through pyarrow's S3 file system, against a local moto S3 server
on the loopback interface (no network beyond this machine)."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from PIL import Image

from blipkit.jobs import JobSpec, read_output, run_job

moto_server = pytest.importorskip("moto.server")


def png(seed: int) -> bytes:
    buf = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    """A bucket holding 12 images, a tar of 4, and a Parquet file naming 5 images by s3:// URI."""
    import os

    from blipkit.testing import make_tiny_checkpoint

    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    query = f"?endpoint_override={host}:{port}&scheme=http&region=us-east-1"
    fs = pafs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", region="us-east-1",
                           access_key="test", secret_key="test", allow_bucket_creation=True)
    fs.create_dir("bucket")
    for i in range(12):
        with fs.open_output_stream(f"bucket/photos/img{i:02d}.png") as f:
            f.write(png(i))
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tar:
        for i in range(4):
            data = png(i)
            info = tarfile.TarInfo(f"{i:04d}.png")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with fs.open_output_stream("bucket/shards/shard-0.tar") as f:
        f.write(tar_bytes.getvalue())
    table = pa.table({"url": [f"s3://bucket/photos/img{i:02d}.png{query}" for i in range(5)]})
    buf = pa.BufferOutputStream()
    pq.write_table(table, buf)
    with fs.open_output_stream("bucket/lists/five.parquet") as f:
        f.write(buf.getvalue().to_pybytes())
    model = str(make_tiny_checkpoint("builtin", tmp_path_factory.mktemp("s3model") / "tiny"))
    try:
        yield {"query": query, "fs": fs, "model": model}
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def test_folder_on_s3_to_parquet_on_s3_and_resume(s3: dict, tmp_path: Path) -> None:
    q, fs, model = s3["query"], s3["fs"], s3["model"]
    out = f"s3://bucket/out/vectors{q}"
    spec = JobSpec("embed", f"s3://bucket/photos{q}", out, model=model, shard_size=5)
    first = run_job(spec, progress=False)
    assert (first.shards, first.rows, first.failed) == (3, 12, 0)
    names = sorted(i.base_name for i in fs.get_file_info(pafs.FileSelector("bucket/out/vectors")))
    assert names == ["_SUCCESS", "_job.json", *(f"part-{i:05d}.parquet" for i in range(3))]
    table = read_output(out)
    assert table.column("image").to_pylist()[0] == "s3://bucket/photos/img00.png"  # no query in the rows
    # The same vectors as the same images read from local files.
    local = tmp_path / "photos"
    local.mkdir()
    for i in range(12):
        (local / f"img{i:02d}.png").write_bytes(png(i))
    run_job(JobSpec("embed", str(local), str(tmp_path / "local"), model=model, shard_size=5), progress=False)
    np.testing.assert_allclose(np.array(table.column("embedding").to_pylist()),
                               np.array(read_output(str(tmp_path / "local")).column("embedding").to_pylist()),
                               atol=1e-6)
    fs.delete_file("bucket/out/vectors/part-00001.parquet")
    again = run_job(spec, progress=False)
    assert (again.skipped, again.ran, again.rows) == (2, 1, 12)
    assert read_output(out).equals(table)


def test_tar_glob_and_uri_column_on_s3(s3: dict) -> None:
    q, model = s3["query"], s3["model"]
    tars = run_job(JobSpec("caption", f"s3://bucket/shards/*.tar{q}", f"s3://bucket/out/tarcaps{q}",
                           model=model, options={"decoding": "greedy", "max_new_tokens": 4}), progress=False)
    assert (tars.shards, tars.rows, tars.failed) == (1, 4, 0)
    rows = read_output(f"s3://bucket/out/tarcaps{q}").to_pylist()
    assert [r["key"] for r in rows] == ["0000", "0001", "0002", "0003"]
    assert rows[0]["image"] == "s3://bucket/shards/shard-0.tar#0000.png"
    listed = run_job(JobSpec("embed", f"s3://bucket/lists/five.parquet{q}", f"s3://bucket/out/five{q}",
                             model=model, format="jsonl"), progress=False)
    assert (listed.rows, listed.failed) == (5, 0)
    assert read_output(f"s3://bucket/out/five{q}").column("key").to_pylist()[4] == "s3://bucket/photos/img04.png"
