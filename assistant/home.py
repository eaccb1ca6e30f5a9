"""Where the assistant keeps the user's data: settings, history, corrections, personal models, logs.

``BLIP_ASSISTANT_HOME`` overrides the platform's user data folder, so tests and portable installs
run isolated.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HOME_ENV = "BLIP_ASSISTANT_HOME"
APP_DIR_NAME = "blip-assistant"


def home() -> Path:
    """The data folder (created on first use, readable by the user alone)."""
    env = os.environ.get(HOME_ENV)
    if env:
        path = Path(env).expanduser()
    elif sys.platform == "win32":
        path = Path(os.environ.get("APPDATA") or Path.home() / "AppData" / "Roaming") / APP_DIR_NAME
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / APP_DIR_NAME
    else:
        path = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP_DIR_NAME
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


def settings_file() -> Path:
    return home() / "settings.json"


def logs_dir() -> Path:
    path = home() / "logs"
    path.mkdir(mode=0o700, exist_ok=True)
    return path
