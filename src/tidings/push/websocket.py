"""WebSocket at ``/ws``: the RFC 6455 handshake, a lean frame-level protocol, and the push client.

Hand-written on ``asyncio.Protocol`` with ``__slots__`` for speed and memory: a
poke is framed once and the same bytes are written to every transport; an idle
connection is one small object (no reader, no queue, no task). Measured on the
2-core dev machine (docs/OPERATIONS.md): the ``websockets`` library costs ~14 KB
and ~21 us per client per poke, a lean protocol ~1.3 KB and ~13 us. Framing
rules themselves live in wsframe.py (sans-I/O).
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING, ClassVar, Final

from tidings.protocol.errors import BadRequest, CloseCode, Forbidden, TidingsError, Unavailable
from tidings.protocol.push import ClientType, parse_client_message
from tidings.push.context import PushContext
from tidings.push.http import HttpConnection, Request
from tidings.push.hub import CONN_SLOTS, Conn, Message
from tidings.push.wsframe import (
    NO_STATUS,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameError,
    FrameReader,
    accept_key,
    close_frame,
    encode_frame,
    parse_close,
    text_frame,
    valid_key,
)

#: Attribute slots of :class:`WebSocketProtocol` (see ``CONN_SLOTS`` for why the
#: base classes declare none and concrete classes list them all).
WS_SLOTS = ("_closing", "_reader", "_timer", "ctx", "transport")


class WebSocketProtocol(asyncio.Protocol):
    """A server-side WebSocket after the ``101``: frames in and out, ping/pong,
    close handshake, message size limit. Subclasses implement the hooks."""

    if TYPE_CHECKING:  # see Conn: concrete classes own the slots at run time
        __slots__ = WS_SLOTS
    else:
        __slots__ = ()

    ctx: PushContext
    transport: asyncio.Transport | None
    _reader: FrameReader | None
    _timer: asyncio.TimerHandle | None
    _closing: bool

    def start(
        self,
        ctx: PushContext,
        transport: asyncio.Transport,
        leftover: bytes,
        refusal: TidingsError | None = None,
    ) -> None:
        """Take the socket; with ``refusal``, close it at once with its close code."""
        self.ctx = ctx
        self.transport = transport
        self._reader = None
        self._timer = None
        self._closing = False
        transport.set_write_buffer_limits(high=ctx.settings.send_buffer_bytes)
        if refusal is not None:
            WebSocketProtocol.close(self, refusal.close_code, refusal.detail)
            return
        self.on_open()
        if leftover and not self._closing:
            self.data_received(leftover)

    # -- hooks ---------------------------------------------------------------

    def on_open(self) -> None:
        """The socket is ours (``101`` already written)."""

    def on_text(self, payload: bytes) -> None:
        """A complete text message (UTF-8 checked, at most ``max_message_bytes``)."""

    def on_closed(self) -> None:
        """The socket is gone (either side closed it, or it broke)."""

    def on_pause(self) -> None:
        """The send buffer passed its high-water mark."""

    def on_resume(self) -> None:
        """The send buffer drained below its low-water mark."""

    # -- sending -------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        if not self._closing and self.transport is not None:
            self.transport.write(frame)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and close the socket; abort it if it cannot flush in time."""
        if self._closing or self.transport is None:
            return
        self._closing = True
        transport = self.transport
        transport.write(close_frame(code, reason))
        transport.close()
        self.ctx.loop.call_later(self.ctx.settings.close_timeout, transport.abort)

    # -- asyncio.Protocol ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        reader = self._reader or FrameReader(self.ctx.settings.max_message_bytes)
        try:
            frames = reader.feed(data)
        except FrameError as exc:
            self.close(exc.code, exc.reason)
            return
        self._reader = None if reader.idle else reader
        for op, payload in frames:
            if self._closing:
                return
            if op == OP_TEXT:
                self.on_text(payload)
            elif op == OP_PING:
                self.send_frame(encode_frame(OP_PONG, payload))
            elif op == OP_PONG:
                pass
            elif op == OP_CLOSE:
                try:
                    code, _ = parse_close(payload)
                except FrameError as exc:
                    self.close(exc.code, exc.reason)
                    return
                # Echo the client's code (RFC 6455 5.5.1), then close.
                self.close(CloseCode.NORMAL if code == NO_STATUS else code, "")
            else:
                self.close(CloseCode.UNSUPPORTED_DATA, "binary messages are not supported")

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.on_pause()

    def resume_writing(self) -> None:
        self.on_resume()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._reader = None
        self.on_closed()
        self.ctx.socket_closed()


#: Key of the cached ``/ws`` text frame in Message.frames.
_FRAME_KEY: Final = "ws"


