"""``blipkit job caption|embed|index|capfilt``: resumable batch jobs over datasets, locally or on Ray."""

from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass
from typing import Any

import typer

from blipkit import defaults
from blipkit.cli import common as c

job_app = typer.Typer(
    name="job",
    help="Batch jobs over a whole dataset (folder, glob, list, Parquet/JSONL, tar shards), resumable, "
         "locally or scaled out on Ray. See docs/jobs.md.",
    no_args_is_help=True,
)

InputOption = typer.Option(
    ..., "--input", "-i",
    help="A folder, a glob, a list file (@list.txt or .txt), a Parquet/JSONL file with an image path or URL "
         "column, or WebDataset tar shards (a .tar, a glob, shards-{000..009}.tar or a folder of them). "
         "s3://, gs:// and other pyarrow file-system URIs work too.",
)
OutputOption = typer.Option(
    ..., "--output", "--out", "-o",
    help="Output folder (part-NNNNN.parquet or .jsonl per shard), or a URI such as s3://bucket/out/.",
)
EngineOption = typer.Option(
    None, "--engine", "-e", help="local (default; needs no Ray) or ray (the default with --address).",
)
AddressOption = typer.Option(
    None, "--address", help="Ray cluster: auto, ray://HOST:10001 or HOST:6379. Default: a new local one.",
)
WorkersOption = typer.Option(1, "--workers", "-w", min=1, help="Ray actors, each with its own model copy.")
ShardOption = typer.Option(
    defaults.JOB_SHARD_SIZE, "--shard-size", min=1,
    help="Images per shard: one part file each, the unit of retry and of resume.",
)
FormatOption = typer.Option(None, "--format", help="parquet (default) or jsonl part files.")
OverwriteOption = typer.Option(False, "--overwrite", help="Delete this output's earlier job files first.")
ImageColumnOption = typer.Option(None, "--image-column", help="Parquet/JSONL column of image paths or URLs.")
TextColumnOption = typer.Option(None, "--text-column", help="Parquet/JSONL column of the web caption.")
UrlsOption = typer.Option(True, "--urls/--no-urls", help="Fetch http(s) image URLs.")
CpusOption = typer.Option(1.0, "--cpus-per-worker", min=0.1, help="CPUs each Ray worker reserves.")
GpusOption = typer.Option(0.0, "--gpus-per-worker", min=0.0,
                          help="GPUs each Ray worker reserves (with --device cuda).")
JsonSummaryOption = typer.Option(False, "--json", help="Print the summary as one JSON object on stdout.")


@dataclass
class Common:
    """The options every job command takes."""

    input: str
    output: str
    engine: str | None
    address: str | None
    workers: int
    batch_size: int
    model: str
    shard_size: int
    fmt: str | None
    overwrite: bool
    device: str
    dtype: str
    threads: int | None
    image_column: str | None
    urls: bool
    cpus_per_worker: float
    progress: bool
    as_json: bool
    text_column: str | None = None
    gpus_per_worker: float = 0.0
    fast: bool | None = None


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a record comes, not when the handler was made (a test
    runner swaps stderr per command; a handler holding the old one would write to a closed file)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def _show_log() -> None:
    """Job progress (and Ray's per-shard throughput) as log lines on stderr."""
    logger = logging.getLogger("blipkit.jobs")
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _run(op: str, options: dict[str, Any], o: Common) -> None:
    from blipkit.errors import BlipkitError
    from blipkit.jobs import JobSpec, run_job

    engine = o.engine or ("ray" if o.address else "local")
    if engine == "local" and o.address:
        raise c.fail("--address needs --engine ray")
    if engine == "local" and o.workers > 1:
        typer.secho("note: the local engine runs one worker; --workers is for --engine ray",
                    fg="yellow", err=True)
    fmt = o.fmt or ("jsonl" if o.output.rstrip("/").lower().endswith(".jsonl") else "parquet")
    if engine == "ray" or o.progress:
        _show_log()
    try:
        spec = JobSpec(
            op, input=o.input, output=o.output, model=o.model, batch_size=o.batch_size,
            shard_size=o.shard_size, format=fmt, device=o.device, dtype=o.dtype, threads=o.threads,
            fast=o.fast,
            image_column=o.image_column, text_column=o.text_column, allow_urls=o.urls, options=options,
        )
        summary = run_job(spec, engine=engine, workers=o.workers, address=o.address, overwrite=o.overwrite,
                          progress=o.progress, cpus_per_worker=o.cpus_per_worker,
                          gpus_per_worker=o.gpus_per_worker)
    except (BlipkitError, ValueError) as exc:
        raise c.fail(str(exc)) from exc
    if o.as_json:
        sys.stdout.write(json.dumps(summary.to_dict()) + "\n")
    skipped = f", {summary.skipped} of {summary.shards} shards done before" if summary.skipped else ""
    typer.secho(
        f"{summary.output}: {summary.rows} rows ({summary.failed} failed), {summary.shards} shards{skipped}; "
        f"this run: {summary.images_this_run} images in {summary.seconds:.1f}s "
        f"({summary.images_per_s:.1f} img/s, {summary.engine} engine)",
        err=True,
    )
    if summary.failed:
        raise typer.Exit(c.EXIT_PARTIAL)


