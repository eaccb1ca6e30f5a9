"""The trigger channel: round trips, refusals, stale sockets, one assistant per user, permissions, other
users, and a client that imports nothing heavy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistant import ipc

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="the Unix-socket transport")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """A private runtime folder with a short path (sun_path is 108 bytes) and a private data folder."""
    runtime = Path(tempfile.mkdtemp(prefix="bt-ipc-"))
    os.chmod(runtime, 0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "home"))
    yield runtime
    shutil.rmtree(runtime, ignore_errors=True)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, action: str, args: list[str]) -> None:
        self.calls.append((action, args))


@pytest.fixture()
def server(env: Path) -> Iterator[tuple[ipc.TriggerServer, Recorder]]:
    recorder = Recorder()
    srv = ipc.TriggerServer(recorder).start()
    yield srv, recorder
    srv.close()


def raw(path: str, data: bytes) -> dict:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(5)
        s.connect(path)
        s.sendall(data)
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = s.recv(4096)
            if not chunk:
                break
            reply += chunk
    return json.loads(reply)


def test_round_trip(server: tuple[ipc.TriggerServer, Recorder]) -> None:
    _, recorder = server
    assert ipc.send("describe-screen") == {"ok": True}
    assert ipc.send("open-image", ["/tmp/a picture ✓.png"]) == {"ok": True}
    assert recorder.calls == [("describe-screen", []), ("open-image", ["/tmp/a picture ✓.png"])]
    assert ipc.ping() == {"ok": True, "pid": os.getpid()}
    times = []
    for _ in range(50):
        started = time.perf_counter()
        ipc.send("repeat")
        times.append((time.perf_counter() - started) * 1000)
    print(f"\nIPC round trip: median {statistics.median(times):.2f} ms, max {max(times):.2f} ms "
          "(50 requests)")
    assert statistics.median(times) < 100


def test_handler_can_be_rebound_and_its_failures_are_replies(
        server: tuple[ipc.TriggerServer, Recorder]) -> None:
    srv, _ = server
    srv.on_action = None
    with pytest.raises(ipc.Refused, match="still starting"):
        ipc.send("describe-screen")
    seen = []
    srv.on_action = lambda action, args: seen.append(action)
    ipc.send("stop")
    assert seen == ["stop"]

    def broken(action: str, args: list[str]) -> None:
        raise RuntimeError("no model")

    srv.on_action = broken
    with pytest.raises(ipc.Refused, match="could not start describe-screen: no model"):
        ipc.send("describe-screen")
    assert srv.running  # the server survives the handler's failure


def test_unknown_action_and_bad_requests_are_refused(server: tuple[ipc.TriggerServer, Recorder]) -> None:
    srv, recorder = server
    with pytest.raises(ipc.Refused) as info:
        ipc.send("format-disk")
    assert "Unknown action 'format-disk'" in str(info.value)
    assert "known actions: describe-screen, describe-region" in str(info.value)
    assert info.value.reply["ok"] is False
    assert ipc.request({"action": "nope"})["ok"] is False
    assert "list of strings" in ipc.request({"action": "open-image", "args": [1]})["error"]
    assert "Too many arguments" in ipc.request({"action": "open-image", "args": ["a"] * 17})["error"]
    assert raw(srv.address, b"not json\n") == {"ok": False, "error": "The request is not valid JSON."}
    assert "longer than" in raw(srv.address, b'{"action": "' + b"x" * 20000 + b'"}\n')["error"]
    with pytest.raises(ipc.IpcError, match="too long"):
        ipc.send("open-image", ["x" * 20000])
    assert recorder.calls == []


def test_silent_client_does_not_block_the_server(server: tuple[ipc.TriggerServer, Recorder],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    srv, recorder = server
    monkeypatch.setattr(ipc, "READ_TIMEOUT_S", 0.3)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as silent:
        silent.connect(srv.address)
        started = time.perf_counter()
        assert ipc.send("stop") == {"ok": True}
        assert time.perf_counter() - started < 3
    assert recorder.calls == [("stop", [])]


def test_client_not_running(env: Path) -> None:
    with pytest.raises(ipc.NotRunning, match="not running"):
        ipc.send("describe-screen")
    assert ipc.ping() is None
    # A socket file with nobody behind it (a killed app) is "not running" too.
    path = str(ipc.socket_path())
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(path)
    leftover.close()
    with pytest.raises(ipc.NotRunning):
        ipc.send("describe-screen")


def test_stale_socket_file_is_replaced(env: Path) -> None:
    path = ipc.socket_path()
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(path))
    leftover.close()
    assert path.exists()
    recorder = Recorder()
    with ipc.TriggerServer(recorder):
        assert ipc.send("describe-window") == {"ok": True}
    assert recorder.calls == [("describe-window", [])]
    assert not path.exists()  # close() removes its own socket


SERVER_SCRIPT = textwrap.dedent("""
    import sys, threading
    from assistant import ipc
    try:
        server = ipc.TriggerServer(lambda action, args: None).start()
    except ipc.AlreadyRunning as exc:
        print("ALREADY", exc, flush=True)
        sys.exit(3)
    print("READY", flush=True)
    threading.Event().wait()
