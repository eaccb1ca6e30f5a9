"""Reading a request: a JSON or multipart body into its pydantic model plus the images' raw sources, and
those sources into decoded images (through :func:`blipkit.io.load_image`, the one gate for untrusted
image bytes).

No string from a request is ever opened as a path: an image is uploaded bytes, base64 bytes, or an
http(s) URL fetched only when the server allows it.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
import types
import typing
import urllib.parse
from dataclasses import dataclass
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from PIL import Image
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartException

from blipkit.errors import ImageError
from blipkit.io import is_url, load_image
from blipkit.serve.problems import ApiError
from blipkit.serve.schemas import ImageRef
from blipkit.serve.settings import ServeSettings

M = TypeVar("M", bound=BaseModel)
ImageSource = bytes | str  # bytes, or an http(s) URL

_DATA_URL = re.compile(r"^data:[\w.+/-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


@dataclass
class Parsed(typing.Generic[M]):
    body: M
    images: list[ImageSource]


async def parse_request(request: Request, model: type[M], settings: ServeSettings) -> Parsed[M]:
    """The request's body as ``model`` and its images' sources, from JSON or multipart/form-data."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        parsed = await _parse_form(request, model, settings)
    elif content_type in ("application/json", ""):
        parsed = await _parse_json(request, model)
    else:
        raise ApiError(415, "unsupported_media_type",
                       f"send application/json or multipart/form-data, not {content_type!r}")
    _check_counts(parsed, settings)
    return parsed


async def _parse_json(request: Request, model: type[M]) -> Parsed[M]:
    raw = await request.body()
    if not raw:
        raise ApiError(422, "invalid_request", "the request has no body")
    try:
        body = model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    refs: list[ImageRef] = list(getattr(body, "images", []))
    return Parsed(body, [_source_of(ref, i) for i, ref in enumerate(refs)])


async def _parse_form(request: Request, model: type[M], settings: ServeSettings) -> Parsed[M]:
    # The limits keep a hostile form from making the parser allocate without bound.
    try:
        form = await request.form(max_files=settings.max_images_per_request,
                                  max_fields=settings.max_texts_per_request + 32)
    except (HTTPException, MultiPartException) as exc:
        # Starlette reports broken or oversized forms as a bare 400; answer with our documented 422.
        detail = getattr(exc, "detail", None) or getattr(exc, "message", None) or str(exc)
        code = "too_many_images" if "files" in str(detail).lower() else "invalid_request"
        raise ApiError(422, code, f"unreadable multipart form: {detail}") from None
    images: list[ImageSource] = []
    for i, item in enumerate(form.getlist("images")):
        if not isinstance(item, UploadFile):
            raise ApiError(422, "invalid_request", f"images[{i}] must be an uploaded file")
        images.append(await item.read())
    data: dict[str, Any] = {}
    for key in dict.fromkeys(form.keys()):
        if key == "images":
            continue
        values = [v for v in form.getlist(key) if not isinstance(v, UploadFile)]
        if len(values) != len(form.getlist(key)):
            raise ApiError(422, "invalid_request", f"form field {key!r} must be text, not a file")
        values = [v for v in values if v != ""]  # an empty form field means "not given"
        field = model.model_fields.get(key)
        if field is not None and _is_list(field.annotation):
            data[key] = values
        elif values:
            data[key] = values[0] if len(values) == 1 else values
    if "images" in model.model_fields:
        # Stand-ins let the model check the number of images; their bytes are kept aside.
        data["images"] = [ImageRef.model_construct(base64="", url=None) for _ in images]
    try:
        body = model.model_validate(data)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False)) from None
    return Parsed(body, images)


def _is_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) is list:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_list(a) for a in typing.get_args(annotation))
    return False


def _source_of(ref: ImageRef, index: int) -> ImageSource:
    if ref.url is not None:
        if not is_url(ref.url):
            raise ApiError(422, "invalid_request", f"images[{index}].url must be an http(s) URL")
        return ref.url
    text = _DATA_URL.sub("", (ref.base64 or "").strip(), count=1)
    try:
        data = base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(422, "invalid_base64", f"images[{index}].base64 is not valid base64") from None
    return data


def _check_counts(parsed: Parsed[Any], settings: ServeSettings) -> None:
    if len(parsed.images) > settings.max_images_per_request:
        raise ApiError(422, "too_many_images", f"{len(parsed.images)} images in one request; the limit "
                       f"is {settings.max_images_per_request}")
    for name in ("texts", "choices"):
        values = getattr(parsed.body, name, None) or []
        if len(values) > settings.max_texts_per_request:
            raise ApiError(422, "too_many_texts", f"{len(values)} {name} in one request; the limit is "
                           f"{settings.max_texts_per_request}")


# --- decoding -----------------------------------------------------------------------------------


async def decode_images(sources: list[ImageSource], settings: ServeSettings) -> list[Image.Image]:
    """Decode every image off the event loop; the first bad one fails the request, naming its index."""
    if not sources:
        return []
    return await run_in_threadpool(_decode_all, sources, settings)


def _decode_all(sources: list[ImageSource], settings: ServeSettings) -> list[Image.Image]:
    images = []
    for i, source in enumerate(sources):
        if isinstance(source, str):
            if not settings.allow_urls:
                raise ApiError(403, "urls_disabled", f"images[{i}]: this server does not fetch image URLs "
                               "(start it with --allow-urls)")
            if not settings.allow_private_urls:
                _check_public(source, i)
        try:
            images.append(load_image(
                source, max_pixels=settings.max_pixels, max_bytes=settings.max_body_bytes,
                allow_urls=settings.allow_urls, timeout=settings.url_timeout_s,
            ))
        except ImageError as exc:
            raise type(exc)(f"images[{i}]: {exc}") from None
    return images


def _check_public(url: str, index: int) -> None:
    """Refuse URLs whose host resolves to a loopback, private, link-local or otherwise non-public address
    (cloud metadata services, the server's own admin ports...)."""
    host = urllib.parse.urlsplit(url).hostname or ""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        raise ApiError(422, "image_fetch_error", f"images[{index}]: cannot resolve host {host!r}") from None
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%")[0])
        if not address.is_global:
            raise ApiError(403, "url_not_allowed",
                           f"images[{index}]: {host!r} is not a public address; the server only fetches "
                           "public URLs")