@job_app.command("caption")
def caption_job(
    src: str = InputOption, dst: str = OutputOption,
    prompt: str = typer.Option(None, "--prompt", "-p", help="Text the caption continues."),
    decoding: str = c.DecodingOption, num_beams: int = c.NumBeamsOption,
    max_new_tokens: int = c.MaxNewTokensOption, min_new_tokens: int = c.MinNewTokensOption,
    top_p: float = c.TopPOption, temperature: float = c.TemperatureOption,
    repetition_penalty: float = c.RepetitionPenaltyOption, no_repeat_ngram_size: int = c.NoRepeatNgramOption,
    no_repeat_words: bool = c.NoRepeatWordsOption,
    engine: str = EngineOption, address: str = AddressOption, workers: int = WorkersOption,
    batch_size: int = c.BatchOption, model: str = c.ModelOption, shard_size: int = ShardOption,
    fmt: str = FormatOption, overwrite: bool = OverwriteOption, device: str = c.DeviceOption,
    dtype: str = c.DtypeOption, threads: int = c.ThreadsOption, image_column: str = ImageColumnOption,
    fast: bool | None = c.FastOption,
    urls: bool = UrlsOption, cpus_per_worker: float = CpusOption, gpus_per_worker: float = GpusOption,
    progress: bool = c.ProgressOption, as_json: bool = JsonSummaryOption,
) -> None:
    """Caption every image. Rows: key, image, caption, confidence, error, error_code."""
    options: dict[str, Any] = {
        "decoding": decoding, "num_beams": num_beams, "max_new_tokens": max_new_tokens,
        "min_new_tokens": min_new_tokens, "top_p": top_p, "temperature": temperature,
        "repetition_penalty": repetition_penalty, "no_repeat_ngram_size": no_repeat_ngram_size,
        "no_repeat_words": no_repeat_words,
    }
    if prompt:
        options["prompt"] = prompt
    _run("caption", options, Common(
        src, dst, engine, address, workers, batch_size, model, shard_size, fmt, overwrite, device, dtype,
        threads, image_column, urls, cpus_per_worker, progress, as_json,
        gpus_per_worker=gpus_per_worker, fast=fast))


@job_app.command("embed")
def embed_job(
    src: str = InputOption, dst: str = OutputOption,
    engine: str = EngineOption, address: str = AddressOption, workers: int = WorkersOption,
    batch_size: int = c.BatchOption, model: str = c.ModelOption, shard_size: int = ShardOption,
    fmt: str = FormatOption, overwrite: bool = OverwriteOption, device: str = c.DeviceOption,
    dtype: str = c.DtypeOption, threads: int = c.ThreadsOption, image_column: str = ImageColumnOption,
    fast: bool | None = c.FastOption,
    urls: bool = UrlsOption, cpus_per_worker: float = CpusOption, gpus_per_worker: float = GpusOption,
    progress: bool = c.ProgressOption, as_json: bool = JsonSummaryOption,
) -> None:
    """Embed every image. Rows: key, image, embedding (L2-normalised ITC vector), error, error_code."""
    _run("embed", {}, Common(
        src, dst, engine, address, workers, batch_size, model, shard_size, fmt, overwrite, device, dtype,
        threads, image_column, urls, cpus_per_worker, progress, as_json,
        gpus_per_worker=gpus_per_worker, fast=fast))


