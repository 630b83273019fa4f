"""``/socket.io/`` on the push server: the asyncio glue around the sans-I/O session.

It carries out each :class:`~tidings.push.sio.engineio.Output` (answer or hold an
HTTP request, write frames, close sockets) and speaks to the hub as ``/ws`` does;
every protocol rule lives in engineio.py, socketio.py and session.py. Mounted by
the push server through :func:`tidings.push.sio.http_handler` (see push/http.py).
"""

from __future__ import annotations

import asyncio
from typing import ClassVar, Final

from tidings.protocol import push
from tidings.protocol.errors import CloseCode, Forbidden, RateLimited, TidingsError
from tidings.push.context import PushContext
from tidings.push.http import Headers, HttpConnection, Request
from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage
from tidings.push.limits import IpRateLimiter, PendingTable
from tidings.push.sio.engineio import (
    TOO_MANY_PACKETS,
    TOO_MANY_PENDING,
    Closed,
    EngineConfig,
    EngineServer,
    EngineSession,
    HttpResponse,
    Output,
    ProtocolError,
    Query,
    SessionTable,
    parse_query,
)
from tidings.push.sio.session import Connected, InvalidEvent, Refresh, SioSession, Subscribe
from tidings.push.sio.socketio import encode_event, encode_message
from tidings.push.websocket import WS_SLOTS, WebSocketProtocol, direct_fd, upgrade
from tidings.push.wsframe import text_frame

# Keys of this transport's cached framings in EncodedMessage.frames (shared by all sessions).
_PACKET_KEY: Final = "sio"
_FRAME_KEY: Final = "sio-ws"
_NEVER: Final = float("inf")


def config_for(ctx: PushContext) -> EngineConfig:
    """The Engine.IO limits that follow from the server's settings."""
    settings = ctx.settings
    return EngineConfig(
        ping_interval=settings.sio_ping_interval,
        ping_timeout=settings.sio_ping_timeout,
        # A POST body past the HTTP layer's cap never reaches the session.
        max_payload=min(settings.sio_max_payload, settings.max_body_bytes),
        # Clients, plus sessions without a token (long-polling ones bounded by
        # the endpoint's max_pending, WebSocket-only ones by the pending
        # sockets' max_pending) and those closing (each lingers
        # untrusted_close_timeout at most).
        max_sessions=settings.max_connections + 3 * settings.max_pending,
        connect_timeout=settings.handshake_timeout,
    )


#: The WebSocket close of a session ended by a rule of its own (else 1000).
_CLOSE_CODES: Final = {
    TOO_MANY_PACKETS: (CloseCode.RATE_LIMITED, TOO_MANY_PACKETS),
    TOO_MANY_PENDING: (CloseCode.TRY_AGAIN_LATER, TOO_MANY_PENDING),
}