""")


def start_server_process() -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", SERVER_SCRIPT], cwd=REPO, stdout=subprocess.PIPE,
                            text=True, env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "READY", line
    return proc


def test_socket_of_a_killed_app_is_replaced(env: Path) -> None:
    proc = start_server_process()
    try:
        assert ipc.ping()["pid"] == proc.pid  # type: ignore[index]
        with pytest.raises(ipc.AlreadyRunning, match=f"already running \\(process {proc.pid}\\)"):
            ipc.TriggerServer(Recorder()).start()
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(5)
    assert ipc.socket_path().exists()  # left behind: SIGKILL runs no cleanup
    recorder = Recorder()
    with ipc.TriggerServer(recorder):
        assert ipc.send("stop") == {"ok": True}
        assert ipc.ping()["pid"] == os.getpid()  # type: ignore[index]
    assert recorder.calls == [("stop", [])]


def test_second_server_is_already_running(server: tuple[ipc.TriggerServer, Recorder]) -> None:
    srv, _ = server
    with pytest.raises(ipc.AlreadyRunning, match=f"process {os.getpid()}"):
        ipc.TriggerServer(Recorder()).start()
    # The same from another process, as a second `blip-assistant` start sees it.
    out = subprocess.run([sys.executable, "-c", SERVER_SCRIPT], cwd=REPO, capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)), timeout=30)
    assert out.returncode == 3 and "ALREADY The assistant is already running" in out.stdout
    assert srv.running and ipc.send("repeat") == {"ok": True}  # the first one is untouched


def test_close_releases_everything(env: Path) -> None:
    first = ipc.TriggerServer(Recorder()).start()
    first.close()
    first.close()  # twice is fine
    assert not first.running
    with ipc.TriggerServer(Recorder()):
        assert ipc.send("stop") == {"ok": True}


def test_permissions(server: tuple[ipc.TriggerServer, Recorder], env: Path) -> None:
    srv, _ = server
    folder = Path(srv.address).parent
    assert folder == env / "blip-assistant"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(os.stat(srv.address).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(srv.address).st_mode)


def test_runtime_dir_fallback_and_repair(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    folder = ipc.runtime_dir()
    assert folder == tmp_path / f"blip-assistant-{os.getuid()}"
    os.chmod(folder, 0o755)  # loosened by someone: tightened again
    assert stat.S_IMODE(ipc.runtime_dir().stat().st_mode) == 0o700
    # Separate data folders get separate channels.
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "a"))
    a = ipc.socket_path()
    monkeypatch.setenv("BLIP_ASSISTANT_HOME", str(tmp_path / "b"))
    assert ipc.socket_path() != a


def as_nobody_available() -> str | None:
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root to run a client as another user"
    if not shutil.which("setpriv"):
        return "needs setpriv (util-linux)"
    if not os.access("/usr/bin/python3", os.X_OK):
        return "needs /usr/bin/python3 that user nobody can run"
    return None


def run_as_nobody(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                           "/usr/bin/python3", "-B", "-c", code], capture_output=True, text=True, timeout=30,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"})


CLIENT_SCRIPT = textwrap.dedent("""
    import sys
    from assistant import ipc
    try:
        print("REPLY", ipc.send("describe-screen", address=sys.argv[1]))
    except ipc.IpcError as exc:
        print(type(exc).__name__, exc)
