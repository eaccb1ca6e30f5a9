"""Personal model versions in ``BLIP_ASSISTANT_HOME/personal/<n>/``, and which one is active.

A version folder holds ``adapter.safetensors`` (the low-rank adapters only: megabytes), ``recipe.json``
(the base model it was trained on and how) and ``scores.json`` (what the acceptance test measured). It is
written in a temporary folder and renamed into place, so a half-written version never has a number.
``active.json`` names the active version (or ``base``); it is replaced atomically as well. A version
that cannot be read, or was made for other base weights, is refused with a message, and the version
that was active stays active.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistant import home

FORMAT = 1
ADAPTER_FILE, RECIPE_FILE, SCORES_FILE, ACTIVE_FILE = (
    "adapter.safetensors", "recipe.json", "scores.json", "active.json")
BASE = "base"


class VersionError(ValueError):
    """A version that cannot be used; the message says why, for the user."""


def root(create: bool = False) -> Path:
    """The versions' folder; made only when something is written (reading it leaves no trace on disk)."""
    path = home.home() / "personal"
    if create:
        path.mkdir(mode=0o700, exist_ok=True)
    return path


@dataclass
class Version:
    number: int
    path: Path
    recipe: dict[str, Any] = field(default_factory=dict)
    scores: dict[str, Any] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return str(self.recipe.get("base", ""))

    def summary(self) -> str:
        return str(self.scores.get("summary", ""))

    def tensors(self) -> dict[str, Any]:
        from safetensors.torch import load_file

        try:
            return load_file(self.path / ADAPTER_FILE)
        except Exception as exc:  # safetensors raises its own error types for a damaged file
            raise VersionError(f"personal model {self.number} is damaged ({exc}); it is not used") from None

    def apply(self, blip: Any) -> None:
        """Merge this version into a loaded :class:`~assistant.vision.Blip` (float32 path; the describer
        then puts it on the fast path: :mod:`assistant.personal.fast_path`). The weights are checked
        first, so a version that does not fit leaves the model as it was."""
        from assistant.personal import adapters

        model = blip.checkpoint.model
        if weights_id(blip.checkpoint.path) != self.recipe.get("weights"):
            raise VersionError(f"personal model {self.number} was made for other weights of "
                               f"{self.base!r} (the model was updated); it is not used")
        which = str(self.recipe.get("targets", "all"))
        words = self.recipe.get("user_words")  # None: a version from before the gate speaks everywhere
        if words is not None and not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise VersionError(f"personal model {self.number} has an unreadable recipe; it is not used")
        try:
            tensors = self.tensors()
            adapters.check(model, tensors, int(self.recipe["rank"]), which)
            base = ({model.get_submodule(name).weight: model.get_submodule(name).weight.data.clone()
                     for name in adapters.target_names(model, which)} if words is not None else None)
            adapters.merge(model, tensors, int(self.recipe["rank"]), float(self.recipe["alpha"]), which)
        except (ValueError, KeyError) as exc:
            raise VersionError(f"personal model {self.number} does not fit {self.base!r}: {exc}") from None
        blip.checkpoint.extras["personal"] = self.number
        if base is not None:
            from assistant.personal.gate import Gate

            blip.checkpoint.extras["personal_gate"] = Gate(list(words), base)


