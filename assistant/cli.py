"""The ``blip-assistant`` command.

With no arguments it starts the tray app. Subcommands work without the tray, for scripts, CI and
people who prefer a terminal. argparse, not a CLI framework: ``blip-assistant trigger`` must start in a
few tens of milliseconds, so this module imports nothing heavy at the top.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2


def _add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="builtin (the default, works offline), base or large (Salesforce BLIP, downloaded on "
                        "request), a Hugging Face id or a model folder.")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blip-assistant",
        description="Hear what is on your screen or in an image, on your own computer. With no command, "
                    "starts the tray app.",
    )
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("describe", help="Describe image files without the tray app.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Image files.")
    p.add_argument("--json", action="store_true", help="One JSON object per image on stdout.")
    _add_model_option(p)

    sub.add_parser("model", help="Build and measure models (pretrain, finetune, eval); needs the train extra",
                   add_help=False)
    return parser


def _resolve_model(name: str | None) -> str:
    from assistant.vision import defaults

    return name or defaults.DEFAULT_MODEL


def cmd_describe(args: argparse.Namespace) -> int:
    from assistant.describe import Describer
    from assistant.vision.errors import VisionError

    describer = Describer(_resolve_model(args.model))
    try:
        describer.load()
    except (VisionError, ValueError, OSError) as exc:
        print(f"error: the model could not be loaded: {exc}", file=sys.stderr)
        return EXIT_FATAL
    failed = 0
    for image in args.images:
        result = describer.describe(image)
        if not result.ok:
            failed += 1
            print(f"error: {result.error}", file=sys.stderr)
        if args.json:
            print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
        elif result.ok:
            print(f"{image}: {result.text}", flush=True)
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    """The tray app on a desktop; with no display, say so and describe the example image instead, so a
    set-up script on a machine without a screen shows the assistant working and returns."""
    from assistant.app import display_available

    problem = display_available()
    if problem is None:
        from assistant.app.main import run

        return run(args)
    from assistant import resources

    print(f"No desktop to show the tray app on ({problem}). Describing the example image instead:")
    example = resources.example_images_dir() / "chelsea.jpg"
    request = argparse.Namespace(images=[str(example)], json=False, model=getattr(args, "model", None))
    return cmd_describe(request)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["model"]:
        try:
            from assistant.training.cli_main import main as model_main
        except ImportError as exc:
            print("error: the model commands need the train extra "
                  f"(pip install 'blip-assistant[train]'): {exc}",
                  file=sys.stderr)
            return EXIT_FATAL
        return model_main(argv[1:])
    args = build_parser().parse_args(argv)
    if args.version:
        from assistant import __version__

        print(__version__)
        return EXIT_OK
    # The assistant shares the CPU with a screen reader: one thread answers faster on a busy desktop.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    handlers = {"describe": cmd_describe, None: cmd_start}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
