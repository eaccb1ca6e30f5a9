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
from typing import Any

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2


def _add_model_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default=None,
                   help="builtin (the default, works offline), base or large (Salesforce BLIP, downloaded on "
                        "request), a Hugging Face id or a model folder.")


def _add_app_options(p: argparse.ArgumentParser, *, sub: bool = False) -> None:
    """The options of the app; on a subcommand (``sub``) they default to nothing at all, since argparse
    lets a subcommand's defaults overwrite what was given before its name
    (``blip-assistant --speech-to-wav DIR open FILE``)."""
    default = {"default": argparse.SUPPRESS} if sub else {}
    p.add_argument("--model", "-m", **default,
                   help="builtin (the default, works offline), base or large (Salesforce BLIP, downloaded on "
                        "request), a Hugging Face id or a model folder.")
    p.add_argument("--speech-log", metavar="FILE.jsonl", **default,
                   help="Also write every utterance as a JSON line (text, requested_at, started_at, action).")
    p.add_argument("--speech-to-wav", metavar="DIR", **default,
                   help="Speak into numbered WAV files in DIR instead of the sound card (for tests).")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blip-assistant",
        description="Hear what is on your screen or in an image, on your own computer. With no command, "
                    "starts the tray app.",
    )
    parser.add_argument("--version", action="store_true", help="Print the version and exit.")
    _add_app_options(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("trigger", help="Send an action to the running assistant (bind this to a desktop "
                                       "shortcut where global hotkeys cannot work, e.g. on Wayland).")
    p.add_argument("action", nargs="?", help="An action name; --list shows them all.")
    p.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    p.add_argument("--list", action="store_true", help="List the action names with their hotkeys.")

    p = sub.add_parser("open", help="Describe an image file in the running assistant (starting it if "
                                    "needed).")
    p.add_argument("image", metavar="IMAGE")
    _add_app_options(p, sub=True)

    p = sub.add_parser("describe", help="Describe image files without the tray app.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Image files.")
    p.add_argument("--json", action="store_true", help="One JSON object per image on stdout.")
    p.add_argument("--detailed", action="store_true", help="A longer description (beam search; slower).")
    _add_model_option(p)

    p = sub.add_parser("ask", help="Answer a question about an image without the tray app.")
    p.add_argument("image", metavar="IMAGE")
    p.add_argument("question", metavar="QUESTION")
    p.add_argument("--json", action="store_true", help="One JSON object on stdout.")
    _add_model_option(p)

    from assistant.personal.cli import add_commands as add_personal_commands  # light: no torch

    add_personal_commands(sub)

    p = sub.add_parser("read", help="Read the text on image files (OCR) without the tray app.")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="Image files.")
    p.add_argument("--json", action="store_true",
                   help="One JSON object per image: image, text, paragraphs, engine, seconds.")
    p.add_argument("--engine", choices=("auto", "tesseract", "rapidocr"), default="auto",
                   help="auto (the default): Tesseract where installed, else RapidOCR.")

    p = sub.add_parser("delete-data", help="Delete your history, corrections, personal models and logs "
                                           "(asks first; your settings are kept).")
    p.add_argument("--yes", action="store_true", help="Do not ask; delete at once.")

    sub.add_parser("model", help="Build and measure models (pretrain, finetune, eval); needs the train extra",
                   add_help=False)
    return parser


def _resolve_model(name: str | None) -> str:
    from assistant.vision import defaults

    return name or defaults.DEFAULT_MODEL


def _loaded_describer(model: str | None) -> Any:
    """A Describer with its model loaded, or None after saying why it could not be loaded."""
    from assistant.describe import Describer
    from assistant.vision.errors import VisionError

    describer = Describer(_resolve_model(model))
    try:
        describer.load()
    except (VisionError, ValueError, OSError) as exc:
        print(f"error: the model could not be loaded: {exc}", file=sys.stderr)
        return None
    return describer


def _report(result: Any, as_json: bool, human: str) -> bool:
    """Print one result: its error on stderr, then its JSON row or ``human``; True when it succeeded."""
    if not result.ok:
        print(f"error: {result.error}", file=sys.stderr)
    if as_json:
        print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
    elif result.ok:
        print(human, flush=True)
    return bool(result.ok)


