"""The models a user can choose, and the folder where downloaded ones live.

Qt-free and torch-free (the settings window reads it). Downloaded models live in
``BLIP_ASSISTANT_HOME/models/<name>``; a download in progress lives in ``models/.incomplete/<name>`` and
becomes ``models/<name>`` by one rename once every file is verified (:mod:`assistant.model_download`).
A folder counts as installed only with its manifest, which is written last, so the engine never loads a
half-downloaded model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant import home
from assistant.vision import defaults

BUILTIN = "builtin"
MANIFEST = "blip-assistant-model.json"  # written last: its presence means "complete and verified"
INCOMPLETE = ".incomplete"  # downloads in progress and interrupted ones, resumable

# The only files ever downloaded, here and by the engine's hub fallback (assistant.vision.runtime.resolve):
# configs, tokenizer files and safetensors weights; never a pickle.
ALLOW_PATTERNS = ("*.json", "*.txt", "*.safetensors", "*.model")


@dataclass(frozen=True)
class Choice:
    """A model offered in the settings: ``name`` is what the ``model.name`` setting holds."""

    name: str
    label: str
    repo: str | None  # the hub repository; None for the built-in model
    approx_bytes: int  # shown before the exact size is known: the hub's own figure replaces it
    about: str
    describes: bool = True  # False: a question model, used beside the chosen one, never chosen itself


# Sizes from the hub's file listings (the safetensors weights plus a few small text files), rounded:
# the fallback shown when the hub cannot be asked, always said to be approximate.
CHOICES: tuple[Choice, ...] = (
    Choice(BUILTIN, "Built-in model", None, 72_000_000,
           "Ships with the assistant and works offline. Small and fast; describes and answers questions."),
    Choice("base", "Salesforce BLIP base", defaults.MODEL_ALIASES["base"], 990_000_000,
           "Salesforce's BLIP captioning model, base size. Describes only: questions need the built-in "
           "model or the BLIP question model."),
    Choice("large", "Salesforce BLIP large", defaults.MODEL_ALIASES["large"], 1_880_000_000,
           "Salesforce's BLIP captioning model, large size: slower, sometimes more detailed. "
           "Describes only."),
    Choice("vqa", "Salesforce BLIP questions (VQA base)", defaults.MODEL_ALIASES["vqa"], 1_540_000_000,
           "Salesforce's BLIP question-answering model, base size. Answers questions when the chosen model "
           "cannot (BLIP base and large); it is never the describing model.", describes=False),
)
BY_NAME: dict[str, Choice] = {c.name: c for c in CHOICES}


def choice_for(name: str) -> Choice | None:
    """The catalogue entry that ``name`` (a choice name, an alias or a hub id) stands for."""
    if name in BY_NAME:
        return BY_NAME[name]
    repo = defaults.MODEL_ALIASES.get(name, name)
    return next((c for c in CHOICES if c.repo == repo), None)


def models_dir() -> Path:
    path = home.home() / "models"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


def incomplete_dir(name: str) -> Path:
    return models_dir() / INCOMPLETE / name


def is_complete(folder: Path) -> bool:
    """A model folder the engine may load: its manifest (written after verification), a config and
    safetensors weights."""
    return ((folder / MANIFEST).is_file() and (folder / "config.json").is_file()
            and any(folder.glob("*.safetensors")))


def installed(name: str) -> Path | None:
    """The complete downloaded folder for ``name`` (a choice, an alias or a hub id), else None. Never an
    incomplete or staging folder."""
    choice = choice_for(name)
    if choice is None or choice.repo is None:
        return None
    folder = home.home() / "models" / choice.name  # reading only: creates no models folder
    return folder if is_complete(folder) else None


def partial_bytes(name: str) -> int:
    """Bytes already downloaded by an interrupted or cancelled download of ``name`` (kept to resume)."""
    folder = incomplete_dir(name)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.name.endswith(".json"))


def remove(name: str) -> None:
    """Delete ``name``'s downloaded folder and any partial download of it."""
    for folder in (models_dir() / name, incomplete_dir(name)):
        if folder.is_dir():
            shutil.rmtree(folder)


def size_words(n: int) -> str:
    """Bytes as people say them: "990 megabytes", "1.9 gigabytes"."""
    if n >= 1_000_000_000:
        return f"{n / 1e9:.1f} gigabytes"
    if n >= 10_000_000:
        return f"{n / 1e6:.0f} megabytes"
    if n >= 1_000_000:
        return f"{n / 1e6:.1f} megabytes"
    if n >= 1_000:
        return f"{n / 1e3:.0f} kilobytes"
    return f"{n} bytes"


def folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used as a model folder, in words; None when it can. Checks what the engine
    needs (a BLIP config, safetensors weights, the tokenizer and image settings) without loading it."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        return f"{folder} is not a folder."
    config_file = folder / "config.json"
    if not config_file.is_file():
        return f"{folder} has no config.json: it is not a saved model folder."
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return f"config.json in {folder} cannot be read ({exc})."
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not architectures or not any("Blip" in str(a) for a in architectures):
        return f"{folder} holds a {architectures or 'unknown'} model; the assistant runs BLIP models only."
    if not any(folder.glob("*.safetensors")):
        if any(folder.glob("*.bin")) or any(folder.glob("*.pt")) or any(folder.glob("*.pth")):
            return (f"{folder} has only PyTorch pickle weights (.bin); the assistant loads .safetensors "
                    "weights only, because a pickle file can run code.")
        return f"{folder} has no .safetensors weights."
    if not (folder / "preprocessor_config.json").is_file():
        return f"{folder} has no preprocessor_config.json (the image settings)."
    if not ((folder / "tokenizer.json").is_file() or (folder / "vocab.txt").is_file()):
        return f"{folder} has no tokenizer (tokenizer.json or vocab.txt)."
    return None