""")


@pytest.mark.skipif(as_nobody_available() is not None, reason=str(as_nobody_available()))
def test_other_user_cannot_reach_or_use_the_socket(server: tuple[ipc.TriggerServer, Recorder],
                                                   env: Path) -> None:
    srv, recorder = server
    folder = Path(srv.address).parent
    code = CLIENT_SCRIPT.replace("sys.argv[1]", repr(srv.address))
    # The 0700 folder stops another user before the socket.
    out = run_as_nobody(code)
    assert "IpcError" in out.stdout and "permission denied" in out.stdout, out.stdout + out.stderr
    # Even with the folder and the socket opened up, the server asks the kernel who is calling.
    os.chmod(env, 0o755)
    os.chmod(folder, 0o755)
    os.chmod(srv.address, 0o666)
    out = run_as_nobody(code)
    assert "Refused Refused: the request came from another user." in out.stdout, out.stdout + out.stderr
    assert recorder.calls == []
    assert ipc.send("stop") == {"ok": True}  # the owner still gets through


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to chown")
def test_folder_owned_by_another_user_is_refused(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    trap = tmp_path / f"blip-assistant-{os.getuid()}"
    trap.mkdir(mode=0o777)
    os.chown(trap, 65534, 65534)
    with pytest.raises(ipc.IpcError, match="belongs to another user"):
        ipc.runtime_dir()


def test_client_import_is_light() -> None:
    code = ("import sys, time; t = time.perf_counter(); import assistant.ipc; "
            "print(round((time.perf_counter() - t) * 1000, 1)); "
            "print(sorted(m for m in ('PIL', 'numpy', 'torch', 'PySide6', 'mss', 'pynput', "
            "'assistant.capture', 'assistant.hotkeys', 'multiprocessing') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True,
                         env=dict(os.environ, PYTHONPATH=str(REPO)))
    import_ms, heavy = out.stdout.splitlines()
    print(f"\n`import assistant.ipc`: {import_ms} ms")
    assert heavy == "[]"


def test_pipe_transport_with_authkey(env: Path, tmp_path: Path) -> None:
    """The Windows code path (multiprocessing.connection + authkey), run over an AF_UNIX address here."""
    address = str(env / "pipe-test.sock")
    recorder = Recorder()
    with ipc.TriggerServer(recorder, transport="pipe", address=address) as srv:
        assert ipc.send("open-image", ["/x.png"], transport="pipe", address=address) == {"ok": True}
        with pytest.raises(ipc.Refused, match="known actions"):
            ipc.send("nope", transport="pipe", address=address)
        key = ipc.authkey_path()
        assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_text()) == 64
        good = key.read_text()
        key.write_text("0" * 64)
        with pytest.raises(ipc.IpcError, match="did not accept this program's key"):
            ipc.send("stop", transport="pipe", address=address)
        key.write_text(good)
        assert ipc.send("stop", transport="pipe", address=address) == {"ok": True}
        assert srv.running
    assert recorder.calls == [("open-image", ["/x.png"]), ("stop", [])]
    with pytest.raises(ipc.NotRunning):
        ipc.send("stop", transport="pipe", address=address)


def test_close_from_the_handler_thread(env: Path) -> None:
    """The app may quit (and close the server) from inside on_action."""
    done = threading.Event()
    holder: list[ipc.TriggerServer] = []

    def on_action(action: str, args: list[str]) -> None:
        holder[0].close()
        done.set()

    holder.append(ipc.TriggerServer(on_action).start())
    assert ipc.send("quit") == {"ok": True}  # the accepted connection still carries the answer
    assert done.wait(2)
    assert not ipc.socket_path().exists()
    with pytest.raises(ipc.NotRunning):
        ipc.send("stop")
    with ipc.TriggerServer(Recorder()):
        assert ipc.send("stop") == {"ok": True}
