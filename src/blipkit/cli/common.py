"""What every blipkit command shares: model options, result output, progress, resume and exit codes."""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer

from blipkit import defaults

# exit codes: 0 all good, 1 usage or fatal error, 2 some inputs failed (the rest were processed),
# 130 interrupted (Ctrl-C or SIGTERM; what was done is kept), as shells report a SIGINT
EXIT_OK, EXIT_FATAL, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 130
OUTPUT_SUFFIXES = (".jsonl", ".csv", ".parquet")

ModelOption = typer.Option(
    defaults.DEFAULT_MODEL,
    "--model",
    "-m",
    help="builtin, an alias (base, large, vqa, itm...), a hub id or a local folder.",
)
DeviceOption = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, mps...")
DtypeOption = typer.Option("float32", "--dtype", help="float32, bfloat16 or float16.")
ThreadsOption = typer.Option(None, "--threads", help="Torch threads (default: torch's choice).")
FastOption = typer.Option(
    None,
    "--fast/--no-fast",
    help="The CPU fast path (bfloat16/int8 matmuls) or transformers' float32. Default: BLIPKIT_FAST if set, "
    "else fast on CPUs with bfloat16 units.",
    show_default=False,
)
BatchOption = typer.Option(defaults.BATCH_SIZE, "--batch-size", "-b", min=1, help="Images per batch.")
JsonOption = typer.Option(False, "--json", help="One JSON object per line on stdout.")
OutOption = typer.Option(None, "--out", "-o", help="Write results to FILE.jsonl, .csv or .parquet.")
ResumeOption = typer.Option(False, "--resume", help="Skip images already in --out.")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr.")
# Decoding (blipkit.tasks.generation.GenerationSettings), the same on every command that writes captions.
DecodingOption = typer.Option(defaults.DECODING, "--decoding", help=defaults.DECODING_HELP)
NumBeamsOption = typer.Option(defaults.NUM_BEAMS, "--num-beams", min=1)
MaxNewTokensOption = typer.Option(defaults.MAX_NEW_TOKENS, "--max-new-tokens", min=1)
MinNewTokensOption = typer.Option(defaults.MIN_NEW_TOKENS, "--min-new-tokens", min=0)
TopPOption = typer.Option(defaults.TOP_P, "--top-p", help="Nucleus sampling's p.")
TemperatureOption = typer.Option(defaults.TEMPERATURE, "--temperature", help="Sampling temperature.")
RepetitionPenaltyOption = typer.Option(defaults.REPETITION_PENALTY, "--repetition-penalty",
                                       help="Above 1 makes repeated tokens less likely.")
NoRepeatNgramOption = typer.Option(defaults.NO_REPEAT_NGRAM_SIZE, "--no-repeat-ngram-size", min=0)
NoRepeatWordsOption = typer.Option(
    defaults.NO_REPEAT_WORDS,
    "--no-repeat-words/--allow-repeat-words",
    help="Never say a content word twice ('a', 'in' and other function words stay free).",
)
IndexModelOption = typer.Option(
    None, "--model", "-m",
    help="Model (default: the index's own; a new index: builtin). Another model's index is refused.",
)


def index_model(db: Path | None, model: str | None) -> str:
    """The model to use with an index: the one asked for, else the one that built it, else the default."""
    from blipkit.index.schema import META_FILE

    if model:
        return model
    meta = db / META_FILE if db is not None else None
    if meta is not None and meta.exists():
        try:
            return str(json.loads(meta.read_text())["fingerprint"]["model"])
        except (OSError, ValueError, KeyError):
            pass
    return defaults.DEFAULT_MODEL


def fail(message: str, code: int = EXIT_FATAL) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


def load_model(
    model: str,
    device: str,
    dtype: str,
    threads: int | None,
    fast: bool | None = None,
    task: str | None = None,
):
    """Load a model for a command, turning blipkit errors into a clean message and exit code 1."""
    import blipkit
    from blipkit.errors import BlipkitError

    try:
        return blipkit.load(model, task, device=device, dtype=dtype, threads=threads, fast=fast)
    except (BlipkitError, ValueError) as exc:
        raise fail(str(exc)) from exc


def check_out(out: Path | None) -> None:
    if out is not None and out.suffix not in OUTPUT_SUFFIXES:
        raise fail(f"--out must end in {', '.join(OUTPUT_SUFFIXES)}, not {out.name!r}")
    check_writable(out)


def check_writable(out: Path | None, option: str = "--out") -> None:
    """Fail now, before any model work, if ``out`` cannot be written (some outputs are only written at
    the end of a run). Creates its folder, as writing it would."""
    if out is None:
        return
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise fail(f"cannot write {option} {out}: {exc.strerror or exc}") from exc
    if out.is_dir():
        raise fail(f"cannot write {option} {out}: it is a folder")
    try:  # a real write: permission bits do not tell about read-only mounts, or root
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".blipkit-write-check-"):
            pass
    except OSError as exc:
        raise fail(f"cannot write {option} {out}: {exc.strerror or exc}") from exc
    if out.exists() and not os.access(out, os.W_OK):
        raise fail(f"cannot write {option} {out}: permission denied")


def done_images(out: Path | None) -> set[str]:
    """Images already in an output file (for --resume); rows that carry an error are done again."""
    if out is None or not out.exists():
        return set()
    rows = read_rows(out)
    return {str(r["image"]) for r in rows if not r.get("error")}


