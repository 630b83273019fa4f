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
from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage
from tidings.push.wsframe import (
    NO_STATUS,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameBudget,
    FrameError,
    FrameReader,
    OverBudget,
    accept_key,
    close_frame,
    encode_frame,
    frame_budget,
    parse_close,
    text_frame,
    valid_key,
)

#: Attribute slots of :class:`WebSocketProtocol` (see ``CONN_SLOTS`` for why the
#: base classes declare none and concrete classes list them all).
WS_SLOTS = ("_closing", "_cork", "_full_at", "_msg_timer", "_reader", "_timer", "ctx", "transport")

#: A PONG is queued only while the send buffer holds at most this many bytes
#: (RFC 6455 5.5.3 lets a server answer only the latest of several pings): a peer
#: that pings and never reads gets no more than this + one 127-byte PONG queued.
PONG_BUFFER_BYTES: Final = 4096


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
    #: Ends a message not complete within ``message_timeout`` (armed only while
    #: the reader holds part of one).
    _msg_timer: asyncio.TimerHandle | None
    #: The inbound frame budget's state (see :class:`FrameBudget`).
    _full_at: float
    _closing: bool
    #: What is written while ``start`` runs (the ``101`` first), sent as one write
    #: when it ends: the answer to a subscribe pipelined behind the handshake then
    #: leaves with the ``101`` in one segment (a send and a wakeup of the peer less).
    _cork: list[bytes] | None

    def start(
        self,
        ctx: PushContext,
        transport: asyncio.Transport,
        leftover: bytes,
        refusal: TidingsError | None = None,
        head: bytes = b"",
    ) -> None:
        """Take the socket, whose handshake answer is ``head`` (not yet written);
        with ``refusal``, close it at once with its close code."""
        self.ctx = ctx
        self.transport = transport
        self._reader = None
        self._timer = None
        self._msg_timer = None
        self._full_at = 0.0
        self._closing = False
        self._cork = [head] if head else None
        transport.set_write_buffer_limits(high=ctx.settings.send_buffer_bytes)
        if refusal is not None:
            WebSocketProtocol.close(self, refusal.close_code, refusal.detail)
            return
        try:
            self.on_open()
            if leftover and not self._closing:
                self.data_received(leftover)
            if not self._closing:
                self.on_started()
        finally:
            self._uncork()

    def _uncork(self) -> None:
        cork, self._cork = self._cork, None
        if cork and self.transport is not None:
            self.transport.write(b"".join(cork))

    # -- hooks ---------------------------------------------------------------

    def on_open(self) -> None:
        """The socket is ours (``101`` already written)."""

    def on_started(self) -> None:
        """``on_open`` ran and the bytes that came with the handshake were read."""

    def on_text(self, payload: bytes) -> None:
        """A complete text message (UTF-8 checked, at most ``max_message_bytes``)."""

    def on_closed(self) -> None:
        """The socket is gone (either side closed it, or it broke)."""

    def on_pause(self) -> None:
        """The send buffer passed its high-water mark."""

    def on_resume(self) -> None:
        """The send buffer drained below its low-water mark."""

    def subscribed(self) -> bool:
        """True once the client has proven who it is: its frames then get the larger
        budget (``inbound_burst``/``inbound_rate``), else the unsubscribed one."""
        return False

    def budget(self, subscribed: bool) -> FrameBudget:
        settings = self.ctx.settings
        if subscribed:
            return frame_budget(settings.inbound_burst, settings.inbound_rate)
        return frame_budget(settings.inbound_burst_unsubscribed, settings.inbound_rate_unsubscribed)

    # -- sending -------------------------------------------------------------

    def send_frame(self, frame: bytes) -> None:
        if not self._closing and self.transport is not None:
            if self._cork is not None:
                self._cork.append(frame)
            else:
                self.transport.write(frame)

    def close(self, code: int, reason: str) -> None:
        """Send a close frame and close the socket; abort it if it cannot flush in time."""
        if self._closing or self.transport is None:
            return
        self._uncork()
        self._closing = True
        transport = self.transport
        transport.write(close_frame(code, reason))
        transport.close()
        self.ctx.loop.call_later(self.ctx.settings.close_timeout, transport.abort)

    # -- asyncio.Protocol ----------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        ctx = self.ctx
        settings = ctx.settings
        now = ctx.now()
        was_subscribed = self.subscribed()
        budget = self.budget(was_subscribed)
        reader = self._reader or FrameReader(
            settings.max_message_bytes, settings.max_message_fragments
        )
        try:
            frames = reader.feed(data, budget.allowance(self._full_at, now))
        except OverBudget:
            self.close(CloseCode.POLICY, budget.reason)
            return
        except FrameError as exc:
            self.close(exc.code, exc.reason)
            return
        self._full_at = budget.spend(self._full_at, now, reader.spent)
        if reader.idle:
            self._reader = None
            if self._msg_timer is not None:
                self._msg_timer.cancel()
                self._msg_timer = None
        else:
            self._reader = reader
            if self._msg_timer is None:
                self._msg_timer = ctx.loop.call_later(settings.message_timeout, self._too_slow)
        for op, payload in frames:
            if self._closing:
                return
            if op == OP_TEXT:
                self.on_text(payload)
            elif op == OP_PING:
                transport = self.transport
                if transport is not None and transport.get_write_buffer_size() <= PONG_BUFFER_BYTES:
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
        if not was_subscribed and not self._closing and self.subscribed():
            # Proven who it is: a full bucket of the larger budget (the debt in
            # the small one's slow refill must not carry over).
            self._full_at = 0.0

    def _too_slow(self) -> None:
        self._msg_timer = None
        limit = self.ctx.settings.message_timeout
        self.close(CloseCode.POLICY, f"message not complete within {limit:g} s")

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
        if self._msg_timer is not None:
            self._msg_timer.cancel()
            self._msg_timer = None
        self._reader = None
        self.on_closed()
        self.ctx.socket_closed()


#: Key of the cached ``/ws`` text frame in EncodedMessage.frames.
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

    def on_started(self) -> None:
        # A subscribe sent with the handshake is read by now: no timer for it.
        if self.user is None:
            ctx = self.ctx
            self._timer = ctx.loop.call_later(ctx.settings.handshake_timeout, self._no_subscribe)

    def _no_subscribe(self) -> None:
        self._timer = None
        if self.user is None:
            limit = self.ctx.settings.handshake_timeout
            self.close(CloseCode.POLICY, f"no subscribe within {limit:g} s")

    def subscribed(self) -> bool:
        return self.user is not None

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

    def write(self, msg: EncodedMessage) -> None:
        frame = msg.frames.get(_FRAME_KEY)
        if frame is None:
            frame = msg.frames[_FRAME_KEY] = text_frame(msg.data)
        if self._cork is not None:
            self._cork.append(frame)
        else:
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
    head = _SWITCHING + accept_key(key).encode() + b"\r\n\r\n"
    if refusal is not None:
        # Full or draining: a browser cannot read an HTTP status from a failed
        # handshake, but it can read a close code (1013: try again later).
        ctx.counters.connections_refused += 1
        protocol.start(ctx, transport, b"", refusal, head)
        return False
    protocol.start(ctx, transport, leftover, head=head)
    return True


_SWITCHING: Final = (
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Accept: "
)


def accept(ctx: PushContext, request: Request, conn: HttpConnection) -> None:
    """The ``/ws`` route."""
    upgrade(ctx, request, conn, PushWebSocket())