class SioConnection(SioSession, Conn):
    """One Socket.IO client: the session and the hub's connection in one object."""

    __slots__ = (*CONN_SLOTS, "_endpoint", "_poll", "_ws", "ctx", "peer", "transport")
    kind: ClassVar[str] = "socketio"
    direct_frame_key: ClassVar[str | None] = _FRAME_KEY

    def __init__(
        self, sid: str, config: EngineConfig, table: SessionTable, now: float, websocket: bool
    ) -> None:
        EngineSession.__init__(self, sid, config, table, now, websocket)  # (SioSession has none)
        self.init_conn()
        self._endpoint: SocketIOEndpoint | None = None
        #: The endpoint's context, once the endpoint has taken the session.
        self.ctx: PushContext
        #: The held long-polling GET and the CORS headers for its answer.
        self._poll: tuple[HttpConnection, Headers] | None = None
        #: The WebSocket: the session's transport, or the one probing an upgrade.
        self._ws: SioWebSocket | None = None
        #: The WebSocket's socket while it is the session's transport (see wfd).
        self.transport: asyncio.Transport | None = None
        #: The client's address at the handshake (per-IP session limits).
        self.peer = ""

    # -- the hub's side ---------------------------------------------------------

    def write(self, msg: EncodedMessage) -> None:
        frames = msg.frames
        if self.websocket:
            # The fan-out path: one framing per message, then the same bytes for all.
            frame = frames.get(_FRAME_KEY)
            if frame is None:
                frame = frames[_FRAME_KEY] = _ws_frame(msg)
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

    def carry_out(self, out: Output, now: float | None = None) -> None:
        """Do what ``out`` says; ``now``: the time of the input that made it, if
        the caller has it (events then need not read the clock again)."""
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
                code, reason = CloseCode.NORMAL, ""
                for event in out.events:
                    if isinstance(event, Closed):
                        code, reason = _CLOSE_CODES.get(event.reason, (code, reason))
                ws.close(code, reason)
        for event in out.events:
            self._handle_event(event, now)
        if self._endpoint is not None:
            self._endpoint._arm()

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

    def _handle_event(self, event: object, now: float | None) -> None:
        ctx = self.ctx
        hub = ctx.hub
        if now is None:
            now = ctx.now()
        # By exact type: the session's events are never subclassed.
        if type(event) is Subscribe or type(event) is Refresh:
            try:
                wall = ctx.wall()
                claims = hub.authorize(event.token, event.projects, wall)
                refresh = type(event) is Refresh
                hub.subscribe(self, claims, event.projects, now, wall, refresh=refresh)
            except TidingsError as exc:
                self.close(exc.close_code, exc.detail)
                return
            self._handshake_by = _NEVER
            self._reschedule()
            if not self.trusted:
                self._trusted(now)
        elif type(event) is Connected:
            wfd = self.wfd
            try:
                hub.attach(self, now)
            except TidingsError as exc:
                self.close(exc.close_code, exc.detail)
                return
            self.wfd = wfd  # attach starts the hub's fields afresh; the socket is the same
            # As on /ws, a subscribe must follow: by the connect timeout, which
            # counts from the session's start (see _handshake_expired).
        elif type(event) is InvalidEvent:
            self.close(event.error.close_code, event.error.detail)
        elif type(event) is Closed:
            hub.detach(self)
            if self._endpoint is not None:
                self._endpoint.pending.remove(self)
            if event.reason == TOO_MANY_PACKETS:
                ctx.counters.packet_floods += 1

    def _trusted(self, now: float) -> None:
        """A verified token: the larger packet budget, and its sockets are clients."""
        if self.trusted:
            return
        self.trust(now)
        ctx = self.ctx
        self._endpoint.pending.remove(self)  # type: ignore[union-attr]
        ws = self._ws
        if ws is not None:
            ctx.settle(ws.transport)
        if self._poll is not None:
            ctx.settle(self._poll[0].transport)

    def _handshake_expired(self, now: float, out: Output) -> None:
        if self.connected and self.user is None:
            limit = self.ctx.settings.handshake_timeout
            self.close(CloseCode.POLICY, f"no subscribe within {limit:g} s")
        else:
            super()._handshake_expired(now, out)


def _encode(msg: EncodedMessage) -> bytes:
    """The message's Engine.IO packet."""
    kind = msg.kind  # known: no need to decode the message for its type
    return encode_message(msg.data) if kind is None else encode_event(kind, msg.data)


def _ws_frame(msg: EncodedMessage) -> bytes:
    """The message's WebSocket frame (the packet is not cached: on a WebSocket
    only the frame is asked for again)."""
    packet = msg.frames.get(_PACKET_KEY)
    return text_frame(packet if packet is not None else _encode(msg))


def _packet(msg: EncodedMessage) -> bytes:
    packet = msg.frames.get(_PACKET_KEY)
    if packet is None:
        packet = msg.frames[_PACKET_KEY] = _encode(msg)
    return packet


