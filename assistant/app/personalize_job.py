""""Personalize now" in the background: ``blip-assistant personalize --json`` in its own process.

A process, not a thread: training holds a CPU core and a few hundred MB for a few minutes, and the app's
model, hotkeys and speech must stay as quick as ever meanwhile (the child runs at a lower priority).
Its progress lines (stderr, in words) come back as :attr:`PersonalizeJob.progress`; Stop sends SIGTERM,
on which the command saves its state and stops, so the next run goes on from there.
"""

from __future__ import annotations

import json
import os
import sys

from PySide6.QtCore import QObject, QProcess, Signal


def command() -> list[str]:
    """The personalize command for this installation (a PyInstaller bundle is its own executable)."""
    if getattr(sys, "frozen", False):
        return [sys.executable, "personalize", "--json"]
    return [sys.executable, "-m", "assistant", "personalize", "--json"]


class PersonalizeJob(QObject):
    progress = Signal(str)  # a sentence for the user
    finished = Signal(bool, str)  # (a new personal model is in use, what happened in words)

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._process: QProcess | None = None
        self._stderr = b""
        self._stopping = False

    @property
    def running(self) -> bool:
        return self._process is not None

    def start(self) -> bool:
        if self._process is not None:
            return False
        process = QProcess(self)
        program, *args = command()
        if sys.platform != "win32" and os.path.exists("/usr/bin/nice"):
            program, args = "/usr/bin/nice", ["-n", "10", program, *args]
        env = process.processEnvironment()
        if env.isEmpty():
            from PySide6.QtCore import QProcessEnvironment

            env = QProcessEnvironment.systemEnvironment()
        env.insert("OMP_NUM_THREADS", "1")
        process.setProcessEnvironment(env)
        process.readyReadStandardError.connect(self._read_progress)
        process.finished.connect(self._done)
        process.errorOccurred.connect(self._failed)
        self._process, self._stderr, self._stopping = process, b"", False
        process.start(program, args)
        self.progress.emit("Personalizing started. The assistant stays usable meanwhile.")
        return True

    def stop(self) -> None:
        if self._process is not None:
            self._stopping = True
            self._process.terminate()  # SIGTERM: the command saves where it is and stops

    def _read_progress(self) -> None:
        if self._process is None:
            return
        self._stderr += bytes(self._process.readAllStandardError().data())
        *lines, self._stderr = self._stderr.split(b"\n")
        for line in lines:
            text = line.decode("utf-8", "replace").strip()
            if text:
                self._last = text.removeprefix("error: ")
                self.progress.emit(self._last)

    def _failed(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart and self._process is not None:
            self._process = None
            self.finished.emit(False, "Personalizing could not start.")

    def _done(self, code: int, _status: QProcess.ExitStatus) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        self._read_progress_rest(process)
        out = bytes(process.readAllStandardOutput().data()).decode("utf-8", "replace").strip()
        try:
            result = json.loads(out.splitlines()[-1]) if out else {}
        except ValueError:
            result = {}
        if result:
            self.finished.emit(bool(result.get("accepted")), str(result.get("summary", "")))
        elif self._stopping or code == 130:
            self.finished.emit(False, "Personalizing stopped. It goes on from where it was next time.")
        else:
            self.finished.emit(False, "Personalizing did not finish. " + (self._last or ""))
        process.deleteLater()

    _last: str | None = None

    def _read_progress_rest(self, process: QProcess) -> None:
        rest = (self._stderr + bytes(process.readAllStandardError().data())).decode("utf-8", "replace")
        lines = [line.strip().removeprefix("error: ") for line in rest.splitlines() if line.strip()]
        for line in lines:
            self.progress.emit(line)
        self._last = lines[-1] if lines else self._last
