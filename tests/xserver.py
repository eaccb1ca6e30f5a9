"""A private X server for tests: Xvfb on a free display, optionally openbox, and a window showing an image.

Xvfb picks its own free display number (-displayfd) and writes it once it accepts connections, so there is
neither a guessed number nor a sleep. Everything started here is stopped by its PID.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

# A window that shows one PNG at 1:1 with no padding, then prints its inner X id once it is mapped (Tk's
# own "wm frame" would name the window manager's frame, not the client window). Runs in its own process
# so that Tk's main loop never blocks a test.
_VIEWER = r"""
import sys, tkinter as tk
path, title, x, y, cls = sys.argv[1:6]
root = tk.Tk(className=cls)
root.title(title)
image = tk.PhotoImage(file=path)
tk.Label(root, image=image, borderwidth=0, highlightthickness=0, padx=0, pady=0).pack()
root.geometry(f"+{x}+{y}")
def ready(_event=None):
    root.unbind("<Map>")
    print(root.winfo_id(), flush=True)
root.bind("<Map>", ready)
sys.stdin.close()
root.mainloop()
"""


def have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


def require(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} (apt-get install xvfb xdotool openbox)")


class ToolFailed(subprocess.CalledProcessError):
    """A command against the test X server failed; its message carries what the command printed."""

    def __str__(self) -> str:
        return f"{super().__str__()} stderr: {self.stderr}"


@dataclass
class XServer:
    display: str
    width: int
    height: int
    procs: list[subprocess.Popen] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        env = dict(os.environ, DISPLAY=self.display, XDG_SESSION_TYPE="x11")
        env.pop("WAYLAND_DISPLAY", None)
        return env

    @contextlib.contextmanager
    def active(self) -> Iterator[XServer]:
        """DISPLAY (and an X11 session type) set for this process while inside."""
        saved = {k: os.environ.get(k) for k in ("DISPLAY", "XDG_SESSION_TYPE", "WAYLAND_DISPLAY")}
        os.environ.update(DISPLAY=self.display, XDG_SESSION_TYPE="x11")
        os.environ.pop("WAYLAND_DISPLAY", None)
        try:
            yield self
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

    def run(self, *args: str, timeout: float = 10) -> str:
        done = subprocess.run(args, env=self.env, capture_output=True, text=True, timeout=timeout)
        if done.returncode:  # a tool's own words, for the rare failure under load that a bare status hides
            raise ToolFailed(done.returncode, args, done.stdout, f"{done.stderr.strip()} (on {self.display})")
        return done.stdout

    def xdotool(self, *args: str) -> str:
        return self.run("xdotool", *args)

    def active_window_name(self) -> str:
        """The focused window's title; "" while no window has the focus (between one window closing and
        the next taking it, xdotool exits 1), so that a wait for a window goes on waiting."""
        try:
            return self.xdotool("getactivewindow", "getwindowname")
        except subprocess.CalledProcessError:
            return ""

    def start_wm(self) -> None:
        # Under load (CI, a training run beside the tests) openbox can take seconds to claim the screen, and
        # once in a while it exits at start; it is started again once, and its last words are kept.
        said = ""
        for _attempt in range(2):
            log = tempfile.TemporaryFile()  # noqa: SIM115 - not a pipe: nobody reads it while openbox runs
            proc = subprocess.Popen(["openbox", "--sm-disable"], env=self.env, stdout=subprocess.DEVNULL,
                                    stderr=log)
            self.procs.append(proc)
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and proc.poll() is None:
                out = subprocess.run(["xprop", "-root", "_NET_SUPPORTING_WM_CHECK"], env=self.env,
                                     capture_output=True, text=True).stdout
                if "window id" in out:
                    return
                time.sleep(0.05)
            if proc.poll() is None:
                proc.kill()
                proc.wait(5)
            log.seek(0)
            said = log.read().decode(errors="replace").strip()[-500:]
        raise RuntimeError(f"openbox did not start (twice); it said: {said or 'nothing'}")

    def show_image(self, path: Path, title: str, x: int = 100, y: int = 100,
                   cls: str = "Blipviewer") -> tuple[subprocess.Popen, int]:
        """A window showing ``path``; returns the process and the client window's X id once it is mapped.

        Tk's WM_CLASS class is ``cls`` with only its first letter upper-case ("Blipviewer").
        """
        proc = subprocess.Popen([sys.executable, "-c", _VIEWER, str(path), title, str(x), str(y), cls],
                                env=self.env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.procs.append(proc)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the image window did not open (exit code {proc.wait(5)})")
        from Xlib import display

        d = display.Display(self.display)
        try:
            # Tk's toplevel sits inside a wrapper window: the wrapper carries the title and WM_CLASS.
            client = d.create_resource_object("window", int(line)).query_tree().parent.id
        finally:
            d.close()
        return proc, client

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)
        self.procs.clear()


@contextlib.contextmanager
def xvfb(width: int = 1280, height: int = 800, wm: bool = False) -> Iterator[XServer]:
    require("Xvfb", *(["openbox", "xprop"] if wm else []))
    read_fd, write_fd = os.pipe()
    # -br: a black root window, so the background is a known colour (blank detection uses it).
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24",
                             "-nolisten", "tcp", "-br"], pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write_fd)
    server = XServer(":?", width, height, [proc])
    try:
        with os.fdopen(read_fd) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError(f"Xvfb did not start (exit code {proc.poll()})")
        server.display = f":{number}"
        if wm:
            server.start_wm()
        yield server
    finally:
        server.stop()


def set_monitors(server: XServer, monitors: list[tuple[str, int, int, int, int]]) -> None:
    """Define RandR 1.5 monitors (name, left, top, width, height) on the server, as a multi-head setup
    reports them; ``clear_monitors`` removes them. Xvfb has one output, so this is how two monitors
    are faked."""
    from Xlib import display
    from Xlib.protocol import rq

    # python-xlib's own set_monitor cannot pack its MonitorInfo argument (0.33), so the request is
    # spelled out flat here.
    class SetMonitor(rq.Request):
        _request = rq.Struct(
            rq.Card8("opcode"), rq.Opcode(43), rq.RequestLength(), rq.Window("window"),
            rq.Card32("name"), rq.Bool("primary"), rq.Bool("automatic"), rq.Card16("ncrtcs"),
            rq.Int16("x"), rq.Int16("y"), rq.Card16("width"), rq.Card16("height"),
            rq.Card32("mmw"), rq.Card32("mmh"),
        )

    d = display.Display(server.display)
    try:
        root = d.screen().root
        for i, (name, left, top, width, height) in enumerate(monitors):
            SetMonitor(display=d.display, opcode=d.display.get_extension_major("RANDR"), window=root,
                       name=d.intern_atom(name), primary=i == 0, automatic=False, ncrtcs=0, x=left, y=top,
                       width=width, height=height, mmw=width // 4, mmh=height // 4)
        d.sync()
    finally:
        d.close()


def clear_monitors(server: XServer, names: list[str]) -> None:
    from Xlib import display
    from Xlib.ext import randr

    d = display.Display(server.display)
    try:
        root = d.screen().root
        for name in names:
            randr.delete_monitor(root, d.intern_atom(name))
        d.sync()
    finally:
        d.close()