def weights_id(path: str | os.PathLike[str]) -> str:
    """Which base weights a version was trained on: size and a hash of the head and tail of each weight
    file (reading all 72 MB would slow every start; a retrained model changes both ends)."""
    digest = hashlib.sha256()
    for file in sorted(Path(path).glob("*.safetensors")):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with file.open("rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read(1 << 20))
    return digest.hexdigest()[:16]


def read_version(path: Path) -> Version:
    """A version folder, checked enough to be listed and chosen (the weights are checked on use)."""
    try:
        number = int(path.name)
    except ValueError:
        raise VersionError(f"{path.name} is not a version number") from None
    try:
        recipe = json.loads((path / RECIPE_FILE).read_text(encoding="utf-8"))
        scores = json.loads((path / SCORES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise VersionError(f"personal model {number} is damaged ({exc}); it is not used") from None
    needed = {"base", "rank", "alpha", "weights"}
    if not isinstance(recipe, dict) or recipe.get("format") != FORMAT or not needed <= set(recipe):
        raise VersionError(f"personal model {number} has an unreadable recipe; it is not used")
    version = Version(number, path, recipe, scores if isinstance(scores, dict) else {})
    _check_header(version)
    return version


def _check_header(version: Version) -> None:
    """Read the safetensors header (not the data): catches a truncated or foreign file cheaply."""
    file = version.path / ADAPTER_FILE
    try:
        size = file.stat().st_size
        with file.open("rb") as f:
            length = int.from_bytes(f.read(8), "little")
            if not 0 < length <= min(size - 8, 16 << 20):
                raise ValueError("bad header")
            header = json.loads(f.read(length))
        header.pop("__metadata__", None)
        end = max((info["data_offsets"][1] for info in header.values()), default=0)
        if 8 + length + end != size or not header:
            raise ValueError("the file is truncated")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise VersionError(f"personal model {version.number} is damaged ({exc}); it is not used") from None


def versions() -> tuple[list[Version], list[str]]:
    """Every version folder, oldest first, and one message per folder that is refused."""
    found, problems = [], []
    folder = root()
    for path in sorted(folder.iterdir() if folder.is_dir() else [], key=lambda p: (len(p.name), p.name)):
        if not path.is_dir() or not path.name.isdigit():
            continue
        try:
            found.append(read_version(path))
        except VersionError as exc:
            problems.append(str(exc))
    return found, problems


def _write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def active_choice() -> str:
    """``base`` or the number (as text) of the version the user chose; newest accepted by default."""
    try:
        data = json.loads((root() / ACTIVE_FILE).read_text(encoding="utf-8"))
        return str(data["active"])
    except (OSError, ValueError, KeyError, TypeError):
        return BASE


def use(choice: str | int) -> Version | None:
    """Make ``choice`` (a version number, or ``base``) the active one; a damaged version is refused and
    the active one stays."""
    if str(choice) == BASE:
        _write_json_atomic(root(create=True) / ACTIVE_FILE, {"active": BASE})
        return None
    path = root() / str(int(choice))
    if not path.is_dir():
        raise VersionError(f"there is no personal model {choice}")
    version = read_version(path)
    version.tensors()  # the data too, not only the header
    _write_json_atomic(root() / ACTIVE_FILE, {"active": version.number})
    return version


def save(tensors: dict[str, Any], recipe: dict[str, Any], scores: dict[str, Any], *,
         activate: bool) -> Version:
    """Store a new version under the next number (temp folder, then rename), and make it active."""
    from safetensors.torch import save_file

    base = root(create=True)
    tmp = base / f".tmp-{uuid.uuid4().hex}"
    tmp.mkdir(mode=0o700)
    try:
        save_file(tensors, str(tmp / ADAPTER_FILE), metadata={"format": str(FORMAT)})
        for name, data in ((RECIPE_FILE, {"format": FORMAT, **recipe}), (SCORES_FILE, scores)):
            (tmp / name).write_text(json.dumps(data, indent=2), encoding="utf-8")
        for file in tmp.iterdir():
            with file.open("rb") as f:
                os.fsync(f.fileno())
        numbers = [int(p.name) for p in base.iterdir() if p.name.isdigit()]
        number = max(numbers, default=0) + 1
        os.rename(tmp, base / str(number))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    version = read_version(base / str(number))
    if activate:
        _write_json_atomic(base / ACTIVE_FILE, {"active": number})
    return version


def active_for(model_name: str, warn: Any = None) -> Version | None:
    """The version to apply on top of ``model_name``: the chosen one if it was trained on that model and
    can be read; if it is damaged, the newest readable version before it (said through ``warn``)."""
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    choice = active_choice()
    if choice == BASE:
        return None
    found, _ = versions()
    chosen = [v for v in found if str(v.number) == choice]
    if not chosen:
        warn(f"personal model {choice} is damaged or missing; using the one before it")
        earlier = [v for v in found if v.number < int(choice)] if choice.isdigit() else []
        chosen = earlier[-1:]
    if not chosen or chosen[0].base != model_name:
        return None
    return chosen[0]


def apply_active(blip: Any, model_name: str, warn: Any = None) -> Version | None:
    """Merge the active version into ``blip`` (loaded as ``model_name``); a version that turns out damaged
    or made for other weights is skipped with a message, for the newest earlier one that works."""
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    first = active_for(model_name, warn)
    if first is None:
        return None
    found, _ = versions()
    for version in [first, *reversed([v for v in found if v.number < first.number and v.base == model_name])]:
        try:
            version.apply(blip)
            return version
        except VersionError as exc:
            warn(str(exc))
    return None


def clean_temporary() -> None:
    """Remove folders a killed save left behind (they never had a number)."""
    for path in root().glob(".tmp-*"):
        shutil.rmtree(path, ignore_errors=True)
