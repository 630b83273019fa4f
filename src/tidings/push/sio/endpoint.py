"""``/socket.io/`` on the push server: the asyncio glue around the sans-I/O session.

It carries out each :class:`~tidings.push.sio.engineio.Output` (answer or hold an
HTTP request, write frames, close sockets) and speaks to the hub as ``/ws`` does;
every protocol rule lives in engineio.py, socketio.py and session.py. Mounted by
the push server through :func:`tidings.push.sio.http_handler` (see push/http.py).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Final

from tidings.protocol import push
from tidings.protocol.errors import CloseCode, Forbidden, TidingsError
from tidings.push.context import PushContext
from tidings.push.http import Headers, HttpConnection, Request
from tidings.push.hub import CONN_SLOTS, Conn, Message
from tidings.push.sio.engineio import (
    Closed,
    EngineConfig,
    EngineServer,
    HttpResponse,
    Output,
    ProtocolError,
    parse_query,
)
from tidings.push.sio.session import Connected, Invalid, Refresh, SioSession, Subscribe
from tidings.push.sio.socketio import encode_message
from tidings.push.websocket import WS_SLOTS, WebSocketProtocol, direct_fd, upgrade
from tidings.push.wsframe import text_frame

# Keys of this transport's cached framings in Message.frames (shared by all sessions).
_PACKET_KEY: Final = "sio"
_FRAME_KEY: Final = "sio-ws"
_NEVER: Final = float("inf")


def config_for(ctx: PushContext) -> EngineConfig:
    """The Engine.IO limits that follow from the server's settings."""
    settings = ctx.settings
    return EngineConfig(
        max_sessions=settings.max_connections,
        connect_timeout=settings.handshake_timeout,
    )