@job_app.command("index")
def index_job(
    src: str = InputOption,
    dst: str = typer.Option(
        ..., "--output", "--out", "-o", help="The blipkit index folder (created if new)."),
    tags: int = typer.Option(defaults.INDEX_TAGS, "--tags", min=0, help="Vocabulary tags stored per image."),
    engine: str = EngineOption, address: str = AddressOption, workers: int = WorkersOption,
    batch_size: int = c.BatchOption, model: str = c.ModelOption, shard_size: int = ShardOption,
    overwrite: bool = OverwriteOption, device: str = c.DeviceOption,
    dtype: str = c.DtypeOption, threads: int = c.ThreadsOption, image_column: str = ImageColumnOption,
    fast: bool | None = c.FastOption,
    urls: bool = UrlsOption, cpus_per_worker: float = CpusOption, gpus_per_worker: float = GpusOption,
    progress: bool = c.ProgressOption, as_json: bool = JsonSummaryOption,
) -> None:
    """Caption, embed and tag every image into a blipkit index (searchable with `blipkit search`)."""
    _run("index", {"tags": tags}, Common(
        src, dst, engine, address, workers, batch_size, model, shard_size, "parquet", overwrite, device,
        dtype, threads, image_column, urls, cpus_per_worker, progress, as_json,
        gpus_per_worker=gpus_per_worker, fast=fast))


@job_app.command("capfilt")
def capfilt_job(
    src: str = InputOption, dst: str = OutputOption,
    threshold: float = typer.Option(defaults.CAPFILT_THRESHOLD, "--threshold", min=0.0, max=1.0,
                                    help="Keep texts whose ITM probability reaches this."),
    num_synthetic: int = typer.Option(defaults.CAPFILT_NUM_SYNTHETIC, "--num-synthetic", min=0,
                                      help="Synthetic captions per image (nucleus sampling)."),
    top_p: float = c.TopPOption,
    captioner: str = typer.Option(None, "--captioner", help="Captioning model (default: --model)."),
    text_column: str = TextColumnOption,
    engine: str = EngineOption, address: str = AddressOption, workers: int = WorkersOption,
    batch_size: int = c.BatchOption, model: str = c.ModelOption, shard_size: int = ShardOption,
    fmt: str = FormatOption, overwrite: bool = OverwriteOption, device: str = c.DeviceOption,
    dtype: str = c.DtypeOption, threads: int = c.ThreadsOption, image_column: str = ImageColumnOption,
    fast: bool | None = c.FastOption,
    urls: bool = UrlsOption, cpus_per_worker: float = CpusOption, gpus_per_worker: float = GpusOption,
    progress: bool = c.ProgressOption, as_json: bool = JsonSummaryOption,
) -> None:
    """CapFilt: sample synthetic captions, ITM-score every text of every image (web and synthetic).

    Rows, one per text: key, image, text, source, score, kept, error, error_code."""
    options: dict[str, Any] = {"threshold": threshold, "num_synthetic": num_synthetic, "top_p": top_p}
    if captioner:
        options["captioner"] = captioner
    _run("capfilt", options, Common(
        src, dst, engine, address, workers, batch_size, model, shard_size, fmt, overwrite, device, dtype,
        threads, image_column, urls, cpus_per_worker, progress, as_json, text_column,
        gpus_per_worker, fast))


def register(app: typer.Typer) -> None:
    """Register ``blipkit job ...``."""
    app.add_typer(job_app, name="job")
