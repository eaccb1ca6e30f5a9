"""Opened images and questions about them, end to end on a real X server (Xvfb, openbox, a tray host): the
app started by ``blip-assistant open FILE``, files handed to it while it runs (``open`` and a file manager's
"Open with", ``blip-assistant FILE``), an unreadable file, next/previous through the folder by the global
hotkeys (xdotool), and a typed follow-up question in the result window, spoken into WAV files."""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from desktop import COMMAND, RunningApp, running_app, sox_seconds, wait_for
from xserver import XServer

pytestmark = pytest.mark.desktop
YES_NO = ("Yes.", "No.", "Probably yes.", "Probably not.", "I'm not sure, but I think yes.",
          "I'm not sure, but I think no.")



def started_with(server: XServer, tmp: Path, *args: str) -> contextlib.AbstractContextManager[RunningApp]:
    """The app started by a command that hands it a file: it says the description rather than "Ready."."""
    return running_app(server, tmp, *args, ready_timeout=None)


def _command(app: RunningApp, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(COMMAND), *args], env=app.env, capture_output=True, text=True, timeout=60,
                          check=False)


def _folder(tmp_path: Path) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.effect_noise((320, 240), 40).convert("RGB").save(folder / "a beach.png")
    Image.effect_noise((300, 200), 60).convert("RGB").save(folder / "b dog.jpg", quality=90)
    (folder / "c broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    Image.effect_noise((200, 300), 80).convert("RGB").save(folder / "d cat.webp")
    return folder


def _description(app: RunningApp, action: str, after: int, what: str) -> dict:
    return app.wait_said(lambda u: u["action"] == action and "still loading" not in u["text"], 90, what,
                         after=after)


def test_open_files_folder_walk_and_a_typed_question(desktop, tmp_path: Path, tiny_models) -> None:
    folder = _folder(tmp_path)
    model = ["--model", str(tiny_models["builtin"])]
    with started_with(desktop, tmp_path, "open", str(folder / "a beach.png"), *model) as app:
        # `blip-assistant open FILE` with no app running starts it on that file
        first = _description(app, "open-image", 0, "the opened file's description")
        assert first["text"].endswith(".") and "Could not" not in first["text"]

        # `open` while it runs: handed over through the trigger socket, answered by the running app
        before = len(app.utterances())
        done = _command(app, "open", str(folder / "b dog.jpg"), *model)
        assert done.returncode == 0, done.stderr
        second = _description(app, "open-image", before, "the second file")
        assert "Could not" not in second["text"]

        # a file manager's "Open with" (the file as the only argument) while it runs; an unreadable file
        before = len(app.utterances())
        done = _command(app, str(folder / "c broken.jpg"), *model)
        assert done.returncode == 0 and "passed on" in done.stdout, (done.stdout, done.stderr)
        broken = _description(app, "open-image", before, "the unreadable file's message")
        assert broken["text"].startswith("Could not describe c broken.jpg: ")
        assert "Traceback" not in broken["text"] and str(folder) not in broken["text"]  # the name, once

        # next and previous through the folder, by the global hotkeys
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+Next")
        nxt = _description(app, "next-image", before, "the next image")
        assert nxt["text"].startswith("d cat.webp, 4 of 4: ")
        time.sleep(0.4)  # past the hotkeys' key-repeat guard (0.35 s): a held key must not flood the app
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+Next")
        end = app.wait_said(lambda u: u["action"] == "next-image", 30, "the end of the folder", after=before)
        assert end["text"] == "d cat.webp is the last of the 4 images in its folder."
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+Prior")
        back = _description(app, "previous-image", before, "the previous image")
        assert back["text"].startswith("Could not describe c broken.jpg, 3 of 4")

        # the ask hotkey: the result window, the focus in its question field; a question typed as spoken
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+q")
        window = wait_for(lambda: desktop.run("xdotool", "search", "--onlyvisible", "--name", "Results",
                                              timeout=5).split(), 20, "the result window")
        time.sleep(0.5)
        desktop.xdotool("type", "--delay", "20", "um, is there a dog in this picture")
        desktop.xdotool("key", "Return")
        answer = app.wait_said(lambda u: u["action"] == "ask", 60, "the answer", after=before)
        assert answer["text"] in YES_NO, answer
        # Up recalls the question; Enter asks it again
        before = len(app.utterances())
        desktop.xdotool("key", "Up", "Return")
        again = app.wait_said(lambda u: u["action"] == "ask", 60, "the repeated answer", after=before)
        assert again["text"] == answer["text"]
        _screenshot(desktop, tmp_path / "result-window.png")
        # Escape closes the window
        desktop.xdotool("key", "Escape")
        wait_for(lambda: window[0] not in _visible(desktop, "Results"), 10, "the window to close")
        # really spoken: the unreadable file's message is speech in a WAV file
        wav = wait_for(lambda: next((e for e in app.wav_index() if e["text"] == broken["text"]), None), 30,
                       "its WAV file")
        assert sox_seconds(app.wav_dir / wav["file"]) > 1.0
        assert app.quit() == 0


def _visible(server: XServer, name: str) -> list[str]:
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=server.env,
                           capture_output=True, text=True, timeout=5, check=False)
    return found.stdout.split()


def _screenshot(server: XServer, path: Path) -> None:
    import os

    import mss

    with server.active(), mss.MSS() as grab:
        shot = grab.grab(grab.monitors[1])
        Image.frombytes("RGB", shot.size, shot.rgb).save(path)
    keep = os.environ.get("BLIP_ASSISTANT_SCREENSHOTS")  # a folder to keep them in, for a look
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        Image.open(path).save(Path(keep) / path.name)