class SioConnection(SioSession, Conn):
    """One Socket.IO client: the session and the hub's connection in one object."""

    __slots__ = (*CONN_SLOTS, "_endpoint", "_poll", "_ws", "transport")
    kind: ClassVar[str] = "socketio"
    direct_frame_key: ClassVar[str | None] = _FRAME_KEY

    def __init__(
        self, sid: str, config: EngineConfig, table: dict[str, Any], now: float, websocket: bool
    ) -> None:
        super().__init__(sid, config, table, now, websocket)
        self.init_conn()
        self._endpoint: SocketIOEndpoint | None = None
        #: The held long-polling GET and the CORS headers for its answer.
        self._poll: tuple[HttpConnection, Headers] | None = None
        #: The WebSocket: the session's transport, or the one probing an upgrade.
        self._ws: SioWebSocket | None = None
        #: The WebSocket's socket while it is the session's transport (see wfd).
        self.transport: asyncio.Transport | None = None

    @property
    def ctx(self) -> PushContext:
        assert self._endpoint is not None
        return self._endpoint.ctx

    # -- the hub's side ---------------------------------------------------------

    def write(self, msg: Message) -> None:
        frames = msg.frames
        if self.websocket:
            # The fan-out path: one framing per message, then the same bytes for all.
            frame = frames.get(_FRAME_KEY)
            if frame is None:
                frame = frames[_FRAME_KEY] = text_frame(_packet(msg))
            ws = self._ws
            if ws is not None:
                ws.send_frame(frame)
            return
        ctx = self.ctx
        now = ctx.now()
        self.carry_out(self.send_packet(_packet(msg), now))
        if (
            self.paused_since is None
            and self.attached
            and self.buffered_bytes * 2 > self.config.max_buffer_bytes
        ):
            # A poller that does not come back: let the hub coalesce for it.
            ctx.hub.paused(self, now)

    def close(self, code: int, reason: str) -> None:
        """No close codes in Socket.IO: a ``close`` event says it, then DISCONNECT."""
        ctx = self.ctx
        ctx.hub.detach(self)
        now = ctx.now()
        if not self.closed:
            self.carry_out(self.send_message(push.close(code, reason), now))
            self.carry_out(self.end(reason, now))

    # -- carrying out the session's decisions ---------------------------------

    def carry_out(self, out: Output) -> None:
        if out.poll is not None and self._poll is not None:
            conn, headers = self._poll
            self._poll = None
            _respond(conn, out.poll, headers)
        ws = self._ws
        if ws is not None:
            for frame in out.frames:
                ws.send_frame(text_frame(frame))
            if out.close_websocket:
                self._ws = None
                self.track_socket()
                ws.close(CloseCode.NORMAL, "")
        for event in out.events:
            self._handle_event(event)

    def track_socket(self) -> None:
        """Let the native fan-out ``send()`` pokes itself while a WebSocket is the
        transport: ``write`` then puts exactly the cached frame on that socket.
        Called whenever ``_ws`` or ``websocket`` may have changed."""
        ws = self._ws
        transport = ws.transport if ws is not None and self.websocket else None
        self.transport = transport
        self.wfd = direct_fd(transport) if transport is not None else -1

    def hold(self, conn: HttpConnection, headers: Headers) -> None:
        self._poll = (conn, headers)
        conn.on_abort(self._poll_aborted)

    def _poll_aborted(self) -> None:
        if self._poll is not None:
            self._poll = None
            self.carry_out(self.poll_aborted(self.ctx.now()))

    def _handle_event(self, event: object) -> None:
        ctx = self.ctx
        hub = ctx.hub
        if isinstance(event, Subscribe | Refresh):
            try:
                wall = ctx.wall()
                claims = hub.authorize(event.token, event.projects, wall)
                refresh = isinstance(event, Refresh)
                hub.subscribe(self, claims, event.projects, ctx.now(), wall, refresh=refresh)
            except TidingsError as exc:
                self.close(exc.close_code, exc.detail)
                return
            self._handshake_by = _NEVER
            self._reschedule()
        elif isinstance(event, Connected):
            try:
                hub.attach(self, ctx.now())
            except TidingsError as exc:
                self.close(exc.close_code, exc.detail)
                return
            self.track_socket()  # attach starts the hub's fields afresh, wfd included
            # As on /ws: a subscribe must follow within the handshake timeout.
            self._handshake_by = ctx.now() + ctx.settings.handshake_timeout
            self._reschedule()
        elif isinstance(event, Invalid):
            self.close(event.error.close_code, event.error.detail)
        elif isinstance(event, Closed):
            hub.detach(self)

    def _handshake_expired(self, now: float, out: Output) -> None:
        if self.connected and self.user is None:
            limit = self.ctx.settings.handshake_timeout
            self.close(CloseCode.POLICY, f"no subscribe within {limit:g} s")
        else:
            super()._handshake_expired(now, out)


def _packet(msg: Message) -> bytes:
    packet = msg.frames.get(_PACKET_KEY)
    if packet is None:
        packet = msg.frames[_PACKET_KEY] = encode_message(msg.data)
    return packet


class SioWebSocket(WebSocketProtocol):
    """A WebSocket of a Socket.IO session (frames, ping/pong and limits: the base class)."""

    __slots__ = (*WS_SLOTS, "_first", "session")

    def __init__(self, session: SioConnection, first: list[bytes]) -> None:
        self.session = session
        #: Frames to send once the socket is ours (a new session's open packet).
        self._first: list[bytes] | None = first

    def on_open(self) -> None:
        session = self.session
        session._ws = self
        session.track_socket()
        first, self._first = self._first, None
        for frame in first or ():
            self.send_frame(text_frame(frame))

    def on_text(self, payload: bytes) -> None:
        session = self.session
        if session._ws is self:
            upgraded = session.websocket
            session.carry_out(session.receive_ws(payload, self.ctx.now()))
            if not upgraded and session.websocket:
                session.track_socket()
            if not upgraded and session.websocket and session.paused_since is not None:
                self.ctx.hub.resumed(session)  # a poller paused in the hub: now on WebSocket

    def on_closed(self) -> None:
        session = self.session
        if session._ws is self:
            session._ws = None
            session.track_socket()
            session.carry_out(session.ws_closed(self.ctx.now()))

    def on_pause(self) -> None:
        session = self.session
        if session._ws is self and session.websocket:
            self.ctx.hub.paused(session, self.ctx.now())

    def on_resume(self) -> None:
        session = self.session
        if session._ws is self and session.websocket:
            self.ctx.hub.resumed(session)


