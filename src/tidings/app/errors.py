"""Every error becomes a JSON body ``{"error", "detail", ...}`` with the right status.

Query-string problems are 400 (the client built a bad URL); body problems are
422 naming each field; malformed JSON is 400; a body over the limit is 413 and
one not labelled as JSON is 415 (``BodyRules``); anything unexpected is a 500
with no internals in the body (and a log line with them).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import DBAPIError, IntegrityError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.app.routes.responses import JSON
from tidings.protocol.errors import TidingsError, TooLarge, UnsupportedMediaType

log = logging.getLogger(__name__)

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "too_large",
    415: "unsupported_media_type",
}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc[1:]) or str(loc[0])


def install(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def domain_error(_request: Request, exc: TidingsError) -> Response:
        headers = {}
        if "retry_after" in exc.extra:
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return JSON(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> Response:
        problems = exc.errors()
        fields = [{"loc": _field(p["loc"]), "msg": str(p["msg"])} for p in problems]
        if any(p["type"] == "json_invalid" for p in problems):
            return JSON({"error": "bad_request", "detail": "body is not valid JSON"}, 400)
        if problems and all(p["loc"][0] in ("query", "path", "header") for p in problems):
            detail = "; ".join(f"{f['loc']}: {f['msg']}" for f in fields)
            return JSON({"error": "bad_request", "detail": detail, "fields": fields}, 400)
        detail = "; ".join(f"{f['loc']}: {f['msg']}" for f in fields) or "invalid body"
        return JSON({"error": "validation", "detail": detail, "fields": fields}, 422)

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "error")
        return JSON(
            {"error": code, "detail": str(exc.detail)},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        return unexpected_response(request.method, request.url.path, exc)


#: Seconds a client is asked to wait when the database is unreachable.
UNAVAILABLE_RETRY_AFTER = 5


def unexpected_response(method: str, path: str, exc: BaseException) -> Response:
    """503 when the database is unreachable (clients back off and retry); else 500."""
    if isinstance(exc, OSError | TimeoutError) or (
        isinstance(exc, DBAPIError) and not isinstance(exc, IntegrityError)
    ):
        log.warning("database unavailable on %s %s: %r", method, path, exc)
        return JSON(
            {"error": "unavailable", "detail": "the database is unavailable; retry later"},
            status_code=503,
            headers={"Retry-After": str(UNAVAILABLE_RETRY_AFTER)},
        )
    log.error("unhandled error on %s %s", method, path, exc_info=exc)
    return JSON({"error": "internal", "detail": "internal error"}, 500)


#: Methods whose body, when there is one, must be JSON.
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyRules:
    """Every request body under ``/api/`` is JSON of at most ``limit`` bytes.

    413 past ``limit``, whether declared (Content-Length, refused before a byte
    is read) or streamed (chunked: counted as it is read, and refused once over,
    so at most ``limit`` bytes plus one received chunk are held). 415 for a body
    not labelled ``application/json`` (or ``application/*+json``), refused before
    it is read: a form post (curl's ``-d``) would otherwise be read as bytes and
    fail validation with a misleading 422, and a cross-site form cannot send JSON.
    """

    def __init__(self, app: ASGIApp, limit: int, json_prefix: str = "/api/") -> None:
        self.app = app
        self.limit = limit
        self.json_prefix = json_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        has_body = False
        content_type = b""
        for name, value in scope["headers"]:
            if name == b"content-length":
                if not value.isdigit() or int(value) > self.limit:
                    await _answer(send, TooLarge(f"request body over {self.limit} bytes"))
                    return
                has_body = has_body or int(value) > 0
            elif name == b"transfer-encoding":
                has_body = True
            elif name == b"content-type":
                content_type = value
        if (
            has_body
            and scope["method"] in _BODY_METHODS
            and scope["path"].startswith(self.json_prefix)
            and not is_json(content_type)
        ):
            got = content_type.decode("latin-1")[:100] or "none"
            await _answer(
                send,
                UnsupportedMediaType(
                    f"send the body as JSON with Content-Type: application/json (got {got})"
                ),
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    # An HTTPException: the framework re-raises it where it reads
                    # the body (any other error there becomes a 400).
                    raise _Oversize(413, f"request body over {self.limit} bytes")
            return message

        try:
            await self.app(scope, limited, send)
        except _Oversize as exc:
            await _answer(send, TooLarge(str(exc.detail)))


def is_json(content_type: bytes) -> bool:
    """``application/json`` or ``application/<x>+json``, any parameters (charset)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (
        media.startswith(b"application/") and media.endswith(b"+json")
    )


async def _answer(send: Send, error: TidingsError) -> None:
    response = JSON(error.body(), status_code=error.status)
    await response({"type": "http"}, _no_receive, send)


class _Oversize(HTTPException):
    pass


async def _no_receive() -> Message:  # pragma: no cover - responses never read
    return {"type": "http.disconnect"}
