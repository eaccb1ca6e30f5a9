"""The local channel from ``blip-assistant trigger ACTION`` (and a second start) to the running assistant.

Plain sockets, no Qt, nothing heavy at import, so ``trigger`` bound to a desktop shortcut answers fast.

- Linux and macOS: a Unix-domain socket in a folder only the user can enter ($XDG_RUNTIME_DIR/blip-assistant,
  else a 0700 folder named with the uid under the system temp dir), the socket itself 0600. On Linux the
  server also asks the kernel who connected (SO_PEERCRED) and refuses other users, root included.
- Windows: a named pipe through multiprocessing.connection, with an authkey kept in the user's data folder
  (written by the server, read by the client; a process that cannot read the folder cannot connect).

One request per connection, one JSON line each way, at most MAX_MESSAGE bytes:
    {"action": "describe-screen"}                     -> {"ok": true}
    {"action": "open-image", "args": ["/abs/path"]}   -> {"ok": true}
    {"action": "nope"}                                -> {"ok": false, "error": "... known actions: ..."}
    {"ping": true}                                    -> {"ok": true, "pid": 1234}

Only one assistant runs per user: the server holds an exclusive lock (flock) for its lifetime, which the
kernel drops when the process dies, so a socket file left by a killed app is known to be stale and replaced.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import logging
import os
import socket
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from assistant import actions

log = logging.getLogger(__name__)

MAX_MESSAGE = 16 * 1024  # a few paths; anything larger is not a request from our client
MAX_ARGS = 16
TIMEOUT_S = 5.0
# How long the server waits for a connected client to send its line; a stuck client costs this much.
READ_TIMEOUT_S = 2.0
APP_DIR = "blip-assistant"
_UNIX_PATH_MAX = 104  # sockaddr_un.sun_path is 108 bytes on Linux, 104 on macOS

OnAction = Callable[[str, list[str]], None]


class IpcError(RuntimeError):
    """The channel failed; ``str()`` is a sentence for the user."""


class NotRunning(IpcError):
    """No assistant is listening."""


class AlreadyRunning(IpcError):
    """Another assistant of this user is running and holds the channel."""


class Refused(IpcError):
    """The assistant answered with an error (unknown action, bad arguments); ``reply`` has it."""

    def __init__(self, reply: dict[str, Any]) -> None:
        super().__init__(str(reply.get("error") or "the assistant refused the request"))
        self.reply = reply


_NOT_RUNNING = "The assistant is not running; start it first (run `blip-assistant`)."


# -- where ------------------------------------------------------------------------------------------


def _instance_suffix() -> str:
    # A portable install or a test run with its own data folder gets its own channel, so it never
    # talks to (or blocks) the user's everyday assistant.
    home = os.environ.get("BLIP_ASSISTANT_HOME")
    if not home:
        return ""
    return "-" + hashlib.sha256(os.path.abspath(os.path.expanduser(home)).encode()).hexdigest()[:10]


def runtime_dir() -> Path:
    """The private folder that holds the socket (created 0700 if needed; refused if someone else owns it)."""
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base) and _owned_by_me(Path(base)):
        path = Path(base) / APP_DIR
    else:
        import tempfile

        path = Path(tempfile.gettempdir()) / f"{APP_DIR}-{os.getuid()}"
    _ensure_private_dir(path)
    return path


def _owned_by_me(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.getuid()
    except OSError:
        return False


def _ensure_private_dir(path: Path) -> None:
    with contextlib.suppress(FileExistsError):
        path.mkdir(mode=0o700)
    st = path.lstat()
    import stat

    if not stat.S_ISDIR(st.st_mode):
        raise IpcError(f"{path} should be a folder for the assistant's socket, but it is something else.")
    if st.st_uid != os.getuid():
        # Under the shared temp dir someone may have created it first to catch our requests.
        raise IpcError(f"The folder {path} belongs to another user, so the assistant will not use it; "
                       "remove it or set XDG_RUNTIME_DIR.")
    if st.st_mode & 0o077:
        os.chmod(path, 0o700)


def socket_path() -> Path:
    path = runtime_dir() / f"trigger{_instance_suffix()}.sock"
    if len(os.fsencode(path)) >= _UNIX_PATH_MAX:
        raise IpcError(f"The socket path {path} is too long for a Unix socket; set XDG_RUNTIME_DIR to a "
                       "shorter folder.")
    return path


def pipe_name() -> str:
    user = os.environ.get("USERNAME") or os.environ.get("USER") or "user"
    safe = "".join(c if c.isalnum() else "_" for c in user)
    return rf"\\.\pipe\{APP_DIR}-{safe}{_instance_suffix()}"


def authkey_path() -> Path:
    from assistant import home

    return home.home() / "ipc.key"


def _authkey(path: Path, create: bool) -> bytes:
    """The shared secret of the pipe transport; the server creates it once, the client only reads it."""
    if create and not path.exists():
        import secrets

        with contextlib.suppress(FileExistsError):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32))
    try:
        return path.read_text(encoding="ascii").strip().encode()
    except FileNotFoundError:
        raise NotRunning(_NOT_RUNNING) from None
    except OSError as exc:
        raise IpcError(f"The assistant's key {path} cannot be read ({exc.strerror}).") from exc


def default_transport() -> str:
    return "pipe" if sys.platform == "win32" else "unix"


# -- messages ---------------------------------------------------------------------------------------


def encode(message: dict[str, Any]) -> bytes:
    data = json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"
    if len(data) > MAX_MESSAGE:
        raise IpcError(f"The request is too long ({len(data)} bytes; at most {MAX_MESSAGE}).")
    return data


def check_request(message: Any) -> tuple[str, list[str]]:
    """(action, args) of a request; ValueError with the words of the error reply otherwise."""
    if not isinstance(message, dict):
        raise ValueError("A request is a JSON object such as {\"action\": \"describe-screen\"}.")
    action = message.get("action")
    known = ", ".join(actions.BY_ID)
    if not isinstance(action, str) or action not in actions.BY_ID:
        raise ValueError(f"Unknown action {action!r}; known actions: {known}.")
    args = message.get("args", [])
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ValueError("The arguments must be a list of strings.")
    if len(args) > MAX_ARGS:
        raise ValueError(f"Too many arguments ({len(args)}; at most {MAX_ARGS}).")
    return action, list(args)


def _read_line(conn: socket.socket) -> bytes:
    """One line of at most MAX_MESSAGE bytes; ValueError when longer, b"" when the peer sent nothing."""
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = conn.recv(4096)
        if not chunk:
            return b"".join(chunks)
        newline = chunk.find(b"\n")
        if newline >= 0:
            chunks.append(chunk[:newline])
            size += newline
        else:
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_MESSAGE:
            raise ValueError(f"The request is longer than {MAX_MESSAGE} bytes.")
        if newline >= 0:
            return b"".join(chunks)


def _peer_uid(conn: socket.socket) -> int | None:
    """The connecting process's uid as the kernel reports it (Linux); None where it cannot be asked."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # macOS/BSD: the 0700 folder is the only gate
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


