"""Turn what a user typed (an alias, a hub id, a folder, ``builtin``) into a local checkpoint folder.

Hub checkpoints are fetched as safetensors and JSON/text files only, so that no pickle ever reaches the
disk. With ``HF_HUB_OFFLINE=1``, or with no network, only the local cache is used, and a checkpoint that
is not in it fails at once with a message that says how to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

from assistant import model_store, resources
from assistant.vision import defaults
from assistant.vision.errors import ModelNotFoundError

BUILTIN_NAME = "builtin"
# Lets a freshly trained built-in model stand in for the shipped one.
BUILTIN_ENV = "BLIP_ASSISTANT_BUILTIN_DIR"

# Only these files are ever downloaded: configs, tokenizer files and safetensors weights.
HUB_ALLOW_PATTERNS = list(model_store.ALLOW_PATTERNS)


def builtin_dir() -> Path:
    """The built-in model's folder: shipped in ``resources/models/builtin`` (see
    :mod:`assistant.resources`)."""
    if os.environ.get(BUILTIN_ENV):
        return Path(os.environ[BUILTIN_ENV])
    return resources.builtin_model_dir()


TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def env_flag(name: str) -> bool | None:
    """A yes/no environment variable: None when unset or empty, and a clear error for any other word."""
    value = os.environ.get(name, "").strip().lower()
    if not value:
        return None
    if value not in TRUE_WORDS | FALSE_WORDS:
        raise ValueError(f"{name} must be 0 or 1, not {value!r}")
    return value in TRUE_WORDS


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in TRUE_WORDS


def portable_name(name: str, path: Path) -> str:
    """The name that loads the checkpoint ``name`` (found at ``path``) again from any working folder: a
    local folder's absolute path; the built-in model, an alias or a hub id as it is."""
    if name == BUILTIN_NAME or name in defaults.MODEL_ALIASES or not Path(name).expanduser().exists():
        return name
    return str(path.resolve())


def resolve_checkpoint(name_or_path: str | os.PathLike[str]) -> Path:
    """Return a local folder holding ``config.json`` and safetensors weights for ``name_or_path``."""
    name = str(name_or_path)
    if not name.strip():  # Path("") is the current folder: never guess that an empty name meant it
        raise ModelNotFoundError(
            f"the model name is empty; give {BUILTIN_NAME}, an alias, a hub id or a folder")
    if name == BUILTIN_NAME:
        folder = builtin_dir()
        if not (folder / "config.json").is_file():
            raise ModelNotFoundError(
                f"the built-in model's weights are not installed at {folder}. Reinstall blip-assistant (the "
                "weights ship inside it), or rebuild them with `blip-assistant model pretrain --config "
                "resources/models/builtin/recipe.yaml --install`."
            )
        return folder
    downloaded = _downloaded(name)
    if downloaded is not None:
        return downloaded
    name = defaults.MODEL_ALIASES.get(name, name)
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise ModelNotFoundError(f"{path} is not a model folder: it has no config.json")
        return path
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise ModelNotFoundError(
            f"no model folder at {name!r}, and it is not a Hugging Face hub id (owner/name) or an alias "
            f"({', '.join(sorted(defaults.MODEL_ALIASES))}, {BUILTIN_NAME})"
        )
    return _from_hub(name)


def _downloaded(name: str) -> Path | None:
    """The folder the settings window downloaded ``name`` into (``BLIP_ASSISTANT_HOME/models/<name>``), if
    it is complete: a download in progress or interrupted is never loaded."""
    if model_store.choice_for(name) is None or Path(name).expanduser().exists():
        return None
    return model_store.installed(name)


def _from_hub(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    how = (
        f"Download it on a machine with network access, e.g. `hf download {repo_id}` (it lands in the "
        f"Hugging Face cache, {_cache_dir()}), copy that cache here, or pass a folder saved by "
        "`save_pretrained`."
    )
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, HFValidationError):
        folder = None
    if folder is not None and (folder / "config.json").is_file():
        return folder
    if hub_offline():
        raise ModelNotFoundError(
            f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. {how}"
        )
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=HUB_ALLOW_PATTERNS))
    except Exception as exc:  # network errors come in many types; all mean the same to the user
        raise ModelNotFoundError(
            f"could not download {repo_id} from the Hugging Face hub ({exc}). {how}"
        ) from exc
    if not any(folder.glob("*.safetensors")):
        raise ModelNotFoundError(
            f"{repo_id} has no safetensors weights; the assistant loads safetensors weights only")
    return folder


def _cache_dir() -> str:
    from huggingface_hub.constants import HF_HUB_CACHE

    return str(HF_HUB_CACHE)
