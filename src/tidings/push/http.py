"""HTTP/1.1 for the push server's one port: parse requests (httptools), answer or hand over.

Each accepted socket starts as an :class:`HttpConnection`. It reads one request
at a time (bounded head and body; no pipelining), passes it to the server's
router, and either answers it (``respond``; keep-alive allowed) or hands the
socket to another protocol (``take_over``: WebSocket after ``101``, SSE after
its ``200`` head). Errors are JSON ``{"error", "detail"}`` bodies.

Plugging in a transport (Socket.IO is mounted at ``/socket.io/``)
-----------------------------------------------------------------
A transport is an :class:`HttpHandler` created by a factory that receives the
server's :class:`~tidings.push.context.PushContext`
(``PushServer.mount(prefix, factory)``; ``tidings.push.sio.http_handler``, when
that attribute exists, is mounted at ``/socket.io/`` automatically). For every
request whose path starts with the prefix, ``handle(request, conn)`` is called
once the whole request (body included) is read. It must eventually do one of:

- ``conn.respond(status, body, content_type=..., headers=...)`` - now, or later
  for a long-polling GET (the connection waits, reading nothing more; register
  ``conn.on_abort(callback)`` to learn that the client went away first);
- ``conn.refuse(error)`` with a :class:`~tidings.protocol.errors.TidingsError`;
- ``websocket.upgrade(ctx, request, conn, protocol)`` (tidings.push.websocket):
  checks the handshake, writes ``101`` and gives the socket to ``protocol``, a
  :class:`~tidings.push.websocket.WebSocketProtocol` subclass that implements
  ``on_open``/``on_text``/``on_closed`` (frames, ping/pong, close, size limits
  and the socket count are handled by the base class).

Before accepting, check ``conn.refusal`` (server full, draining or the client's
IP rate-limited: refuse with it) and ``ctx.origin_allowed(request.origin)``.
Hub connections (the Socket.IO session) subclass :class:`~tidings.push.hub.Conn`
with ``__slots__ = CONN_SLOTS + (...)``, call ``ctx.hub.attach`` /
``authorize`` / ``subscribe`` / ``detach`` and ``paused`` / ``resumed`` on flow
control, and frame each hub :class:`~tidings.push.hub.EncodedMessage` once, caching the
frame in ``msg.frames`` under a key of their own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Protocol, cast

import httptools
import orjson

from tidings.protocol.errors import TidingsError
from tidings.protocol.tokens import MAX_PROJECTS_PER_TOKEN
from tidings.push.query import query_pairs

if TYPE_CHECKING:
    from tidings.push.context import PushContext

log = logging.getLogger("tidings.push.http")

Headers = Iterable[tuple[str, str]]

#: Query fields parsed per request (SSE's ``p`` list is bounded by the token's projects).
MAX_QUERY_FIELDS = MAX_PROJECTS_PER_TOKEN + 16


class Request:
    """One parsed request. Header names are lower-case; repeated headers are joined."""

    __slots__ = ("body", "headers", "method", "path", "peer", "query")

    def __init__(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes, peer: str
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.body = body
        self.peer = peer

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")

    def query_pairs(self) -> list[tuple[str, str]]:
        """Decoded ``name=value`` pairs in order; ValueError past ``MAX_QUERY_FIELDS``."""
        return query_pairs(self.query, MAX_QUERY_FIELDS)


class HttpHandler(Protocol):
    def handle(self, request: Request, conn: HttpConnection) -> None: ...


HttpHandlerFactory = Callable[["PushContext"], HttpHandler]


class HttpConnection(asyncio.Protocol):
    __slots__ = (
        "_abort_cb",
        "_body",
        "_body_size",
        "_ctx",
        "_header_size",
        "_headers",
        "_in_flight",
        "_in_head",
        "_keep_alive",
        "_leftover",
        "_method",
        "_parser",
        "_raw_head",
        "_ready",
        "_timer",
        "_url",
        "peer",
        "refusal",
        "transport",
    )

    def __init__(self, ctx: PushContext) -> None:
        self._ctx = ctx
        self.transport: asyncio.Transport | None = None
        self._parser: httptools.HttpRequestParser | None = httptools.HttpRequestParser(self)
        self._url = b""
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._body_size = 0
        #: Head bytes of the request being read, as the parser reports them
        #: (URL, header names and values, 4 bytes of separators per header).
        self._header_size = 0
        #: Bytes read while a head was incomplete: a backstop for what the
        #: parser holds before reporting it (an endless header name).
        self._raw_head = 0
        self._in_head = True
        self._ready = False
        self._in_flight = False
        self._keep_alive = False
        self._leftover = b""
        self._method = ""
        self._timer: asyncio.TimerHandle | None = None
        self._abort_cb: Callable[[], None] | None = None
        self.peer = ""
        #: Why this socket may not become a client connection (full, draining,
        #: rate-limited); health and metrics endpoints still answer.
        self.refusal: TidingsError | None = None

    # -- asyncio.Protocol --------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        peer = self.transport.get_extra_info("peername")
        self.peer = str(peer[0]) if isinstance(peer, tuple) else str(peer or "")
        self._ctx.http_conns.add(self)
        self.refusal = self._ctx.admit(self.peer)
        self._arm(self._ctx.settings.handshake_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parser = None
        self._ctx.http_conns.discard(self)
        self._ctx.socket_closed()
        callback, self._abort_cb = self._abort_cb, None
        if callback is not None and self._in_flight:
            callback()

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None or self.transport is None:
            return
        if self._in_flight:
            self._error(HTTPStatus.BAD_REQUEST, "one request at a time: wait for the response")
            return
        settings = self._ctx.settings
        if self._in_head:
            # The parser's own count (below) is exact but comes only once a field
            # is whole; a read that also carries the body may pass the head limit
            # here, never the head and body limits together.
            self._raw_head += len(data)
            if self._raw_head > settings.max_request_head_bytes + settings.max_body_bytes:
                self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
                return
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade as exc:
            self._leftover = data[int(exc.args[0]) :]
        except httptools.HttpParserError:
            if self._header_size > settings.max_request_head_bytes:
                self._error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request head too large")
            elif self._body_size > settings.max_body_bytes:
                self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large")
            else:
                self._error(HTTPStatus.BAD_REQUEST, "malformed HTTP request")
            return
        if self._ready and self.transport is not None and not self.transport.is_closing():
            self._dispatch()

    # -- httptools callbacks -----------------------------------------------

    def on_message_begin(self) -> None:
        if self._ready or self._in_flight:
            raise httptools.HttpParserError("pipelined request")
        self._url = b""
        self._headers = {}
        self._body = []
        self._body_size = 0
        self._header_size = 0
        self._in_head = True

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        # _count_head, written out: this runs for every header of every request.
        self._header_size += len(name) + len(value) + 4  # ": " and CRLF
        if self._header_size > self._ctx.settings.max_request_head_bytes:
            raise httptools.HttpParserError("request head too large")
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = text if old is None else f"{old}, {text}"

    def _count_head(self, size: int) -> None:
        """Only head bytes count toward ``max_request_head_bytes`` (not a body read
        with them), and every request's do (the second on a kept-alive socket too)."""
        self._header_size += size
        if self._header_size > self._ctx.settings.max_request_head_bytes:
            raise httptools.HttpParserError("request head too large")

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._raw_head = 0

    def on_body(self, body: bytes) -> None:
        self._body_size += len(body)
        if self._body_size > self._ctx.settings.max_body_bytes:
            raise httptools.HttpParserError("body too large")
        self._body.append(body)

    def on_message_complete(self) -> None:
        # Read the parser's flags now: llhttp resets them for the next message.
        parser = self._parser
        assert parser is not None
        self._method = parser.get_method().decode("latin-1")
        self._keep_alive = parser.should_keep_alive() and not parser.should_upgrade()
        self._ready = True
        # What comes next on this socket is the next request's head.
        self._in_head = True
        self._header_size = 0
        self._raw_head = 0

    # -- dispatch ----------------------------------------------------------

    def _dispatch(self) -> None:
        parser = self._parser
        assert parser is not None
        self._ready = False
        self._in_flight = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            url = httptools.parse_url(self._url)
        except httptools.HttpParserInvalidURLError:
            self._error(HTTPStatus.BAD_REQUEST, "malformed URL")
            return
        request = Request(
            method=self._method,
            path=(url.path or b"/").decode("latin-1"),
            query=(url.query or b"").decode("latin-1"),
            headers=self._headers,
            body=b"".join(self._body),
            peer=self.peer,
        )
        self._body = []
        self._url = b""
        try:
            self._ctx.router(request, self)
        except TidingsError as exc:
            self.refuse(exc)
        except Exception:
            log.exception("event=handler_error path=%s", request.path)
            if self._parser is not None and self._in_flight:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    # -- answers -----------------------------------------------------------

    def respond(
        self,
        status: int,
        body: bytes,
        *,
        content_type: str = "application/json",
        headers: Headers = (),
        close: bool = False,
    ) -> None:
        """Answer the request in flight; keeps the connection alive when the client allows."""
        transport = self.transport
        if transport is None or self._parser is None or transport.is_closing():
            return
        keep = self._keep_alive and not close and self._ctx.accepting
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            "Cache-Control: no-store",
            f"Connection: {'keep-alive' if keep else 'close'}",
        ]
        lines.extend(f"{name}: {value}" for name, value in headers)
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
        self._in_flight = False
        self._abort_cb = None
        if keep and not self._leftover:
            self._arm(self._ctx.settings.idle_timeout)
        else:
            self._parser = None
            transport.close()

    def respond_json(self, status: int, body: object, *, headers: Headers = ()) -> None:
        self.respond(status, orjson.dumps(body), headers=headers)

    def refuse(self, error: TidingsError, *, headers: Headers = ()) -> None:
        extra = list(headers)
        retry = error.extra.get("retry_after")
        if retry is not None:
            extra.append(("Retry-After", str(max(1, round(float(retry))))))
        if error.status >= 500 or error.status == 429:
            self._ctx.counters.connections_refused += 1
        self.respond(error.status, orjson.dumps(error.body()), headers=extra, close=True)

    def _error(self, status: HTTPStatus, detail: str) -> None:
        code = "too_large" if status in (413, 431) else "bad_request"
        if status >= 500:
            code = "internal"
        self._in_flight = True
        self.respond(status, orjson.dumps({"error": code, "detail": detail}), close=True)

    def on_abort(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` if the client goes away before the response (long polling)."""
        self._abort_cb = callback

    def take_over(self, protocol: asyncio.Protocol) -> tuple[asyncio.Transport, bytes]:
        """Give the socket to ``protocol``; returns it and any bytes read past the request.

        The new protocol owns the socket count from now on (``ctx.socket_closed()``
        once, when the transport is lost).
        """
        transport = self.transport
        assert transport is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._parser = None
        self._in_flight = False
        self._ctx.http_conns.discard(self)
        self.transport = None
        leftover, self._leftover = self._leftover, b""
        transport.set_protocol(protocol)
        return transport, leftover

    # -- timeouts ----------------------------------------------------------

    def _arm(self, delay: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._ctx.loop.call_later(delay, self._expired)

    def _expired(self) -> None:
        self._timer = None
        transport = self.transport
        if transport is None or self._in_flight:
            return
        if self._raw_head or self._url:
            self._in_flight = True
            body = b'{"error":"timeout","detail":"request too slow"}'
            self.respond(HTTPStatus.REQUEST_TIMEOUT, body, close=True)
        else:
            transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()