# -- server -----------------------------------------------------------------------------------------


class TriggerServer:
    """Listens for requests and calls ``on_action(action_id, args)`` for each valid one.

    ``on_action`` runs on the server's thread and may be replaced at any time (the app binds it once its
    GUI is up); it should hand the request to the GUI thread and return. Its reply goes back after it
    returns: an exception becomes an error reply.
    """

    def __init__(self, on_action: OnAction | None, *, transport: str | None = None,
                 address: str | os.PathLike[str] | None = None) -> None:
        self.on_action = on_action
        self.transport = transport or default_transport()
        if self.transport not in ("unix", "pipe"):
            raise ValueError(f"unknown transport {self.transport!r}")
        self._address = os.fspath(address) if address is not None else None
        self._sock: socket.socket | None = None
        self._listener: Any = None
        self._lock_file: Any = None
        self._inode: int | None = None
        self._thread: threading.Thread | None = None
        self._closing = threading.Event()

    @property
    def address(self) -> str:
        if self._address is None:
            self._address = str(socket_path()) if self.transport == "unix" else pipe_name()
        return self._address

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> TriggerServer:
        if self._thread is not None:
            raise IpcError("The trigger server is already started.")
        if self.transport == "unix":
            self._start_unix()
        else:
            self._start_pipe()
        self._thread = threading.Thread(target=self._serve, name="blip-assistant-ipc", daemon=True)
        self._thread.start()
        return self

    def __enter__(self) -> TriggerServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- unix ----------------------------------------------------------------------------------------

    def _start_unix(self) -> None:
        import fcntl

        path = Path(self.address)
        _ensure_private_dir(path.parent)
        lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            lock.close()
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise AlreadyRunning(_already_running(self.transport, self.address)) from None
            raise IpcError(f"The assistant's lock file cannot be taken ({exc.strerror}).") from exc
        try:
            if path.exists() or path.is_symlink():
                # We hold the lock, so no assistant of ours owns this socket: a killed app left it.
                # Something that still answers there is not ours to replace, though.
                if _answers(self.transport, str(path)):
                    raise AlreadyRunning(_already_running(self.transport, str(path)))
                log.info("replacing the stale socket %s", path)
                path.unlink()
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.bind(str(path))
                # The folder is 0700 already; 0600 on the socket keeps it private if the folder is loosened.
                os.chmod(path, 0o600)
                sock.listen(16)
            except BaseException:
                sock.close()
                raise
        except BaseException:
            lock.close()
            raise
        self._sock, self._lock_file, self._inode = sock, lock, path.stat().st_ino

    def _serve_unix(self) -> None:
        assert self._sock is not None
        while not self._closing.is_set():
            try:
                conn, _ = self._sock.accept()  # blocks; close() wakes it with a connection of its own
            except OSError:
                if self._closing.is_set():
                    return
                log.exception("accepting a trigger connection failed")
                # EMFILE and friends: wait for a close-or-timeout instead of spinning on accept().
                self._closing.wait(0.5)
                continue
            with conn:
                if self._closing.is_set():
                    return
                self._handle_unix(conn)

    def _handle_unix(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(READ_TIMEOUT_S)
            # The line is read (bounded) before any answer, even a refusal: closing on a client that is
            # still sending would reach it as a broken pipe instead of the reason.
            try:
                line = _read_line(conn)
            except ValueError as exc:
                conn.sendall(encode({"ok": False, "error": str(exc)}))
                return
            uid = _peer_uid(conn)
            if uid is not None and uid != os.getuid():
                log.warning("refused a trigger request from uid %s", uid)
                conn.sendall(encode({"ok": False, "error": "Refused: the request came from another user."}))
                return
            if line:
                conn.sendall(encode(self._answer(line)))
        except OSError as exc:  # the client went away or timed out: nothing to answer
            log.debug("trigger connection failed: %s", exc)

    # -- pipe (multiprocessing.connection) ----------------------------------------------------------

    def _start_pipe(self) -> None:
        from multiprocessing.connection import Listener

        key = _authkey(authkey_path(), create=True)
        if _answers(self.transport, self.address):
            raise AlreadyRunning(_already_running(self.transport, self.address))
        try:
            # Windows creates the first pipe instance with FILE_FLAG_FIRST_PIPE_INSTANCE: a second
            # server fails here even if the first did not answer in time.
            self._listener = Listener(self.address, family=_family(self.address), authkey=key)
        except OSError as exc:
            raise AlreadyRunning(_already_running(self.transport, self.address)) from exc

    def _serve_pipe(self) -> None:
        from multiprocessing import AuthenticationError

        while not self._closing.is_set():
            try:
                conn = self._listener.accept()  # blocks; checks the authkey before returning
            except AuthenticationError:
                log.warning("refused a trigger connection with a wrong key")
                continue
            except OSError:
                if self._closing.is_set():
                    return
                log.exception("accepting a trigger connection failed")
                self._closing.wait(0.5)
                continue
            with conn:
                if self._closing.is_set():
                    return
                try:
                    if not conn.poll(READ_TIMEOUT_S):  # a bounded wait for one message, not a loop
                        continue
                    try:
                        line = conn.recv_bytes(MAX_MESSAGE)
                    except OSError:
                        conn.send_bytes(encode({"ok": False, "error": f"The request is longer than "
                                                                      f"{MAX_MESSAGE} bytes."}))
                        continue
                    conn.send_bytes(encode(self._answer(line.rstrip(b"\n"))))
                except (OSError, EOFError) as exc:
                    log.debug("trigger connection failed: %s", exc)

    # -- shared --------------------------------------------------------------------------------------

    def _serve(self) -> None:
        if self.transport == "unix":
            self._serve_unix()
        else:
            self._serve_pipe()

    def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            message = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            return {"ok": False, "error": "The request is not valid JSON."}
        if isinstance(message, dict) and message.get("ping") is True:
            return {"ok": True, "pid": os.getpid()}
        try:
            action, args = check_request(message)
        except ValueError as exc:
            return {"ok": False, "error": str(exc)}
        handler = self.on_action
        if handler is None:
            return {"ok": False, "error": "The assistant is still starting; try again in a moment."}
        try:
            handler(action, args)
        except Exception as exc:
            log.exception("trigger %s failed", action)
            return {"ok": False, "error": f"The assistant could not start {action}: {exc}"}
        return {"ok": True}

    def close(self) -> None:
        """Stop listening, remove the socket and release the lock. Safe to call twice."""
        self._closing.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._wake()
            if thread is not threading.current_thread():
                thread.join(TIMEOUT_S)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            path = Path(self.address)
            with contextlib.suppress(OSError):
                # Only our own socket: a new server may already have replaced it.
                if path.stat().st_ino == self._inode:
                    path.unlink()
        if self._listener is not None:
            with contextlib.suppress(OSError):
                self._listener.close()
            self._listener = None
        if self._lock_file is not None:
            self._lock_file.close()  # releases the flock
            self._lock_file = None

    def _wake(self) -> None:
        """Unblock accept(): a connection to ourselves, which the loop sees after _closing is set."""
        if self.transport == "unix" and self._sock is not None:
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(1.0)
                    s.connect(self.address)
            except OSError as exc:
                log.debug("could not wake the trigger server: %s", exc)
        elif self._listener is not None:
            # Client() waits for the server's challenge; if the server thread saw _closing and left on
            # its own just before, nobody will send one. So knock from a throwaway thread, which ends with
            # an error once close() closes the listener.
            threading.Thread(target=self._knock, name="blip-assistant-ipc-wake", daemon=True).start()

    def _knock(self) -> None:
        from multiprocessing.connection import Client

        try:
            key = _authkey(authkey_path(), create=False)
            Client(self.address, family=_family(self.address), authkey=key).close()
        except Exception as exc:
            log.debug("wake-up connection ended: %s", exc)


# -- client -----------------------------------------------------------------------------------------


def _family(address: str) -> str:
    return "AF_PIPE" if address.startswith("\\\\") else "AF_UNIX"


def request(message: dict[str, Any], *, timeout: float = TIMEOUT_S, transport: str | None = None,
            address: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Send one message and return the reply as it came; NotRunning when no assistant listens."""
    transport = transport or default_transport()
    data = encode(message)
    if transport == "unix":
        return _request_unix(data, os.fspath(address) if address is not None else str(socket_path()), timeout)
    return _request_pipe(data, os.fspath(address) if address is not None else pipe_name(), timeout)


def _request_unix(data: bytes, path: str, timeout: float) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        try:
            s.connect(path)
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(_NOT_RUNNING) from None
        except PermissionError as exc:
            raise IpcError(f"The assistant's socket {path} cannot be opened (permission denied); it belongs "
                           "to another user.") from exc
        except TimeoutError as exc:
            raise IpcError(f"The assistant did not accept the request within {timeout:g} s.") from exc
        try:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                # A server that refuses early may close before all was sent; its reason is still there.
                s.sendall(data)
            reply = _read_line(s)
        except TimeoutError as exc:
            raise IpcError(f"The assistant did not answer within {timeout:g} s.") from exc
        except (OSError, ValueError) as exc:
            raise IpcError(f"The connection to the assistant failed ({exc}).") from exc
    return _decode_reply(reply)


def _request_pipe(data: bytes, address: str, timeout: float) -> dict[str, Any]:
    from multiprocessing import AuthenticationError
    from multiprocessing.connection import Client

    key = _authkey(authkey_path(), create=False)
    try:
        conn = Client(address, family=_family(address), authkey=key)
    except (FileNotFoundError, ConnectionRefusedError):
        raise NotRunning(_NOT_RUNNING) from None
    except AuthenticationError as exc:
        raise IpcError("The running assistant did not accept this program's key.") from exc
    except OSError as exc:
        if getattr(exc, "winerror", None) == 2:  # ERROR_FILE_NOT_FOUND: no such pipe
            raise NotRunning(_NOT_RUNNING) from None
        raise IpcError(f"The connection to the assistant failed ({exc}).") from exc
    with conn:
        try:
            conn.send_bytes(data)
            if not conn.poll(timeout):
                raise IpcError(f"The assistant did not answer within {timeout:g} s.")
            reply = conn.recv_bytes(MAX_MESSAGE)
        except (OSError, EOFError) as exc:
            raise IpcError(f"The connection to the assistant failed ({exc}).") from exc
    return _decode_reply(reply.rstrip(b"\n"))


def _decode_reply(line: bytes) -> dict[str, Any]:
    if not line:
        raise IpcError("The assistant closed the connection without answering.")
    try:
        reply = json.loads(line)
    except ValueError as exc:
        raise IpcError("The assistant's answer was not understood.") from exc
    if not isinstance(reply, dict):
        raise IpcError("The assistant's answer was not understood.")
    return reply


def send(action: str, args: Sequence[str] = (), *, timeout: float = TIMEOUT_S, transport: str | None = None,
         address: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Ask the running assistant to do ``action``; the reply ({"ok": true}) on success.

    NotRunning when no assistant listens, Refused when it answers with an error (an unknown action names
    the known ones), IpcError for anything else. Paths in ``args`` should be absolute: the assistant's
    working folder is not the caller's.
    """
    reply = request({"action": action, "args": list(args)}, timeout=timeout, transport=transport,
                    address=address)
    if reply.get("ok") is not True:
        raise Refused(reply)
    return reply


def ping(*, timeout: float = 1.0, transport: str | None = None,
         address: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """The running assistant's {"ok": true, "pid": N}, or None when none answers."""
    try:
        return request({"ping": True}, timeout=timeout, transport=transport, address=address)
    except IpcError:
        return None


def _answers(transport: str, address: str) -> bool:
    return ping(transport=transport, address=address) is not None


def _already_running(transport: str, address: str) -> str:
    reply = ping(transport=transport, address=address)
    if reply and reply.get("pid"):
        return f"The assistant is already running (process {reply['pid']})."
    return "The assistant is already running, but it did not answer."