def cmd_describe(args: argparse.Namespace) -> int:
    describer = _loaded_describer(args.model)
    if describer is None:
        return EXIT_FATAL
    failed = 0
    for image in args.images:
        result = describer.describe(image, detail="detailed" if getattr(args, "detailed", False) else "brief")
        failed += not _report(result, args.json, f"{image}: {result.text}")
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_ask(args: argparse.Namespace) -> int:
    describer = _loaded_describer(args.model)
    if describer is None:
        return EXIT_FATAL
    answer = describer.ask(args.image, args.question)
    return EXIT_OK if _report(answer, args.json, answer.text or "") else EXIT_PARTIAL


def cmd_read(args: argparse.Namespace) -> int:
    from assistant.ocr import TextReader

    reader = TextReader(args.engine)
    failed = 0
    for image in args.images:
        result = reader.read(image)
        failed += not _report(result, args.json, f"{image}:\n{result.text or '(no text found)'}")
    return EXIT_PARTIAL if failed else EXIT_OK


def cmd_trigger(args: argparse.Namespace) -> int:
    from assistant import actions, ipc

    if args.list or not args.action:
        for action in actions.ACTIONS:
            key = f"  [{action.hotkey}]" if action.hotkey else ""
            print(f"{action.id:20} {action.plain_label}{key}")
        return EXIT_OK if args.list else EXIT_FATAL
    if args.action not in actions.BY_ID:
        print(f"error: unknown action {args.action!r}; `blip-assistant trigger --list` shows them",
              file=sys.stderr)
        return EXIT_FATAL
    try:
        ipc.send(args.action, args.args)
    except ipc.NotRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except ipc.IpcError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK


def cmd_open(args: argparse.Namespace) -> int:
    from assistant import ipc

    path = os.path.abspath(args.image)
    try:
        ipc.send("open-image", [path])
        return EXIT_OK
    except ipc.NotRunning:
        args.open_images = [path]
        return cmd_start(args)


def cmd_delete_data(args: argparse.Namespace) -> int:
    """Delete the user's data; a running assistant does it itself (it holds the files open), after
    asking in its own window."""
    from assistant import home, ipc, my_data

    try:
        ipc.send("delete-data", [])
        print("The assistant is running: it asks you to confirm in its window.")
        return EXIT_OK
    except ipc.IpcError:  # NotRunning included: delete here
        pass
    found = my_data.stored()
    if not found:
        print(f"There is no data to delete in {home.home()}.")
        return EXIT_OK
    for what, paths in found.items():
        print(f"{what}: {', '.join(p.name for p in paths)}")
    if not args.yes:
        try:
            answer = input(f"{my_data.CONFIRM_QUESTION} Type yes to delete: ")
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            print("Nothing was deleted.")
            return EXIT_FATAL
    try:
        print(my_data.summary(my_data.delete_all()))
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    return EXIT_OK


def cmd_start(args: argparse.Namespace) -> int:
    """The tray app on a desktop; with no display, say so and describe the example image instead, so a
    set-up script on a machine without a screen shows the assistant working and returns."""
    from assistant.app import display_available

    problem = display_available()
    if problem is None:
        from assistant.app.main import run

        return run(args)
    from assistant import resources

    if args.open_images:
        return cmd_describe(argparse.Namespace(images=args.open_images, json=False, model=args.model))
    print(f"No desktop to show the tray app on ({problem}). Describing the example image instead:")
    example = resources.example_images_dir() / "chelsea.jpg"
    request = argparse.Namespace(images=[str(example)], json=False, model=args.model)
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
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    # `blip-assistant photo.jpg` (a file manager's "Open with") opens the image in the app.
    valued = {"--model", "-m", "--speech-log", "--speech-to-wav"}
    images: list[str] = []
    if not commands & set(argv):
        images = [a for i, a in enumerate(argv)
                  if not a.startswith("-") and (i == 0 or argv[i - 1] not in valued) and os.path.isfile(a)]
        argv = [a for a in argv if a not in images]
    args = parser.parse_args(argv)
    args.open_images = images
    if args.version:
        from assistant import __version__

        print(__version__)
        return EXIT_OK
    # The assistant shares the CPU with a screen reader: one thread answers faster on a busy desktop.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from assistant.personal.cli import HANDLERS as personal_handlers

    handlers = {"describe": cmd_describe, "ask": cmd_ask, "trigger": cmd_trigger, "open": cmd_open,
                "read": cmd_read, "delete-data": cmd_delete_data, None: cmd_start, **personal_handlers}
    try:
        return handlers[args.command](args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
