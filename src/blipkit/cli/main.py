"""The ``blipkit`` command: each area of the toolkit registers its commands from its own module."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="blipkit",
    help="BLIP vision-language models: caption, ask, match, embed, search, train, evaluate, serve.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Each module defines `register(app)`. Order sets the order in `blipkit --help`.
COMMAND_MODULES = ("core", "training", "index", "serve", "jobs")

for _name in COMMAND_MODULES:
    importlib.import_module(f"blipkit.cli.{_name}").register(app)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", help="Print the version and exit.")) -> None:
    if version:
        from blipkit import __version__

        typer.echo(__version__)
        raise typer.Exit()


def _sigterm_interrupts() -> None:
    """SIGTERM (a job scheduler's stop, `kill`) unwinds like Ctrl-C, so that commands keep what they
    finished (see ``cli.common.write_batches``); `blipkit serve` installs its own graceful handler."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


def main() -> None:
    """The console entry point: training commands first move onto jemalloc (see runtime.allocator).

    A file or folder that cannot be read or written (an ``--out`` in a missing or read-only place...)
    ends the command with its error message and exit code 1, not a traceback; ``BLIPKIT_TRACEBACK=1``
    shows the traceback.
    """
    import os
    import sys

    from blipkit.cli.common import EXIT_FATAL
    from blipkit.runtime.allocator import reexec_for_training

    reexec_for_training(sys.argv)
    _sigterm_interrupts()
    try:
        app()
    except OSError as exc:
        if os.environ.get("BLIPKIT_TRACEBACK"):
            raise
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(EXIT_FATAL)
