"""The server's guards: an optional API key, a request-body size limit and security headers.

The API key is compared with :func:`hmac.compare_digest` (no timing hint of how much of a guess was
right) and never echoed, logged or put in an error message.
"""

from __future__ import annotations

import contextlib
import hmac

from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from blipkit.serve.problems import ApiError, error_response, unauthorized

API_KEY_HEADER = "X-API-Key"

# The page is plain same-origin HTML/JS: nothing else may run, frame it or be loaded by it.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


def presented_key(headers: Headers) -> str | None:
    """The key a request presents: ``X-API-Key: KEY`` or ``Authorization: Bearer KEY``."""
    key = headers.get(API_KEY_HEADER)
    if key:
        return key.strip()
    auth = headers.get("Authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def key_matches(presented: str | None, expected: str) -> bool:
    if presented is None:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


class ApiKeyGuard:
    """A FastAPI dependency: refuse the request with 401 unless it carries the key (no-op without one)."""

    def __init__(self, expected: str | None) -> None:
        self.expected = expected

    async def __call__(self, request: Request) -> None:
        if self.expected is not None and not key_matches(presented_key(request.headers), self.expected):
            raise unauthorized()


class BodyLimitMiddleware:
    """Refuse request bodies over ``max_bytes`` with 413, by Content-Length up front and by counting the
    bytes of a streamed (chunked) body, so a large upload is never buffered whole."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = Headers(scope=scope).get("content-length")
        if length is not None:
            if not length.strip().isdigit():
                response = error_response(400, "invalid_request", "bad Content-Length header")
                await response(scope, receive, send)
                return
            if int(length) > self.max_bytes:
                await self._too_large(scope, receive, send)
                return
        received = 0
        overflow = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, overflow
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    overflow = True
                    raise _TooLarge()
            return message

        async def guarded_send(message: Message) -> None:
            # Once the body overflowed, whatever the app answers (a layer may have turned the error
            # into a 400 or 500) is dropped in favour of the 413 below.
            nonlocal started
            if not overflow:
                started = started or message["type"] == "http.response.start"
                await send(message)

        with contextlib.suppress(_TooLarge):
            await self.app(scope, limited_receive, guarded_send)
        if overflow and not started:
            await self._too_large(scope, receive, send)

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        message = f"the request body is larger than the limit of {self.max_bytes} bytes"
        response = error_response(413, "payload_too_large", message, {"Connection": "close"})
        await response(scope, receive, send)


class _TooLarge(Exception):
    pass


def require(condition: bool, status: int, code: str, message: str) -> None:
    """Raise an :class:`ApiError` unless ``condition`` holds."""
    if not condition:
        raise ApiError(status, code, message)