def read_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix == ".jsonl":
        rows = []
        with path.open() as f:
            for line in f:
                line = line.strip()
                if line:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        continue  # a line cut short by an interrupted run
        return rows
    if path.suffix == ".csv":
        with path.open(newline="") as f:
            return list(csv.DictReader(f))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def warn_input(name: object, error: object) -> None:
    """Report one failed input on stderr, named once (blipkit's errors usually name their source)."""
    message = str(error) if str(name) in str(error) else f"{name}: {error}"
    typer.secho(message, fg="yellow", err=True)


class ResultWriter:
    """Prints results (human-readable or JSON lines) and/or appends them to an output file.

    JSONL and CSV are appended row by row and flushed, so an interrupted run keeps what it did;
    Parquet is written once at the end (merged with the rows of an earlier run when resuming).
    """

    def __init__(self, out: Path | None, as_json: bool, human: Any, resume: bool = False) -> None:
        self.out, self.as_json, self.human, self.resume = out, as_json, human, resume
        self.failed = 0
        self.count = 0
        self._parquet: list[dict[str, Any]] = []
        self._file = None
        self._csv: csv.DictWriter | None = None
        if out is not None and out.suffix in (".jsonl", ".csv"):
            out.parent.mkdir(parents=True, exist_ok=True)
            if resume and out.exists():
                self._keep_done_rows(out)
            self._file = out.open("a" if resume else "w", newline="")

    def _keep_done_rows(self, out: Path) -> None:
        """Before resuming, drop the rows that will be redone (errors) and a line cut short by a kill.

        Written to a temporary file and renamed, so a kill now loses nothing either.
        """
        rows = [r for r in read_rows(out) if not r.get("error")]
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", newline="") as f:
            if out.suffix == ".jsonl":
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            elif rows:
                self._csv_fields = list(rows[0].keys())
                writer = csv.DictWriter(f, fieldnames=self._csv_fields, extrasaction="ignore")
                writer.writeheader()
                writer.writerows(rows)
        tmp.replace(out)

    def write(self, row: dict[str, Any]) -> None:
        self.count += 1
        self._save(row)  # before it is shown: a row on the screen is a row kept, even if stopped right now
        if row.get("error"):
            self.failed += 1
            warn_input(row["image"], row["error"])
        if self.as_json:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
            sys.stdout.flush()
        elif self.out is None and not row.get("error"):
            typer.echo(self.human(row))

    def _save(self, row: dict[str, Any]) -> None:
        if self._file is not None and self.out is not None:
            if self.out.suffix == ".jsonl":
                self._file.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                flat = {k: json.dumps(v) if isinstance(v, dict | list) else v for k, v in row.items()}
                if self._csv is None:
                    fields = getattr(self, "_csv_fields", None) or list(flat.keys())
                    for extra in ("error", "error_code"):
                        if extra not in fields:
                            fields.append(extra)
                    self._csv = csv.DictWriter(self._file, fieldnames=fields, extrasaction="ignore")
                    if self._file.tell() == 0:
                        self._csv.writeheader()
                self._csv.writerow(flat)
            self._file.flush()
        elif self.out is not None:
            self._parquet.append(row)

    def close(self) -> int:
        if self._file is not None:
            self._file.close()
        if self.out is not None and self.out.suffix == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            earlier = read_rows(self.out) if self.resume and self.out.exists() else []
            rows = [r for r in earlier if not r.get("error")] + self._parquet
            self.out.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.out.with_suffix(".parquet.tmp")
            pq.write_table(pa.Table.from_pylist(rows), tmp)
            tmp.replace(self.out)
        if self.failed:
            typer.secho(f"{self.failed} of {self.count} inputs failed", fg="yellow", err=True)
            return EXIT_PARTIAL
        return EXIT_OK


@contextmanager
def progress_bar(total: int, enabled: bool, unit: str = "img") -> Iterator[Any]:
    """A tqdm bar on stderr (images/s and ETA); yields a callback that advances it."""
    from tqdm import tqdm

    bar = tqdm(total=total, unit=unit, disable=not enabled or total <= 1, file=sys.stderr, dynamic_ncols=True)
    try:
        yield bar.update
    finally:
        bar.close()


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    if size < 1:
        raise ValueError(f"batch size must be >= 1, got {size}")
    for start in range(0, len(items), size):
        yield items[start : start + size]


def write_batches(
    sources: Sequence[Any], batch_size: int, progress: bool, writer: ResultWriter,
    run: Callable[[Sequence[Any]], Iterable[Any]],
) -> None:
    """Run ``run`` on ``batch_size`` sources at a time, writing each result as soon as its batch is done
    (so an interrupted run keeps every finished batch for ``--resume``).

    Ctrl-C or SIGTERM ends the run with every finished result saved: JSONL and CSV have them already,
    and a Parquet output, written once at the end, is written now.
    """
    try:
        with progress_bar(len(sources), progress) as advance:
            for chunk in chunks(sources, batch_size):
                for result in run(chunk):
                    writer.write(result.to_dict())
                advance(len(chunk))
    except KeyboardInterrupt:
        writer.close()
        if writer.out is not None:
            kept = f"{writer.count} results kept in {writer.out}; --resume continues"
        else:
            kept = f"{writer.count} results printed"
        typer.secho(f"interrupted: {kept}", fg="yellow", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
