"""The commands' fast path: ``POST /api/projects/{id}/commands`` answered in
front of the whole middleware stack, before the framework's routing and
dependency injection run.

Measured (bench/write_path.py, bench/command_cpu.py, docs/PERFORMANCE.md): once
the store issued a command's statements on the bare driver, the framework's
per-request machinery was the largest part of what was left, and then the
layers around it (the framework's error and body-limit layers, the security
headers, the body rules, the poll's pass-through, compression: ~14 us a
command in-process). This layer takes only requests it can read exactly as the
route would, behind those layers: a body declared as JSON (``BodyRules``'
media types) by a Content-Length within the body limit, at most one
Idempotency-Key of the route's lengths; the body parsed and validated by the
same model in the same (Python) mode. Anything else (a chunked or oversized
body, another media type, bad JSON, a validation error, an odd header or id)
goes to the whole stack, with any body already read replayed, so every answer
keeps its status and body. A valid request runs the route's own
``apply_command``; its answer gets what the layers would add: the security
headers, and compression when it is large enough to be compressed.
``AppSettings.fast_commands=False`` turns it off; the API tests run both ways.
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.app.compression import MINIMUM_BYTES, Compression
from tidings.app.errors import is_json, unexpected_response
from tidings.app.polling import MAX_PROJECT_ID
from tidings.app.routes.projects import apply_command
from tidings.app.routes.responses import JSON
from tidings.app.services import Services
from tidings.domain.commands import CommandRequest
from tidings.protocol.errors import TidingsError

_COMMANDS = re.compile(r"/api/projects/([0-9]{1,16})/commands")

#: The route's bounds on the Idempotency-Key header (app/routes/projects.py).
_KEY_LENGTHS = range(1, 201)


Headers = list[tuple[bytes, bytes]]


class FastCommands:
    """``app``: the whole middleware stack; ``limit``: its body limit (bytes);
    ``headers``: the security headers it adds to an API answer."""

    def __init__(self, app: ASGIApp, services: Services, *, limit: int, headers: Headers) -> None:
        self.app = app
        self.services = services
        self.limit = limit
        self.headers = headers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _COMMANDS.fullmatch(scope["path"])
        key = _DECLINED if match is None else self._taken(scope["headers"])
        if match is None or isinstance(key, _Declined):
            await self.app(scope, receive, send)
            return
        # Content-Length is within the limit, and the server reads no more.
        message = await receive()
        messages = [message]
        if message["type"] == "http.request" and not message.get("more_body", False):
            raw = message.get("body", b"")
        else:
            raw = await _rest(message, messages, receive)
        parsed = _parse(match, raw)
        if parsed is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        project_id, body = parsed
        response: Response
        try:
            # The route reads its input from the arguments, never the body again.
            request = Request(scope)
            response = await apply_command(self.services, request, project_id, body, key)
        except TidingsError as exc:
            headers = {}
            if "retry_after" in exc.extra:
                headers["Retry-After"] = str(exc.extra["retry_after"])
            response = JSON(exc.body(), status_code=exc.status, headers=headers)
        except Exception as exc:
            response = unexpected_response("POST", scope["path"], exc)
        await self._send(response, scope, receive, send)

    def _taken(self, headers: Headers) -> str | _Declined | None:
        """The Idempotency-Key (or None) of a request this path takes: a JSON
        body by Content-Length within the limit (what ``BodyRules`` passes
        without a word), no Transfer-Encoding, at most one key of the route's
        lengths; else ``_DECLINED``."""
        length = content_type = key = None
        for name, value in headers:
            if name == b"content-length":
                if length is not None:
                    return _DECLINED
                length = value
            elif name == b"content-type":
                if content_type is not None:
                    return _DECLINED
                content_type = value
            elif name == b"idempotency-key":
                if key is not None:
                    return _DECLINED
                key = value.decode("latin-1")
                if len(key) not in _KEY_LENGTHS:
                    return _DECLINED
            elif name == b"transfer-encoding":
                return _DECLINED
        if (
            length is None
            or not length.isdigit()
            or int(length) > self.limit
            or content_type is None
            or not is_json(content_type)
        ):
            return _DECLINED
        return key

    async def _send(self, response: Response, scope: Scope, receive: Receive, send: Send) -> None:
        """What the stack sends for ``response``: a small body as it is (as
        ``Compression`` sends it), a larger one through ``Compression``; the
        security headers last, as the outermost layer adds them."""
        if len(response.body) >= MINIMUM_BYTES:
            extra = self.headers

            async def secured(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message["headers"] = [*message.get("headers", ()), *extra]
                await send(message)

            await Compression(response)(scope, receive, secured)
            return
        headers = [*response.raw_headers, *self.headers]
        await send(
            {"type": "http.response.start", "status": response.status_code, "headers": headers}
        )
        await send({"type": "http.response.body", "body": response.body})


class _Declined:
    """The request goes to the whole stack."""


_DECLINED = _Declined()


async def _rest(first: Message, messages: list[Message], receive: Receive) -> bytes:
    """The body of a request sent in more than one message (each kept in ``messages``)."""
    chunks = []
    message = first
    while message["type"] == "http.request":
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
        message = await receive()
        messages.append(message)
    return b"".join(chunks)


def _parse(match: re.Match[str], raw: bytes) -> tuple[int, CommandRequest] | None:
    """The route's inputs, or None when the framework should answer."""
    project_id = int(match.group(1))
    if not 1 <= project_id <= MAX_PROJECT_ID:
        return None
    try:
        # The framework reads the body as JSON and validates the object in
        # Python mode; orjson refuses more than json does (NaN, lone
        # surrogates, huge integers), and those go to the framework.
        body = CommandRequest.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None
    return project_id, body


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
