"""Search over an image index, and the images it holds.

Images are addressed by their id in the index (the content hash of the file), never by a path: the
server looks the id up in the index and reads only a file the index lists, so no string from a request
ever reaches the file system.
"""

from __future__ import annotations

import io
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from PIL import Image
from starlette.concurrency import run_in_threadpool

from blipkit import defaults
from blipkit.blip import Blip
from blipkit.errors import ImageError
from blipkit.io import load_image
from blipkit.runtime.encoding import check_text
from blipkit.serve.openapi import ERROR_RESPONSES
from blipkit.serve.problems import ApiError
from blipkit.serve.schemas import ErrorResponse, SearchHit, SearchResponse
from blipkit.serve.state import server_state

_ID = re.compile(r"^[0-9a-f]{8,128}$")
_JPEG = "image/jpeg"
_MEDIA_TYPES = {"JPEG": _JPEG, "PNG": "image/png", "GIF": "image/gif", "WEBP": "image/webp",
                "BMP": "image/bmp", "TIFF": "image/tiff"}


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    caption: str | None


class SearchBackend(Protocol):
    """What the server needs from an index."""

    def search(self, query: str, limit: int) -> list[Hit]: ...

    def path_of(self, image_id: str) -> Path | None:
        """The file of the indexed image ``image_id``, or None when the index has no such image."""

    def size(self) -> int: ...


def open_backend(path: Path, blip: Blip) -> SearchBackend:
    """Open the index at ``path`` for searching with ``blip`` (its fingerprint must match the index's)."""
    from blipkit.serve.index_backend import IndexBackend

    return IndexBackend(path, blip)


class ThumbnailCache:
    """Recently made thumbnails (JPEG bytes) by image id, bounded in count."""

    def __init__(self, capacity: int = 512) -> None:
        self.capacity = capacity
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


def make_thumbnail(path: Path, size: int) -> bytes:
    """A JPEG of the image at ``path`` fitting in ``size`` x ``size``."""
    image = load_image(path, allow_urls=False)
    image.thumbnail((size, size), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


def _original(path: Path) -> tuple[bytes, str]:
    """The file's bytes if it is an image format browsers show, else a JPEG re-encoding of it."""
    image = load_image(path, allow_urls=False)  # refuses anything that is not a sound image
    with Image.open(path) as probe:
        fmt = probe.format or ""
    if fmt in _MEDIA_TYPES and fmt not in ("TIFF", "BMP"):
        return path.read_bytes(), _MEDIA_TYPES[fmt]
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=92)
    return out.getvalue(), _JPEG


def _backend(request: Request) -> tuple[Any, SearchBackend]:
    state = server_state(request)
    state.require_ready()
    if state.search is None:
        raise ApiError(404, "no_index", "this server has no index: start it with --db INDEX")
    return state, state.search


def _indexed_path(backend: SearchBackend, image_id: str) -> Path:
    if not _ID.match(image_id):
        raise ApiError(404, "not_found", "no such image in the index")
    path = backend.path_of(image_id)
    if path is None:
        raise ApiError(404, "not_found", "no such image in the index")
    return path


_IMAGE_HEADERS = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}


def build_router() -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["search"], responses={
        **ERROR_RESPONSES, 404: {"model": ErrorResponse, "description": "No index, or no such image."}})
    thumbnails = ThumbnailCache()

    @router.get("/search", response_model=SearchResponse, summary="Search the index with text")
    async def search(
        request: Request,
        q: str = Query(min_length=1, max_length=defaults.MAX_TEXT_CHARS, description="What to look for."),
        limit: int = Query(defaults.SERVE_SEARCH_LIMIT, ge=1, le=200, description="Most results returned."),
    ) -> SearchResponse:
        """Indexed images best matching ``q``, each with its stored caption and a thumbnail URL."""
        state, _ = _backend(request)
        check_text(q, "q")
        # through the batcher: the query is embedded by the model, which only its worker thread runs
        hits = await state.run("search", None, (q, limit), 1)
        return SearchResponse(query=q, results=[
            SearchHit(id=h.id, score=float(h.score), caption=h.caption,
                      thumbnail_url=f"/v1/images/{h.id}/thumbnail", image_url=f"/v1/images/{h.id}")
            for h in hits
        ])

    @router.get("/images/{image_id}/thumbnail", response_class=Response, summary="Thumbnail of an image",
                responses={200: {"content": {_JPEG: {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "A JPEG at most 256 px on a side."}})
    async def thumbnail(request: Request, image_id: str) -> Response:
        _, backend = _backend(request)
        # the index is asked first even when cached: a file removed or changed is not shown any more
        path = await run_in_threadpool(_indexed_path, backend, image_id)
        data = thumbnails.get(image_id)
        if data is None:
            try:
                data = await run_in_threadpool(make_thumbnail, path, defaults.SERVE_THUMBNAIL_PX)
            except ImageError as exc:
                raise ApiError(404, "image_unavailable", "the indexed file can no longer be read") from exc
            thumbnails.put(image_id, data)
        return Response(data, media_type=_JPEG, headers={**_IMAGE_HEADERS, "ETag": f'"{image_id}-t"'})

    @router.get("/images/{image_id}", response_class=Response, summary="An indexed image",
                responses={200: {"content": {"image/*": {"schema": {"type": "string", "format": "binary"}}},
                                 "description": "The file (as JPEG if browsers cannot show it)."}})
    async def image(request: Request, image_id: str) -> Response:
        _, backend = _backend(request)
        path = await run_in_threadpool(_indexed_path, backend, image_id)
        try:
            data, media_type = await run_in_threadpool(_original, path)
        except (ImageError, OSError) as exc:
            raise ApiError(404, "image_unavailable", "the indexed file can no longer be read") from exc
        return Response(data, media_type=media_type, headers={**_IMAGE_HEADERS, "ETag": f'"{image_id}"'})

    return router