class SocketIOEndpoint:
    """The :class:`~tidings.push.http.HttpHandler` mounted at ``/socket.io/``."""

    def __init__(self, ctx: PushContext, config: EngineConfig | None = None) -> None:
        self.ctx = ctx
        self.server = EngineServer(SioConnection, config or config_for(ctx))
        self._timer: asyncio.TimerHandle | None = None

    def handle(self, request: Request, conn: HttpConnection) -> None:
        ctx = self.ctx
        if not ctx.origin_allowed(request.origin):
            ctx.counters.connections_refused += 1
            conn.refuse(Forbidden("origin not allowed"))
            return
        if "websocket" in request.headers.get("upgrade", "").lower():
            self._websocket(request, conn)
            return
        cors = ctx.cors_headers(request.origin)
        if request.method == "OPTIONS":
            # Only clients given extraHeaders preflight: their POSTs are text/plain.
            allow = request.headers.get("access-control-request-headers", "content-type")
            conn.respond(
                204,
                b"",
                headers=[
                    *cors,
                    ("Access-Control-Allow-Methods", "GET, POST"),
                    ("Access-Control-Allow-Headers", allow),
                    ("Access-Control-Max-Age", "600"),
                ],
            )
            return
        if conn.refusal is not None and _is_handshake(request.query):
            # Full, draining or rate-limited: no new sessions. Existing ones keep
            # polling over new sockets (their requests are not new clients).
            conn.refuse(conn.refusal, headers=cors)
            return
        now = ctx.now()
        session, out = self.server.handle_http(request.method, request.query, request.body, now)
        if session is not None and session._endpoint is None:
            session._endpoint = self
            self._arm()
        if out.hold:
            assert session is not None
            session.hold(conn, cors)
        elif out.response is not None:
            _respond(conn, out.response, cors)
        if session is None:
            return
        out.response = None
        session.carry_out(out)
        if session.paused_since is not None and session.buffered_bytes == 0:
            ctx.hub.resumed(session)  # the poller came back for what was queued

    def _websocket(self, request: Request, conn: HttpConnection) -> None:
        now = self.ctx.now()
        session, out = self.server.handle_websocket(request.query, now)
        if session is None:
            assert out.response is not None
            _respond(conn, out.response, (), close=True)
            return
        new = session._endpoint is None
        if new:
            session._endpoint = self
            self._arm()
        socket = SioWebSocket(session, out.frames)
        if upgrade(self.ctx, request, conn, socket):
            return
        # Refused at the handshake: undo what handle_websocket started.
        if session._ws is socket:
            session._ws = None
            session.track_socket()
        if new:
            session.carry_out(session.end("handshake refused", now))
        else:
            session.carry_out(session.ws_closed(now))

    # -- the sessions' clock: one timer for all, only while there are sessions --

    def _arm(self) -> None:
        if self._timer is None:
            interval = self.ctx.settings.tick_interval
            self._timer = self.ctx.loop.call_later(interval, self._tick)

    def _tick(self) -> None:
        self._timer = None
        for session, out in self.server.tick(self.ctx.now()):
            session.carry_out(out)
        if self.server.sessions:
            self._arm()


def _is_handshake(query: str) -> bool:
    try:
        return "sid" not in parse_query(query)
    except ProtocolError:
        return False  # the session layer answers it with 400


def _respond(
    conn: HttpConnection, response: HttpResponse, extra: Headers, *, close: bool = False
) -> None:
    content_type = "text/plain"
    headers: list[tuple[str, str]] = []
    for name, value in response.headers:
        if name == "Content-Type":
            content_type = value
        elif name == "Connection":
            close = value == "close"
        elif name != "Cache-Control":  # respond() always sends no-store
            headers.append((name, value))
    headers.extend(extra)
    conn.respond(
        response.status, response.body, content_type=content_type, headers=headers, close=close
    )
