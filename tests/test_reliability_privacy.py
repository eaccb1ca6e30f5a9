"""What the assistant keeps, and where (issue #28, items 4 and 5): the log rotates and holds no screen
content unless the user turns on debug logging; a screenshot never reaches the disk when no history is
kept (every file any of the app's Python processes opens for writing is recorded, ``tests/files_hook``);
"Delete all my data" deletes history, corrections, personal models and logs, from the tray (after a
confirmation) and from ``blip-assistant delete-data``."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from desktop import app_env, running_app, wait_for

ROOT = Path(__file__).resolve().parents[1]
FILES_HOOK = Path(__file__).resolve().parent / "files_hook"
COMMAND = Path(sys.executable).parent / "blip-assistant"
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*", b"RIFF", b"P6\n", b"P3\n")
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pnm"}
# The words on the screen: they must reach the user's ears and nowhere on disk
SECRET_LINES = ["Account 4711 quokka balance", "Zanzibar overdraft notice"]


# --- the log --------------------------------------------------------------------------------------
def test_the_log_rotates_within_its_bound_and_is_private(tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import logs

    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        path = logs.setup(False, max_bytes=20_000, backups=2)
        worker = logging.getLogger("assistant.test")
        for i in range(5_000):  # about 500 KB of log lines
            worker.info("timing action=describe-screen capture_ms=%d model_s=0.512 queued_s=0.001", i)
        files = sorted(path.parent.glob("assistant.log*"))
        assert [f.name for f in files] == ["assistant.log", "assistant.log.1", "assistant.log.2"]
        assert all(f.stat().st_size <= 20_000 for f in files)
        assert all(stat.S_IMODE(f.stat().st_mode) == 0o600 for f in files)
        assert "capture_ms=4999" in path.read_text()  # the newest lines are in the current file
        # screen content only with debug logging on
        logs.content("said (describe-screen)", "a quokka on a sofa")
        assert "quokka" not in path.read_text()
        logs.set_debug(True)
        logs.content("said (describe-screen)", "a quokka on a sofa")
        assert "said (describe-screen): a quokka on a sofa" in path.read_text()
    finally:
        logs.set_debug(False)
        for handler in root.handlers[:]:
            if handler not in saved[0]:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(saved[1])


def test_a_crash_leaves_where_each_thread_was_in_a_private_file_that_delete_removes(tmp_path: Path) -> None:
    """A segmentation fault (in Qt, a driver, a library) used to leave nothing but an exit code."""
    home = tmp_path / "home"
    child = (
        "import sys, faulthandler; from assistant import logs; "
        "print(logs.trace_crashes()); sys.stdout.flush(); faulthandler._sigsegv()"
    )
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home)}
    env.pop("PYTHONFAULTHANDLER", None)
    done = subprocess.run([sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == -11, done
    crash = Path(done.stdout.strip())
    assert crash == home / "logs" / "crash.log"
    text = crash.read_text()
    assert "Segmentation fault" in text and "Current thread" in text and 'File "<string>"' in text, text
    assert stat.S_IMODE(crash.stat().st_mode) == 0o600
    moved = subprocess.run([sys.executable, "-c", "from assistant import logs; print(logs.last_crash())"],
                           env=env, capture_output=True, text=True, timeout=60, check=True)
    assert "stopped unexpectedly" in moved.stdout and not crash.exists()
    assert "Segmentation fault" in (crash.parent / "crash.log.1").read_text()
    removed = subprocess.run([sys.executable, "-c", "from assistant import logs; print(logs.remove_all())"],
                             env=env, capture_output=True, text=True, timeout=60, check=True)
    assert removed.stdout.strip() == "1" and not any(crash.parent.glob("crash.log*"))


def test_after_a_crash_the_next_start_says_so_and_keeps_where_it_was(desktop, tmp_path: Path,
                                                                     tiny_models) -> None:
    """The app dies of a segmentation fault (sent to it, as a crash in Qt would raise it); started again,
    it says that it stopped unexpectedly and where the details are, once."""
    import signal

    env = app_env(desktop, tmp_path)
    runs = [tmp_path / name for name in ("crashed", "first", "second")]  # each start's speech log apart
    for run in runs:
        run.mkdir()
    with running_app(desktop, runs[0], "--model", str(tiny_models["builtin"]), env=env) as app:
        app.proc.send_signal(signal.SIGSEGV)
        assert app.proc.wait(30) == -signal.SIGSEGV
    logs_dir = Path(env["BLIP_ASSISTANT_HOME"]) / "logs"
    assert "Segmentation fault" in (logs_dir / "crash.log").read_text()
    notice = "The assistant stopped unexpectedly last time."
    for start in (1, 2):
        with running_app(desktop, runs[start], "--model", str(tiny_models["builtin"]), env=env) as app:
            said = [u["text"] for u in app.utterances()]
            assert app.quit() == 0
        assert any(t.startswith(notice) and "crash.log.1" in t for t in said) == (start == 1), said
        assert "Segmentation fault" in (logs_dir / "crash.log.1").read_text()
        assert not (logs_dir / "crash.log").read_text()  # this start's own file, empty: no crash



def _secret_page(desktop, tmp_path: Path):
    from ocr_text import render

    page = tmp_path / "statement.png"
    render([[line] for line in SECRET_LINES], 18, width=700).save(page)
    viewer, window = desktop.show_image(page, "Bank statement", 120, 80)
    desktop.xdotool("windowactivate", "--sync", str(window))
    time.sleep(0.4)  # openbox places the window late
    return viewer, page


def _describe_read_ask(desktop, app) -> list[str]:
    """Describe the screen, read the window's text, ask a question: the screen content that was said."""
    said = []
    for key, action in (("ctrl+alt+d", "describe-screen"), ("ctrl+alt+x", "read-text")):
        before = len(app.utterances())
        desktop.xdotool("key", key)
        app.wait_said(lambda u, a=action: u["action"] == a, 90, action, after=before)
        time.sleep(3)  # the text part and the further paragraphs
        said += [u["text"] for u in app.utterances()[before:] if u["action"] == action]
    before = len(app.utterances())
    desktop.xdotool("key", "ctrl+alt+q")
    time.sleep(1.0)  # the result window takes the focus, in its question field
    desktop.xdotool("type", "--delay", "20", "what does it say")
    desktop.xdotool("key", "Return")
    answer = app.wait_said(lambda u: u["action"] == "ask", 60, "the answer", after=before)
    return [*said, answer["text"]]


