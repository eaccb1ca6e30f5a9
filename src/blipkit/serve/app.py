"""The FastAPI application: its routes, guards, error handling, metrics, and the startup that loads the
model (in a thread, so ``/healthz`` answers at once and ``/readyz`` turns 200 when it is done) and the
shutdown that drains the batcher."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect

from blipkit import __version__
from blipkit.blip import Blip
from blipkit.serve import api, search, service
from blipkit.serve.batcher import MicroBatcher
from blipkit.serve.extras import load_extras
from blipkit.serve.inference import Handlers
from blipkit.serve.metrics import MetricsMiddleware
from blipkit.serve.openapi import install_openapi
from blipkit.serve.problems import error_response, install_handlers
from blipkit.serve.security import API_KEY_HEADER, ApiKeyGuard, BodyLimitMiddleware
from blipkit.serve.settings import ServeSettings
from blipkit.serve.state import ServerState

log = logging.getLogger("blipkit.serve")

DESCRIPTION = """BLIP vision-language models over HTTP: caption, ask, match, embed, tag, moderate and search.

Image endpoints take a JSON body (`images`: base64 or URL) or a `multipart/form-data` upload (`images` file
parts). Errors are `{"error": {"code", "message"}}`. Requests of the same kind that arrive together are
answered by one batched model call."""


def create_app(
    settings: ServeSettings | None = None,
    *,
    blip: Blip | None = None,
    loader: Callable[[], Blip] | None = None,
    on_fatal: Callable[[str], None] | None = None,
) -> FastAPI:
    """Build the app. Give a loaded ``blip``, or a ``loader`` (default: ``blipkit.load(settings.model)``)
    that runs in a thread at startup. ``on_fatal`` is called if loading the model or the index fails."""
    settings = settings or ServeSettings()
    state = ServerState(settings)
    guard = ApiKeyGuard(settings.api_key)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_start(state, blip, loader, on_fatal), name="blipkit-load")
        try:
            yield
        finally:
            # uvicorn has finished the requests in flight by now; the batcher finishes what they queued.
            if not loading.done():
                loading.cancel()
            if state.batcher is not None:
                await state.batcher.close(settings.drain_timeout_s)
            state.metrics.ready.set(0)

    app = FastAPI(title="blipkit", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  redoc_url=None)
    app.state.blipkit = state
    install_handlers(app)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, exc: ClientDisconnect) -> JSONResponse:
        # The client hung up mid-body: nobody reads this answer, and it is not a server error.
        log.debug("client disconnected before sending the whole body")
        return error_response(400, "client_disconnected", "the client disconnected")

    @app.exception_handler(Exception)
    async def _internal(_: Request, exc: Exception) -> JSONResponse:
        log.exception("internal error", exc_info=exc)
        return error_response(500, "internal_error", "internal server error")

    app.include_router(service.build_router(guard))
    app.include_router(api.build_router(), dependencies=[Depends(guard)])
    app.include_router(search.build_router(), dependencies=[Depends(guard)])
    install_openapi(app, api.BODY_MODELS)

    # add_middleware wraps: the last added runs first. Metrics see every answer (413s included) and CORS
    # headers go on error answers too.
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
            allow_headers=["Content-Type", "Authorization", API_KEY_HEADER], allow_credentials=False,
            max_age=600,
        )
    app.add_middleware(MetricsMiddleware, metrics=state.metrics)
    return app


async def _start(
    state: ServerState, blip: Blip | None, loader: Callable[[], Blip] | None,
    on_fatal: Callable[[str], None] | None,
) -> None:
    settings = state.settings
    try:
        if blip is None:
            log.info("loading model %s", settings.model)
            blip = await asyncio.to_thread(loader or _default_loader(settings))
        extras: dict[str, Any] = await asyncio.to_thread(load_extras, blip, settings.policy)
        backend = None
        if settings.index is not None:
            log.info("opening index %s", settings.index)
            backend = await asyncio.to_thread(search.open_backend, settings.index, blip)
    except Exception as exc:
        state.load_error = f"{type(exc).__name__}: {exc}"
        log.error("cannot start: %s", state.load_error)
        if on_fatal is not None:
            on_fatal(state.load_error)
        return
    handlers = Handlers(blip, tagger=extras.get("tagger"), moderator=extras.get("moderator"), search=backend)
    table = handlers.table()
    metrics = state.metrics
    batcher = MicroBatcher(
        table, max_batch=settings.max_batch, wait_s=settings.batch_wait_ms / 1000.0,
        queue_size=settings.queue_size, on_batch=metrics.observe_batch, on_depth=metrics.queue_depth.set,
    )
    batcher.start()
    state.search = backend
    state.tasks = frozenset(table)
    state.batcher = batcher
    state.blip = blip
    metrics.ready.set(1)
    log.info("ready: %r, tasks %s", blip, ", ".join(sorted(table)))


def _default_loader(settings: ServeSettings) -> Callable[[], Blip]:
    def load() -> Blip:
        import blipkit

        return blipkit.load(settings.model, device=settings.device, dtype=settings.dtype,
                            threads=settings.threads, fast=settings.fast)

    return load
