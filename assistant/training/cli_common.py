"""What the model commands share: model and decoding options, exit codes, and model loading."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import typer

from assistant.vision import defaults

# exit codes: 0 all good, 1 usage or fatal error, 2 some inputs failed (the rest were processed),
# 130 interrupted (Ctrl-C or SIGTERM; what was done is kept), as shells report a SIGINT
EXIT_OK, EXIT_FATAL, EXIT_PARTIAL, EXIT_INTERRUPTED = 0, 1, 2, 130

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
    help="The CPU fast path (bfloat16/int8 matmuls) or transformers' float32. "
    "Default: BLIP_ASSISTANT_FAST if set, "
    "else fast on CPUs with bfloat16 units or int8 kernels.",
    show_default=False,
)
BatchOption = typer.Option(defaults.BATCH_SIZE, "--batch-size", "-b", min=1, help="Images per batch.")
ProgressOption = typer.Option(True, "--progress/--no-progress", help="Progress bar on stderr.")
# Decoding (assistant.vision.tasks.generation.GenerationSettings), the same on every command that writes
# captions.
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
    """Load a model for a command, turning the engine errors into a clean message and exit code 1."""
    from assistant import vision
    from assistant.vision.errors import VisionError

    try:
        return vision.load(model, task, device=device, dtype=dtype, threads=threads, fast=fast)
    except (VisionError, ValueError) as exc:
        raise fail(str(exc)) from exc


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
        with tempfile.NamedTemporaryFile(dir=out.parent, prefix=".write-check-"):
            pass
    except OSError as exc:
        raise fail(f"cannot write {option} {out}: {exc.strerror or exc}") from exc
    if out.exists() and not os.access(out, os.W_OK):
        raise fail(f"cannot write {option} {out}: permission denied")