def _files_written(log: Path) -> list[Path]:
    if not log.exists():
        return []
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    return sorted({Path(parts[2]) for parts in lines if len(parts) == 3})


def _is_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except OSError:  # deleted since, or a folder
        return False
    return any(head.startswith(m) for m in IMAGE_MAGIC) and not (head.startswith(b"RIFF") and
                                                                 head[8:12] == b"WAVE")


@pytest.mark.desktop
def test_no_history_means_no_screenshot_and_no_screen_text_on_disk(desktop, tmp_path: Path,
                                                                    tiny_models) -> None:
    """Describe, read and ask about a window with private words, with "Keep no history" on: no file that
    any process of the app wrote is an image, the words are in no file of the data folder (the log
    included), and the log does hold the timings (so it was written and looked at)."""
    if not (ROOT / "resources").exists():
        pytest.skip("no resources")
    viewer, _page = _secret_page(desktop, tmp_path)
    written = tmp_path / "written.log"
    private_tmp = tmp_path / "tmp"
    private_tmp.mkdir()
    env = app_env(desktop, tmp_path)
    home = Path(env["BLIP_ASSISTANT_HOME"])
    (home / "settings.json").write_text(json.dumps({"version": 1, "settings": {
        "app.show_welcome": False, "history.keep_none": True}}))
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(FILES_HOOK), env.get("PYTHONPATH")])),
           "FILES_WRITTEN_LOG": str(written), "TMPDIR": str(private_tmp)}
    try:
        with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
            said = _describe_read_ask(desktop, app)
            assert app.quit() == 0
    finally:
        viewer.terminate()
    assert any("quokka" in s.lower() for s in said), said  # the words were read out...
    files = _files_written(written)
    assert any(f.name == "assistant.log" for f in files), files  # (the hook saw the app's writes)
    images = [f for f in files if _is_image(f)]
    assert images == [], images
    on_disk = [p for folder in (home, private_tmp) for p in folder.rglob("*") if p.is_file()]
    assert not [p for p in on_disk if _is_image(p)]
    for path in on_disk:  # ...and written nowhere in the data folder: not the log, not a history
        data = path.read_bytes().lower()
        assert b"quokka" not in data and b"zanzibar" not in data, path
    assert not (home / "history.sqlite3").exists()
    log = (home / "logs" / "assistant.log").read_text()
    assert "timing action=describe-screen" in log and "timing action=read-text" in log
    for text in said:
        assert text not in log


@pytest.mark.desktop
def test_debug_logging_on_writes_what_was_said(desktop, tmp_path: Path, tiny_models) -> None:
    """The same check can fail: with "Debug logging" on, what was said is in the log."""
    viewer, _page = _secret_page(desktop, tmp_path)
    env = app_env(desktop, tmp_path)
    (Path(env["BLIP_ASSISTANT_HOME"]) / "settings.json").write_text(json.dumps({"version": 1, "settings": {
        "app.show_welcome": False, "app.debug_log": True}}))
    try:
        with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
            before = len(app.utterances())
            desktop.xdotool("key", "ctrl+alt+x")
            read = app.wait_said(lambda u: u["action"] == "read-text" and "quokka" in u["text"].lower(), 90,
                                 "the text", after=before)
            assert app.quit() == 0
    finally:
        viewer.terminate()
    log = (app.home / "logs" / "assistant.log").read_text()
    assert "read (read-text): " in log and read["text"].rstrip(".") in log


