"""The endpoints around the model: liveness, readiness, metrics, server info, and the web page."""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from blipkit import __version__
from blipkit.serve.metrics import CONTENT_TYPE_LATEST
from blipkit.serve.openapi import ERROR_RESPONSES
from blipkit.serve.problems import ApiError
from blipkit.serve.schemas import ErrorResponse, Health, Info, Limits, Readiness
from blipkit.serve.security import PAGE_HEADERS, ApiKeyGuard
from blipkit.serve.state import server_state

# The page's files: a fixed table, so that no part of a request path ever names a file.
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


def _static(name: str) -> bytes:
    return resources.files("blipkit.serve").joinpath("static", name).read_bytes()


def build_router(guard: ApiKeyGuard) -> APIRouter:
    router = APIRouter()

    @router.get("/healthz", response_model=Health, tags=["service"], summary="Liveness")
    async def healthz() -> Health:
        """The process is up and answering (the model may still be loading)."""
        return Health()

    @router.get("/readyz", response_model=Readiness, tags=["service"], summary="Readiness",
                responses={503: {"model": Readiness, "description": "Not ready: model loading or failed."}})
    async def readyz(request: Request) -> JSONResponse:
        """200 once the model is loaded and the server takes requests; 503 before that and while stopping."""
        state = server_state(request)
        ready = state.ready and not (state.batcher is not None and state.batcher.closing)
        body = Readiness(
            ready=ready, model=state.blip.checkpoint.name if state.blip is not None else None,
            tasks=sorted(state.tasks), error=state.load_error,
        )
        return JSONResponse(body.model_dump(), status_code=200 if ready else 503)

    @router.get("/metrics", tags=["service"], summary="Prometheus metrics", dependencies=[Depends(guard)],
                response_class=Response,
                responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                                 "description": "Prometheus text format."},
                           401: {"model": ErrorResponse, "description": "Missing or wrong API key."}})
    async def metrics(request: Request) -> Response:
        """Request counts and latencies, batch sizes, queue depth, model readiness."""
        return Response(server_state(request).metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @router.get("/v1/info", response_model=Info, tags=["service"], summary="What this server can do",
                dependencies=[Depends(guard)], responses=ERROR_RESPONSES)
    async def info(request: Request) -> Info:
        state = server_state(request)
        s = state.settings
        model_tasks = state.blip.tasks if state.blip is not None else frozenset()
        endpoints = _endpoint_tasks(model_tasks) | ({"tag", "moderate"} & state.tasks)
        if state.search is not None:
            endpoints.add("search")
        return Info(
            version=__version__,
            model=state.blip.checkpoint.name if state.blip is not None else None,
            tasks=sorted(model_tasks),
            endpoints=sorted(endpoints),
            embedding_dim=state.blip.embedding_dim if "itc" in model_tasks and state.blip else None,
            search=state.search is not None,
            index_size=await run_in_threadpool(state.search.size) if state.search is not None else None,
            allow_urls=s.allow_urls, auth=s.api_key is not None,
            limits=Limits(
                max_body_bytes=s.max_body_bytes, max_pixels=s.max_pixels,
                max_images_per_request=s.max_images_per_request,
                max_texts_per_request=s.max_texts_per_request,
                max_batch=s.max_batch, batch_wait_ms=s.batch_wait_ms, queue_size=s.queue_size,
            ),
        )

    @router.get("/", include_in_schema=False)
    async def page() -> Response:
        return _page_file("index.html")

    @router.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        return _page_file(name)

    return router


def _endpoint_tasks(model_tasks: frozenset[str]) -> set[str]:
    """Endpoints the model's heads make work (caption needs the caption head, ask vqa, ...)."""
    need = {"caption": "caption", "ask": "vqa", "match": "itm", "embed": "itc"}
    return {name for name, head in need.items() if head in model_tasks}


def _page_file(name: str) -> Response:
    media_type = STATIC_FILES.get(name)
    if media_type is None:
        raise ApiError(404, "not_found", "no such file")
    headers = {**PAGE_HEADERS, "Cache-Control": "no-cache"}
    return Response(_static(name), media_type=media_type, headers=headers)
