"""Every error the server returns has one shape, ``{"error": {"code": ..., "message": ...}}``, with a
machine-readable ``code``: the ``code`` of the :class:`~blipkit.errors.BlipkitError` behind it, or one of
the server's own codes below."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from blipkit.errors import BlipkitError

# BlipkitError.code -> HTTP status. A code not listed is a client error (400).
STATUS_OF_CODE: dict[str, int] = {
    "bad_image": 422,
    "image_not_found": 422,
    "image_decode_error": 422,
    "image_too_large": 413,
    "image_fetch_error": 422,
    "bad_text": 422,
    "unsupported_model": 501,  # the loaded checkpoint has no head for this task
    "model_not_found": 500,
    "bad_data": 500,
}


class ApiError(BlipkitError):
    """An error of the HTTP layer itself (auth, limits, queue, routing), with its status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.headers = headers or {}


def unauthorized() -> ApiError:
    return ApiError(401, "unauthorized", "a valid API key is required (X-API-Key or Authorization: Bearer)",
                    {"WWW-Authenticate": "Bearer"})


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    return {"error": {"code": code, "message": message}}


def error_response(status: int, code: str, message: str, headers: dict[str, str] | None = None
                   ) -> JSONResponse:
    return JSONResponse(error_body(code, message), status_code=status, headers=headers)


def status_of(exc: BlipkitError) -> int:
    if isinstance(exc, ApiError):
        return exc.status
    return STATUS_OF_CODE.get(exc.code, 400)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
    return "; ".join(parts) or "invalid request"


def install_handlers(app: FastAPI) -> None:
    """Route every error, FastAPI's own included, to the one error shape."""

    @app.exception_handler(BlipkitError)
    async def _blipkit(_: Request, exc: BlipkitError) -> JSONResponse:
        headers = exc.headers if isinstance(exc, ApiError) else None
        return error_response(status_of(exc), exc.code, str(exc), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))