# --- delete all my data ---------------------------------------------------------------------------
def _make_data(home: Path) -> None:
    """History, corrections, a personal model folder, logs and a damaged settings file, made by the real
    stores."""
    from assistant.history_store import HistoryStore
    from assistant.personal.corrections import CorrectionStore

    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    with HistoryStore() as history:
        history.add("a cat on a sofa", action="describe-screen", image=Image.new("RGB", (64, 48), "red"))
    with CorrectionStore() as store:
        store.add(Image.new("RGB", (64, 48), "blue"), "my blue door")
    (home / "personal" / "1").mkdir(parents=True)
    (home / "personal" / "1" / "adapter.safetensors").write_bytes(b"x" * 100)
    (home / "personal" / "active.json").write_text('{"active": 1}')
    (home / "logs").mkdir(mode=0o700, exist_ok=True)
    (home / "logs" / "assistant.log").write_text("timing\n")
    (home / "logs" / "assistant.log.1").write_text("timing\n")
    (home / "settings.json.bad-20260101-000000").write_text("{broken")
    (home / "settings.json").write_text(json.dumps({"version": 1, "settings": {"speech.rate": 220}}))


def test_delete_data_command_asks_then_deletes_everything_but_the_settings(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from assistant import my_data

    home = tmp_path / "home"
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(home))
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    _make_data(home)
    assert set(my_data.stored()) == {"history", "corrections", "personal models", "logs",
                                     "damaged settings files kept aside"}
    env = {**os.environ, "BLIP_ASSISTANT_HOME": str(home), "XDG_RUNTIME_DIR": str(runtime)}
    no = subprocess.run([str(COMMAND), "delete-data"], input="no\n", env=env, capture_output=True, text=True,
                        timeout=60)
    assert no.returncode == 1 and "Nothing was deleted." in no.stdout, no.stdout + no.stderr
    assert len(my_data.stored()) == 5
    yes = subprocess.run([str(COMMAND), "delete-data"], input="yes\n", env=env, capture_output=True,
                         text=True, timeout=60)
    assert yes.returncode == 0, yes.stdout + yes.stderr
    assert ("Deleted your history, corrections, personal models, logs and damaged settings files kept "
            "aside.") in yes.stdout
    assert my_data.stored() == {}
    assert sorted(p.name for p in home.iterdir()) == ["settings.json"]
    assert json.loads((home / "settings.json").read_text())["settings"] == {"speech.rate": 220}
    again = subprocess.run([str(COMMAND), "delete-data", "--yes"], env=env, capture_output=True, text=True,
                           timeout=60)
    assert again.returncode == 0 and "There is no data to delete" in again.stdout


@pytest.mark.desktop
def test_delete_all_my_data_from_the_tray_asks_first_and_the_app_goes_on(
        desktop, tmp_path: Path, tiny_models, monkeypatch: pytest.MonkeyPatch) -> None:
    env = app_env(desktop, tmp_path)
    home = Path(env["BLIP_ASSISTANT_HOME"])
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(home))
    _make_data(home)
    with running_app(desktop, tmp_path, "--model", str(tiny_models["builtin"]), env=env) as app:
        # Escape keeps everything
        before = len(app.utterances())
        assert app.trigger("delete-data").returncode == 0
        question = app.wait_said(lambda u: u["action"] == "delete-data", 20, "the question", after=before)
        assert question["text"].startswith("Delete all your data") and "Escape keeps" in question["text"]
        wait_for(lambda: _visible(desktop, "Delete all my data"), 20, "the confirmation")
        time.sleep(0.3)
        desktop.xdotool("key", "Escape")
        app.wait_said(lambda u: u["text"] == "Nothing was deleted.", 20, "nothing deleted", after=before)
        assert (home / "corrections.sqlite3").exists() and (home / "personal").exists()
        # Alt+Y deletes
        before = len(app.utterances())
        assert app.trigger("delete-data").returncode == 0
        wait_for(lambda: _visible(desktop, "Delete all my data"), 20, "the confirmation")
        time.sleep(0.3)
        desktop.xdotool("key", "alt+y")
        done = app.wait_said(lambda u: u["text"].startswith("Deleted your"), 30, "the deletion", after=before)
        assert all(w in done["text"] for w in ("history", "corrections", "personal models", "logs"))
        assert not (home / "corrections.sqlite3").exists() and not (home / "personal").exists()
        assert not (home / "logs" / "assistant.log.1").exists()
        assert not list(home.glob("settings.json.bad-*"))
        # the app goes on: a description, kept in a new, empty history
        before = len(app.utterances())
        desktop.xdotool("key", "ctrl+alt+d")
        app.wait_said(lambda u: u["action"] == "describe-screen", 60, "a description", after=before)
        assert app.quit() == 0
    from assistant.history_store import HistoryStore

    with HistoryStore(home / "history.sqlite3") as history:
        texts = [e.text for e in history.list()]
    assert texts and "a cat on a sofa" not in texts  # the old entry is gone, the new one is kept
    assert (home / "logs" / "assistant.log").exists()  # logging started again, in a new file


def _visible(server, name: str) -> list[str]:
    found = subprocess.run(["xdotool", "search", "--onlyvisible", "--name", name], env=server.env,
                           capture_output=True, text=True, timeout=5, check=False)
    return found.stdout.split()
