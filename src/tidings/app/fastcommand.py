"""The commands' fast path: ``POST /api/projects/{id}/commands`` answered before
the framework's routing and dependency injection run.

Measured (bench/write_path.py, docs/PERFORMANCE.md): once the store issued a
command's statements on the bare driver, the framework's per-request machinery
was the largest part of what was left. This layer takes only requests it can
read exactly as the route would: the body is parsed and validated by the same
model in the same (Python) mode, and anything it would not take as is (bad
JSON, a validation error, an odd header or id) is handed to the framework with
the body replayed, so every error keeps the route's status and body. A valid
request runs the route's own ``apply_command``. ``AppSettings.fast_commands=False``
turns it off; the API tests run both ways.
"""

from __future__ import annotations

import re

import orjson
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.app.errors import unexpected_response
from tidings.app.polling import MAX_PROJECT_ID
from tidings.app.routes.projects import apply_command
from tidings.app.routes.responses import JSON
from tidings.app.services import Services
from tidings.domain.commands import CommandRequest
from tidings.protocol.errors import TidingsError

_COMMANDS = re.compile(r"/api/projects/([0-9]{1,16})/commands")

#: The route's bounds on the Idempotency-Key header (app/routes/projects.py).
_KEY_LENGTHS = range(1, 201)


class FastCommands:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope["method"] == "POST":
            match = _COMMANDS.fullmatch(scope["path"])
        if match is None:
            await self.app(scope, receive, send)
            return
        # The body is bounded by BodyRules outside (413 past its limit).
        messages: list[Message] = []
        chunks: list[bytes] = []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        parsed = _parse(scope, match, b"".join(chunks))
        if parsed is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        project_id, body, key = parsed
        response: Response
        try:
            request = Request(scope, _replay(messages, receive))
            response = await apply_command(self.services, request, project_id, body, key)
        except TidingsError as exc:
            headers = {}
            if "retry_after" in exc.extra:
                headers["Retry-After"] = str(exc.extra["retry_after"])
            response = JSON(exc.body(), status_code=exc.status, headers=headers)
        except Exception as exc:
            response = unexpected_response("POST", scope["path"], exc)
        await response(scope, receive, send)


def _parse(
    scope: Scope, match: re.Match[str], raw: bytes
) -> tuple[int, CommandRequest, str | None] | None:
    """The route's inputs, or None when the framework should answer."""
    project_id = int(match.group(1))
    if not 1 <= project_id <= MAX_PROJECT_ID:
        return None
    keys = [v for k, v in scope["headers"] if k == b"idempotency-key"]
    key = None
    if keys:
        if len(keys) > 1:
            return None
        key = keys[0].decode("latin-1")
        if len(key) not in _KEY_LENGTHS:
            return None
    try:
        # The framework reads the body as JSON and validates the object in
        # Python mode; orjson refuses more than json does (NaN, lone
        # surrogates, huge integers), and those go to the framework.
        body = CommandRequest.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None
    return project_id, body, key


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` that first gives back the messages already read."""
    pending = list(messages)

    async def replayed() -> Message:
        if pending:
            return pending.pop(0)
        return await receive()

    return replayed