class SioWebSocket(WebSocketProtocol):
    """A WebSocket of a Socket.IO session (frames, ping/pong and limits: the base class)."""

    __slots__ = (*WS_SLOTS, "_first", "session")

    def __init__(self, session: SioConnection, first: list[bytes]) -> None:
        self.session = session
        #: Frames to send once the socket is ours (a new session's open packet).
        self._first: list[bytes] | None = first

    def subscribed(self) -> bool:
        """The larger frame budget once the session's token is verified."""
        return self.session.trusted

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
            now = self.ctx.now()
            session.carry_out(session.receive_ws(payload, now), now)
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


class _ClosedAtOnce(WebSocketProtocol):
    """A second WebSocket for a session that has one: upgraded, then closed."""

    __slots__ = WS_SLOTS

    def on_open(self) -> None:
        self.close(CloseCode.NORMAL, "")


class SocketIOEndpoint:
    """The :class:`~tidings.push.http.HttpHandler` mounted at ``/socket.io/``."""

    def __init__(self, ctx: PushContext, config: EngineConfig | None = None) -> None:
        self.ctx = ctx
        self.server = EngineServer(SioConnection, config or config_for(ctx))
        self._sessions = self.server.sessions
        self._timer: asyncio.TimerHandle | None = None
        self._armed_at = _NEVER
        settings = ctx.settings
        #: Long-polling sessions without a verified token yet, oldest first, per
        #: address: at most ``max_pending`` in all (the oldest is closed to make
        #: room) and ``max_pending_per_ip`` per address. A WebSocket-only
        #: session is not here: it lives and dies with its socket, which is
        #: pending in the server's table (PushContext.pending) until the
        #: session's token is verified, and bounded there.
        self.pending: PendingTable[SioConnection] = PendingTable()
        #: New sessions per address: sockets have their own bucket, but one
        #: kept-alive socket can ask for any number of sessions.
        self._rate = IpRateLimiter(settings.ip_rate, settings.ip_burst)
        #: Parsed handshake queries by their text (see _fields).
        self._queries: dict[str, Query] = {}

    def _admit(self, peer: str, now: float, *, websocket: bool = False) -> TidingsError | None:
        """May ``peer`` start one more session? Makes room in a full pending pool.

        A WebSocket-only session (``websocket``) takes no place here (see
        ``pending``): its socket already has one among the pending sockets,
        capped per address and in all there, so only the rate applies.
        """
        settings = self.ctx.settings
        if settings.ip_rate > 0:
            cap = settings.max_pending_per_ip
            if cap and not websocket and self.pending.count_for(peer) >= cap:
                detail = "too many sessions without a token from this address"
                return RateLimited(detail, retry_after=1)
            if not self._rate.allow(peer, now):
                wait = max(1, round(self._rate.retry_after(peer, now) + 0.5))
                return RateLimited("too many new sessions from this address", retry_after=wait)
        if websocket:
            return None
        while len(self.pending) >= settings.max_pending:
            # The oldest goes, at once and for good (no closing linger): it has
            # had the longest to send its token.
            oldest = next(iter(self.pending))
            self.pending.remove(oldest)
            self.ctx.counters.pending_evicted += 1
            oldest.carry_out(oldest.drop(TOO_MANY_PENDING, now))
        return None

    def _opened(self, session: SioConnection, peer: str) -> None:
        # The timer is armed after the request: its deadline may move before then.
        session._endpoint = self
        session.ctx = self.ctx
        session.peer = peer
        if not session.websocket:
            self.pending.add(session, peer)

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
        now = ctx.now()
        query = self._fields(request.query)
        if _is_handshake(query):
            # Full, draining or rate-limited: no new sessions. Existing ones keep
            # polling over new sockets (their requests are not new clients).
            refusal = conn.refusal or self._admit(request.peer, now)
            if refusal is not None:
                conn.refuse(refusal, headers=cors)
                return
        session, out = self.server.handle_http(request.method, query, request.body, now)
        if session is not None and session._endpoint is None:
            self._opened(session, request.peer)
        if session is not None and session.trusted:
            ctx.settle(conn.transport)
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
        query = self._fields(request.query)
        if type(query) is dict and "sid" not in query and conn.refusal is None:  # a handshake
            # (A refused socket is answered by ``upgrade``: 1013 after the 101.)
            refusal = self._admit(request.peer, now, websocket=True)
            if refusal is not None:
                conn.refuse(refusal)
                return
        session, out = self.server.handle_websocket(query, now)
        if session is None:
            if out.response is not None:
                _respond(conn, out.response, (), close=True)
            else:
                upgrade(self.ctx, request, conn, _ClosedAtOnce())
            return
        new = session._endpoint is None
        if new:
            self._opened(session, request.peer)
        socket = SioWebSocket(session, out.frames)
        if upgrade(self.ctx, request, conn, socket):
            if session.trusted and not new:
                # (A new session's socket was settled when its token was verified.)
                self.ctx.settle(socket.transport)
            self._arm()  # the upgrade's deadline
            return
        # Refused at the handshake: undo what handle_websocket started.
        if session._ws is socket:
            session._ws = None
            session.track_socket()
        if new:
            session.carry_out(session.end("handshake refused", now))
        else:
            session.carry_out(session.ws_closed(now))

    def _fields(self, query: str) -> Query:
        """:func:`_parse`, remembered for handshakes without a timestamp: a
        client's every handshake sends the same query (``EIO=4&transport=
        websocket``). The fields are shared: nothing here changes them."""
        cache = self._queries
        fields = cache.get(query)
        if fields is None:
            fields = _parse(query)
            if type(fields) is dict and "sid" not in fields and "t" not in fields:
                if len(cache) >= _QUERY_CACHE:
                    cache.clear()
                cache[query] = fields
        return fields

    # -- the sessions' clock: one timer, at the earliest deadline of any session --

    def _arm(self) -> None:
        """(Re)arm the timer for the earliest session deadline, if it moved earlier.

        Called after every input (a deadline may have moved): each timer then
        fires within a loop iteration of its deadline, not on a periodic tick.
        """
        if self._timer is not None and not self._sessions.moved:
            return  # armed at the earliest deadline, and none has moved since
        at = self._sessions.next_wake()
        if at == _NEVER:
            return
        timer = self._timer
        if timer is not None:
            if self._armed_at <= at:
                return
            timer.cancel()
        self._armed_at = at
        self._timer = self.ctx.loop.call_at(at, self._tick)

    def _tick(self) -> None:
        self._timer = None
        # uvloop's clock reads whole milliseconds: the deadline has come even if
        # the clock says a fraction of one earlier.
        now = max(self.ctx.now(), self._armed_at)
        for session, out in self.server.tick(now):
            session.carry_out(out)
        self._arm()


#: Parsed handshake queries kept at most (then the cache starts afresh).
_QUERY_CACHE: Final = 64


def _parse(query: str) -> Query:
    """The query's fields, parsed once for the endpoint and the session layer;
    the query itself when malformed (the session layer answers it with 400)."""
    try:
        return parse_query(query)
    except ProtocolError:
        return query


def _is_handshake(query: Query) -> bool:
    return isinstance(query, dict) and "sid" not in query


def _respond(
    conn: HttpConnection, response: HttpResponse, extra: Headers, *, close: bool = False
) -> None:
    content_type = "text/plain"
    headers: list[tuple[str, str]] = []
    for name, value in response.headers:
        if name == "Content-Type":
            content_type = value
        elif name == "Connection":
            close = close or value == "close"
        elif name != "Cache-Control":  # respond() always sends no-store
            headers.append((name, value))
    headers.extend(extra)
    # An error ends the socket too: a client that errs reconnects anyway, and a
    # kept-alive socket must not serve an endless loop of refused requests.
    close = close or response.status >= 400
    conn.respond(
        response.status, response.body, content_type=content_type, headers=headers, close=close
    )
