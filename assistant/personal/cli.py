"""``blip-assistant corrections ...`` and ``blip-assistant personalize ...``.

Imported by :mod:`assistant.cli` when its parser is built, so nothing heavy at the top: torch loads only
when a personal model is trained.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any

EXIT_OK, EXIT_FATAL, EXIT_PARTIAL = 0, 1, 2


def add_commands(sub: Any) -> None:
    p = sub.add_parser("corrections", help="List, import or export your corrected captions.")
    verbs = p.add_subparsers(dest="verb", metavar="ACTION")
    verbs.add_parser("list", help="One line per correction: number, date, your caption.")
    q = verbs.add_parser("import", help="Add corrections from a CSV file (columns image, caption; image "
                                        "paths relative to the CSV file's folder).")
    q.add_argument("file", metavar="FILE.csv")
    q = verbs.add_parser("export", help="Write every correction to a CSV file, with the images in a "
                                        "folder beside it (FILE_images/).")
    q.add_argument("file", metavar="FILE.csv")
    q = verbs.add_parser("delete", help="Delete one correction by number, or all of them with --all.")
    q.add_argument("number", nargs="?", type=int)
    q.add_argument("--all", action="store_true")

    p = sub.add_parser("personalize", help="Teach the model your corrections (a personal model), or "
                                           "choose which personal model is used.")
    p.add_argument("--json", action="store_true", help="The result as one JSON object on stdout.")
    p.add_argument("--list", action="store_true", help="List the personal models and which one is in use.")
    p.add_argument("--use", metavar="N|base", help="Use personal model N, or the base model.")
    p.add_argument("--fresh", action="store_true", help="Start afresh instead of going on from a stopped "
                                                            "run.")
    p.add_argument("--steps", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--model", "-m", default=None, help="The model to personalize (default: builtin).")


def cmd_corrections(args: argparse.Namespace) -> int:
    from assistant.personal.corrections import CorrectionError, CorrectionStore

    with CorrectionStore() as store:
        try:
            if args.verb == "import":
                added, refused = store.import_csv(args.file)
                for message in refused:
                    print(f"error: {message}", file=sys.stderr)
                tail = f"; {len(refused)} rows refused." if refused else "."
                print(f"Imported {added} corrections{tail}")
                return EXIT_PARTIAL if refused else EXIT_OK
            if args.verb == "export":
                rows = store.export_csv(args.file)
                print(f"Exported {rows} corrections to {args.file}.")
                return EXIT_OK
            if args.verb == "delete":
                if args.all:
                    print(f"Deleted {store.delete_all()} corrections.")
                elif args.number is not None:
                    store.delete(args.number)
                    print(f"Deleted correction {args.number}.")
                else:
                    print("error: give a correction number, or --all", file=sys.stderr)
                    return EXIT_FATAL
                return EXIT_OK
            items = store.list()
            for c in items:
                was = f"   (was: {c.model_caption})" if c.model_caption else ""
                print(f"{c.id:5d}  {c.when}  {c.caption}{was}")
            if not items:
                print("No corrections yet. In the result window, press F2 to correct a caption.")
            return EXIT_OK
        except CorrectionError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return EXIT_FATAL


def cmd_personalize(args: argparse.Namespace) -> int:
    from assistant.personal import versions

    if args.list:
        found, problems = versions.versions()
        active = versions.active_choice()
        rows = [{"version": v.number, "base": v.base, "active": str(v.number) == active,
                 "summary": v.summary()} for v in found]
        if args.json:
            print(json.dumps({"active": active, "versions": rows, "problems": problems}, ensure_ascii=False))
        else:
            print(f"{'*' if active == versions.BASE else ' '} base   the model as shipped, not personalized")
            for r in rows:
                print(f"{'*' if r['active'] else ' '} {r['version']:<6} on {r['base']}: {r['summary']}")
            for message in problems:
                print(f"warning: {message}", file=sys.stderr)
        return EXIT_OK
    if args.use:
        try:
            chosen = versions.use(args.use)
        except (versions.VersionError, ValueError) as exc:
            active = versions.active_choice()
            stays = "the base model" if active == versions.BASE else f"personal model {active}"
            print(f"error: {exc}; {stays} stays in use", file=sys.stderr)
            return EXIT_FATAL
        print("The base model is in use." if chosen is None else f"Personal model {chosen.number} is in use.")
        return EXIT_OK
    return _train(args)


def _train(args: argparse.Namespace) -> int:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from assistant.personal import trainer
    from assistant.personal.corrections import CorrectionError
    from assistant.vision import defaults
    from assistant.vision.errors import VisionError

    torch.set_num_threads(1)

    def say(text: str, _fraction: float | None) -> None:
        print(text, file=sys.stderr, flush=True)

    recipe = trainer.Recipe(steps=args.steps)
    # The app's Stop sends SIGTERM: stop at the next step, with the run saved to go on from
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    try:
        outcome = trainer.personalize(args.model or defaults.DEFAULT_MODEL, recipe=recipe, progress=say,
                                      resume=not args.fresh, cancel=lambda: stop["now"])
    except trainer.Cancelled as exc:
        print(str(exc), file=sys.stderr)
        return 130
    except (trainer.PersonalizeError, CorrectionError, VisionError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    if args.json:
        print(json.dumps(outcome.to_dict(), ensure_ascii=False))
    else:
        print(outcome.summary)
    return EXIT_OK if outcome.accepted else EXIT_PARTIAL


HANDLERS = {"corrections": cmd_corrections, "personalize": cmd_personalize}
