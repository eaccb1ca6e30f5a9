"""Own the X clipboard with the given bytes, as an image viewer's or a browser's "Copy image" does.

    python clipboard_owner.py FILE MIME-TYPE      (e.g. image/png; "text/plain" for text)

Prints "ready" once it owns the clipboard and serves it until its stdin closes. Run on the X server of the
test (DISPLAY); the app under test then reads the clipboard through X, as from any other program.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from PySide6.QtCore import QMimeData, QTimer
from PySide6.QtGui import QGuiApplication


def main() -> int:
    data, mime_type = Path(sys.argv[1]).read_bytes(), sys.argv[2]
    app = QGuiApplication([sys.argv[0]])
    mime = QMimeData()
    mime.setData(mime_type, data)
    app.clipboard().setMimeData(mime)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    timer = QTimer()
    timer.timeout.connect(lambda: app.quit() if done.is_set() else None)
    timer.start(50)
    QTimer.singleShot(200, lambda: print("ready", flush=True))  # after the selection request is answered
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
