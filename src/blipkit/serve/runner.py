"""Run the app under uvicorn until SIGINT/SIGTERM, then shut down gracefully: stop accepting, finish the
requests in flight, drain the batcher."""

from __future__ import annotations

import contextlib
import logging

import uvicorn

from blipkit.serve.app import create_app
from blipkit.serve.settings import ServeSettings


def uvicorn_config(app: object, settings: ServeSettings, *, log_level: str = "info",
                   access_log: bool = True) -> uvicorn.Config:
    """The uvicorn settings blipkit serves with (also used by the tests and the benchmark)."""
    return uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level=log_level, access_log=access_log,
        # uvicorn waits this long for requests in flight; the batcher then gets its own drain time.
        timeout_graceful_shutdown=int(settings.drain_timeout_s),
        server_header=False, lifespan="on",
    )


def serve(settings: ServeSettings, *, log_level: str = "info") -> int:
    """Serve until interrupted; 0 after a clean shutdown, 1 if the model or index failed to load."""
    _setup_logging(log_level)
    failed: list[str] = []
    server: uvicorn.Server | None = None

    def on_fatal(message: str) -> None:
        failed.append(message)
        if server is not None:
            server.should_exit = True

    app = create_app(settings, on_fatal=on_fatal)
    server = uvicorn.Server(uvicorn_config(app, settings, log_level=log_level))
    # uvicorn re-raises Ctrl-C once it has shut down cleanly: a normal end, not an abort.
    with contextlib.suppress(KeyboardInterrupt):
        server.run()
    return 1 if failed else 0


def _setup_logging(level: str) -> None:
    """blipkit's server messages in uvicorn's format, on stderr."""
    from uvicorn.logging import DefaultFormatter

    logger = logging.getLogger("blipkit.serve")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(DefaultFormatter("%(levelprefix)s %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(level.upper())