def direct_fd(transport: asyncio.Transport) -> int:
    """The socket's fd if the native fan-out may ``send()`` to it directly, else -1.

    Only a plain stream socket: under TLS (or any transport that transforms
    bytes) the transport must do the writing.
    """
    if transport.get_extra_info("sslcontext") is not None:
        return -1
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return -1
    fd = sock.fileno()
    return fd if isinstance(fd, int) and fd >= 0 else -1


class PushWebSocket(WebSocketProtocol, Conn):
    """``/ws``: JSON text frames; ``subscribe``/``refresh`` in, hub messages out."""

    __slots__ = WS_SLOTS + CONN_SLOTS
    kind: ClassVar[str] = "ws"
    direct_frame_key: ClassVar[str | None] = _FRAME_KEY

    def __init__(self) -> None:
        self.init_conn()

    def on_open(self) -> None:
        ctx = self.ctx
        try:
            ctx.hub.attach(self, ctx.now())
        except TidingsError as exc:
            self.close(exc.close_code, exc.detail)
            return
        # ``write`` is "this frame to this transport": the fan-out may send it itself.
        self.wfd = direct_fd(self.transport)  # type: ignore[arg-type]
        self._timer = ctx.loop.call_later(ctx.settings.handshake_timeout, self._no_subscribe)

    def _no_subscribe(self) -> None:
        self._timer = None
        if self.user is None:
            limit = self.ctx.settings.handshake_timeout
            self.close(CloseCode.POLICY, f"no subscribe within {limit:g} s")

    def on_text(self, payload: bytes) -> None:
        ctx = self.ctx
        try:
            kind, token, projects = parse_client_message(payload)
            wall = ctx.wall()
            claims = ctx.hub.authorize(token, projects, wall)
            ctx.hub.subscribe(
                self, claims, projects, ctx.now(), wall, refresh=kind is ClientType.REFRESH
            )
        except TidingsError as exc:
            self.close(exc.close_code, exc.detail)
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def write(self, msg: Message) -> None:
        frame = msg.frames.get(_FRAME_KEY)
        if frame is None:
            frame = msg.frames[_FRAME_KEY] = text_frame(msg.data)
        self.transport.write(frame)  # type: ignore[union-attr]

    def close(self, code: int, reason: str) -> None:
        # Forget it in the hub first: nothing more is written to a closing socket.
        self.ctx.hub.detach(self)
        WebSocketProtocol.close(self, code, reason)

    def on_pause(self) -> None:
        self.ctx.hub.paused(self, self.ctx.now())

    def on_resume(self) -> None:
        self.ctx.hub.resumed(self)

    def on_closed(self) -> None:
        self.ctx.hub.detach(self)


def upgrade(
    ctx: PushContext, request: Request, conn: HttpConnection, protocol: WebSocketProtocol
) -> bool:
    """Check the handshake (RFC 6455 4.2.1), write ``101`` and hand the socket to ``protocol``.

    On a bad handshake, answers with an HTTP error and returns False. No
    extension or subprotocol is ever negotiated.
    """
    headers = request.headers
    if request.method != "GET":
        conn.refuse(BadRequest("WebSocket upgrade needs GET"))
        return False
    if (
        "websocket" not in headers.get("upgrade", "").lower()
        or "upgrade" not in headers.get("connection", "").lower()
    ):
        conn.refuse(BadRequest("expected a WebSocket upgrade"))
        return False
    if headers.get("sec-websocket-version") != "13":
        conn.respond(
            426,
            b'{"error":"bad_request","detail":"WebSocket version 13 only"}',
            headers=[("Sec-WebSocket-Version", "13")],
            close=True,
        )
        return False
    key = headers.get("sec-websocket-key", "")
    if not valid_key(key):
        conn.refuse(BadRequest("bad Sec-WebSocket-Key"))
        return False
    if not ctx.origin_allowed(request.origin):
        ctx.counters.connections_refused += 1
        conn.refuse(Forbidden("origin not allowed"))
        return False
    refusal = conn.refusal
    if refusal is not None and not isinstance(refusal, Unavailable):
        conn.refuse(refusal)
        return False
    transport, leftover = conn.take_over(protocol)
    transport.write(
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Accept: " + accept_key(key).encode() + b"\r\n\r\n"
    )
    if refusal is not None:
        # Full or draining: a browser cannot read an HTTP status from a failed
        # handshake, but it can read a close code (1013: try again later).
        ctx.counters.connections_refused += 1
        protocol.start(ctx, transport, b"", refusal)
        return False
    protocol.start(ctx, transport, leftover)
    return True


def accept(ctx: PushContext, request: Request, conn: HttpConnection) -> None:
    """The ``/ws`` route."""
    upgrade(ctx, request, conn, PushWebSocket())
