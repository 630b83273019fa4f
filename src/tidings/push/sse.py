"""Server-Sent Events at ``/sse``, for the browser's EventSource (works through plain HTTP proxies).

EventSource cannot send a body or headers, so the subscription is the query:
``/sse?token=<JWT>&p=7:42&p=9:13`` (``p`` = ``project:version held``, repeated).
Every hub message is one unnamed event, ``data: <the same JSON as on /ws>``;
there is no ``refresh``: a client opens a new stream with the new token, then
closes the old one. Refusals are HTTP statuses with JSON bodies.
"""

from __future__ import annotations

import asyncio
from typing import ClassVar

from tidings.protocol import push
from tidings.protocol.errors import BadRequest, Forbidden, TidingsError, Unauthorized
from tidings.protocol.push import parse_decimal
from tidings.protocol.tokens import MAX_PROJECTS_PER_TOKEN
from tidings.push.context import PushContext
from tidings.push.http import HttpConnection, Request
from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage

_FRAME_KEY = "sse"


def parse_query(request: Request) -> tuple[str, dict[int, int]]:
    """``(token, {project: version held})`` from ``?token=...&p=7:42&p=9:13``."""
    try:
        pairs = request.query_pairs()
    except ValueError:
        raise BadRequest("too many query fields") from None
    token: str | None = None
    projects: dict[int, int] = {}
    for name, value in pairs:
        if name == "token":
            if token is not None:
                raise BadRequest("one 'token' only")
            token = value
        elif name == "p":
            project_text, _, version_text = value.partition(":")
            project, version = parse_decimal(project_text), parse_decimal(version_text)
            if not project or version is None:
                raise BadRequest("'p' must be project:version, e.g. p=7:42")
            projects[project] = version
    if not token:
        raise Unauthorized("missing 'token'")
    if len(projects) > MAX_PROJECTS_PER_TOKEN:
        raise BadRequest(f"at most {MAX_PROJECTS_PER_TOKEN} projects")
    return token, projects


def event(data: bytes) -> bytes:
    """One SSE event; our JSON never contains a newline, so one ``data:`` line."""
    return b"data: " + data + b"\n\n"


class SseConnection(Conn, asyncio.Protocol):
    __slots__ = (*CONN_SLOTS, "_closing", "_cork", "ctx", "transport")
    kind: ClassVar[str] = "sse"

    def __init__(self, ctx: PushContext, transport: asyncio.Transport) -> None:
        self.init_conn()
        self.ctx = ctx
        self.transport = transport
        self._closing = False
        #: What is written before ``uncork`` (the response head first), sent as
        #: one write: the head and the ``subscribed`` event leave in one segment.
        self._cork: list[bytes] | None = None

    def write(self, msg: EncodedMessage) -> None:
        frame = msg.frames.get(_FRAME_KEY)
        if frame is None:
            frame = msg.frames[_FRAME_KEY] = event(msg.data)
        if self._cork is not None:
            self._cork.append(frame)
        else:
            self.transport.write(frame)

    def uncork(self) -> None:
        cork, self._cork = self._cork, None
        if cork:
            self.transport.write(b"".join(cork))

    def close(self, code: int, reason: str) -> None:
        """SSE has no close codes: a ``close`` event carries them, then the stream ends."""
        self.ctx.hub.detach(self)
        if self._closing:
            return
        self._closing = True
        self.uncork()
        self.transport.write(event(push.close(code, reason)))
        self.transport.close()
        self.ctx.loop.call_later(self.ctx.settings.close_timeout, self.transport.abort)

    def data_received(self, data: bytes) -> None:
        """EventSource sends nothing after its request; anything else is ignored unbuffered."""

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.ctx.hub.paused(self, self.ctx.now())

    def resume_writing(self) -> None:
        self.ctx.hub.resumed(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self.ctx.hub.detach(self)
        self.ctx.socket_closed()


def accept(ctx: PushContext, request: Request, conn: HttpConnection) -> None:
    """The ``/sse`` route (and its CORS preflight)."""
    origin = request.origin
    if not ctx.origin_allowed(origin):
        ctx.counters.connections_refused += 1
        conn.refuse(Forbidden("origin not allowed"))
        return
    cors = ctx.cors_headers(origin)
    if request.method == "OPTIONS":
        conn.respond(
            204,
            b"",
            headers=[
                *cors,
                ("Access-Control-Allow-Methods", "GET"),
                ("Access-Control-Allow-Headers", "Last-Event-ID, Cache-Control"),
                ("Access-Control-Max-Age", "600"),
            ],
        )
        return
    if request.method != "GET":
        conn.refuse(BadRequest("use GET"), headers=cors)
        return
    if conn.refusal is not None:
        conn.refuse(conn.refusal, headers=cors)
        return
    try:
        token, projects = parse_query(request)
        wall = ctx.wall()
        claims = ctx.hub.authorize(token, projects, wall)
    except TidingsError as exc:
        conn.refuse(exc, headers=cors)
        return
    head = [
        "HTTP/1.1 200 OK",
        "Content-Type: text/event-stream",
        "Cache-Control: no-store",
        "X-Accel-Buffering: no",
        "Connection: close",
        *(f"{name}: {value}" for name, value in cors),
    ]
    retry = f"retry: {round(ctx.settings.sse_retry * 1000)}\n\n"
    transport = conn.transport
    assert transport is not None
    sse = SseConnection(ctx, transport)
    transport, _ = conn.take_over(sse)
    transport.set_write_buffer_limits(high=ctx.settings.send_buffer_bytes)
    sse._cork = [("\r\n".join(head) + "\r\n\r\n" + retry).encode("latin-1")]
    try:
        ctx.hub.attach(sse, ctx.now())
        ctx.hub.subscribe(sse, claims, projects, ctx.now(), wall)
    except TidingsError as exc:
        sse.close(exc.close_code, exc.detail)
    finally:
        sse.uncork()
