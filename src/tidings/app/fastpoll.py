"""The poll's fast path: GET polls answered before the framework's routing,
dependency injection and validation run.

Measured (bench/poll_path.py, docs/PERFORMANCE.md): through the framework an
up-to-date poll spent most of its CPU in per-request machinery, so it was
barely cheaper than a poll that reads ten events. This layer parses the two
poll URLs itself, applies the same bounds as the documented routes (the
constants in app/polling.py), and calls the same ``Poller.respond_*`` the
routes call, so the two cannot disagree. ``AppSettings.fast_poll=False``
turns it off; the API tests run both ways.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings.app.errors import unexpected_response
from tidings.app.polling import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_POLL_PROJECTS,
    MAX_PROJECT_ID,
    MAX_SINCE,
    query_int,
)
from tidings.app.routes.responses import JSON
from tidings.app.services import Services
from tidings.protocol.errors import BadRequest, TidingsError

_EVENTS = re.compile(r"/api/projects/([0-9]{1,16})/events")

#: Longest query string read; longer ones get 400 (the documented limits fit).
MAX_QUERY_BYTES = 4096


class FastPoll:
    def __init__(self, app: ASGIApp, services: Services) -> None:
        self.app = app
        self.services = services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        match = _EVENTS.fullmatch(path) if path.startswith("/api/projects/") else None
        if match is None and path != "/api/poll":
            await self.app(scope, receive, send)
            return
        response: Response
        try:
            query: bytes = scope["query_string"]
            if len(query) > MAX_QUERY_BYTES:
                raise BadRequest("query string too long")
            pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
            request = Request(scope)
            poller = self.services.poller
            if match is not None:
                project_id = int(match.group(1))
                if not 1 <= project_id <= MAX_PROJECT_ID:
                    raise BadRequest("project_id out of range", field="project_id")
                values = dict(pairs)
                since = query_int(values, "since", 0, 0, MAX_SINCE)
                limit = query_int(values, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
                response = await poller.respond_one(
                    request, project_id, since, limit, request.headers.get("if-none-match")
                )
            else:
                targets = [v for k, v in pairs if k == "p"]
                if len(targets) > MAX_POLL_PROJECTS:
                    raise BadRequest(f"at most {MAX_POLL_PROJECTS} projects per poll", field="p")
                limit = query_int(dict(pairs), "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)
                response = await poller.respond_many(request, targets, limit)
        except TidingsError as exc:
            response = JSON(exc.body(), status_code=exc.status)
        except Exception as exc:
            response = unexpected_response("GET", path, exc)
        await response(scope, receive, send)
