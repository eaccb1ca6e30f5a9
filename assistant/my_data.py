"""What the assistant keeps about the user, and "Delete all my data".

One list of what is personal (history, corrections, personal models, logs, old damaged settings files)
shared by the tray action, ``blip-assistant delete-data`` and the README's "What is stored where". The
settings file stays (it holds choices, not content) and so do downloaded public models.

Qt-free and torch-free; the app closes what it holds open (the history database, a personalization
run, the log file) before calling :func:`delete_all`.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant import home

SQLITE_SIDE_FILES = ("", "-wal", "-shm", "-journal")


@dataclass(frozen=True)
class Item:
    what: str  # words for the user
    paths: tuple[str, ...]  # relative to the data folder; a trailing "*" is a glob


ITEMS: tuple[Item, ...] = (
    Item("history", tuple(f"history.sqlite3{s}" for s in SQLITE_SIDE_FILES)),
    Item("corrections", tuple(f"corrections.sqlite3{s}" for s in SQLITE_SIDE_FILES)),
    Item("personal models", ("personal",)),
    Item("logs", ("logs",)),
    Item("damaged settings files kept aside", ("settings.json.bad-*",)),
)

CONFIRM_QUESTION = (
    "Delete all your data: your history, corrections, personal models and logs? This cannot be undone. "
    "Your settings and downloaded models are kept."
)


def _paths(item: Item, folder: Path) -> list[Path]:
    found: list[Path] = []
    for pattern in item.paths:
        if pattern.endswith("*"):
            found += sorted(folder.glob(pattern))
        elif (folder / pattern).exists() or (folder / pattern).is_symlink():
            found.append(folder / pattern)
    return found


def stored(folder: Path | None = None) -> dict[str, list[Path]]:
    """What of each item is on disk now."""
    folder = folder or home.home()
    return {item.what: paths for item in ITEMS if (paths := _paths(item, folder))}


def delete_all(folder: Path | None = None) -> list[str]:
    """Delete every item; returns what was deleted, in words. A file that cannot be deleted raises
    OSError after the others were deleted."""
    folder = folder or home.home()
    deleted, failures = [], []
    for item in ITEMS:
        paths = _paths(item, folder)
        for path in paths:
            try:
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
            except OSError as exc:
                failures.append(f"{path.name}: {exc.strerror or exc}")
        if paths:
            deleted.append(item.what)
    if failures:
        raise OSError("could not delete " + "; ".join(failures))
    return deleted


def summary(deleted: list[str]) -> str:
    if not deleted:
        return "There was no data to delete."
    return f"Deleted your {_join(deleted)}."


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
