"""``blip-assistant model ...``: the commands that build and measure models (pre-training the built-in
model, fine-tuning, evaluation). They need the ``train`` extra, which brings typer."""

from __future__ import annotations

import typer

from assistant.training import cli

app = typer.Typer(
    name="blip-assistant model",
    help="Build and measure models: pretrain the built-in model, fine-tune, evaluate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
cli.register(app)


def _sigterm_interrupts() -> None:
    """SIGTERM (a scheduler's stop, `kill`) unwinds like Ctrl-C, so that training keeps its checkpoints."""
    import signal

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, interrupt)


def main(argv: list[str]) -> int:
    """Run a model command. Training moves onto jemalloc first (see training.allocator).

    A file or folder that cannot be read or written ends the command with its message and exit code 1,
    not a traceback; ``BLIP_ASSISTANT_TRACEBACK=1`` shows the traceback.
    """
    import os
    import sys

    from assistant.training.allocator import reexec_for_training
    from assistant.training.cli_common import EXIT_FATAL

    reexec_for_training(sys.argv)
    _sigterm_interrupts()
    try:
        app(args=argv, prog_name="blip-assistant model", standalone_mode=False)
    except typer.Exit as exc:
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        return 130
    except OSError as exc:
        if os.environ.get("BLIP_ASSISTANT_TRACEBACK"):
            raise
        typer.secho(f"error: {exc}", fg="red", err=True)
        return EXIT_FATAL
    except Exception as exc:  # click's usage errors carry their own message and exit code
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0
