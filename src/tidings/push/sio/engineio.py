"""Engine.IO v4 (the transport under Socket.IO v5) as sans-I/O state machines.

Packets, long-polling payloads, and one session's rules (handshake, server-sent
pings, one held GET, the WebSocket upgrade, closing) with the time passed in.
Nothing here touches a socket or a clock: every call returns what to send as data
(an :class:`Output`), and the server that owns the sockets carries it out.
"""

from __future__ import annotations

import base64
import binascii
import functools
import heapq
import itertools
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Final, Generic, NamedTuple, TypeVar

import orjson

from tidings.protocol.errors import BadMessage
from tidings.push.query import query_pairs

#: The ``EIO`` query value this server speaks; 3 (Socket.IO v2) is refused.
PROTOCOL: Final = 4

#: Joins packets in an HTTP long-polling body (engine.io-protocol v4).
RECORD_SEPARATOR: Final = "\x1e"

#: Longest query string accepted on ``/socket.io/`` (sid, EIO, transport, t):
#: a real client's is under 100 bytes.
MAX_QUERY_BYTES: Final = 1024
#: Most ``name=value`` fields in that query string.
MAX_QUERY_FIELDS: Final = 16

TRANSPORT_POLLING: Final = "polling"
TRANSPORT_WEBSOCKET: Final = "websocket"

# Close reasons carried by :class:`Closed`; the first five are the reference
# server's own words, so logs read the same on both.
PING_TIMEOUT: Final = "ping timeout"
TRANSPORT_CLOSE: Final = "transport close"
TRANSPORT_ERROR: Final = "transport error"
PARSE_ERROR: Final = "parse error"
SERVER_CLOSE: Final = "forced close"
PAYLOAD_TOO_LARGE: Final = "payload too large"
SEND_BUFFER_FULL: Final = "send buffer full"
#: The session sent packets faster than its budget (EngineConfig.packet_rate).
TOO_MANY_PACKETS: Final = "too many packets"
#: Closed without a token to make room for a newer session (max_pending).
TOO_MANY_PENDING: Final = "too many sessions without a token"


class PacketType(IntEnum):
    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class ErrorCode(IntEnum):
    """The reference server's error codes, sent as ``{"code": n, "message": ...}``."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


ERROR_MESSAGES: Final[dict[ErrorCode, str]] = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


class ProtocolError(BadMessage):
    """Input that breaks the Engine.IO or Socket.IO wire format; the session ends."""


class Packet(NamedTuple):
    type: PacketType
    #: Text for text packets; bytes for binary message packets.
    data: str | bytes = ""


#: Stands for "a text message packet, its data after the type digit" (see
#: EngineSession.receive_ws).
_TEXT_MESSAGE: Final = Packet(PacketType.MESSAGE)
_TYPE_OF_CHAR: Final[dict[str, PacketType]] = {str(int(t)): t for t in PacketType}


def decode_packet(data: str | bytes) -> Packet:
    """Decode one packet: a text packet, a ``b``-prefixed base64 one, or a binary frame."""
    if isinstance(data, bytes):
        # A binary WebSocket frame is a message packet with no type prefix.
        return Packet(PacketType.MESSAGE, data)
    if not data:
        raise ProtocolError("empty Engine.IO packet")
    head = data[0]
    if head == "b":
        try:
            return Packet(PacketType.MESSAGE, base64.b64decode(data[1:], validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError("binary packet is not valid base64") from None
    kind = _TYPE_OF_CHAR.get(head)
    if kind is None:
        raise ProtocolError(f"unknown Engine.IO packet type {head!r}")
    return Packet(kind, data[1:])


def encode_packet(packet: Packet, *, binary_frames: bool = True) -> str | bytes:
    """Encode one packet; binary data is a raw frame, or base64 text for polling."""
    if isinstance(packet.data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ValueError("only message packets carry binary data")
        if binary_frames:
            return packet.data
        return "b" + base64.b64encode(packet.data).decode("ascii")
    return str(int(packet.type)) + packet.data


def decode_payload(payload: str) -> list[Packet]:
    """Split and decode an HTTP long-polling body (the caller bounds its size)."""
    if not payload:
        raise ProtocolError("empty Engine.IO payload")
    return [decode_packet(part) for part in payload.split(RECORD_SEPARATOR)]


def encode_payload(packets: Iterable[Packet]) -> str:
    """Join packets for one HTTP long-polling body (binary as base64)."""
    parts: list[str] = []
    for packet in packets:
        encoded = encode_packet(packet, binary_frames=False)
        assert isinstance(encoded, str)
        if RECORD_SEPARATOR in encoded:
            raise ValueError("a packet may not contain the record separator")
        parts.append(encoded)
    return RECORD_SEPARATOR.join(parts)


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Timers and limits of the Socket.IO endpoint; times in seconds, sizes in bytes."""

    #: A ping every this many seconds after the last pong (reference default 25 s);
    #: the client closes if none arrives within ping_interval + ping_timeout.
    ping_interval: float = 25.0
    #: A pong must come back within this many seconds, else the session closes
    #: with "ping timeout" (reference default 20 s).
    ping_timeout: float = 20.0
    #: Largest inbound POST body and WebSocket frame (advertised as ``maxPayload``,
    #: so clients split their POSTs under it). A client message is at most 16 KiB;
    #: over the cap: HTTP 413 / the session closes with "payload too large".
    max_payload: int = 32 * 1024
    #: Outbound bytes a polling session may buffer between two GETs. Past it the
    #: buffer is dropped and the session closes with "send buffer full" (the client
    #: reconnects and polls meanwhile). Worst case memory: max_sessions * this.
    #: WebSocket sessions buffer nothing here (the socket's write buffer is the
    #: server's to bound).
    max_buffer_bytes: int = 32 * 1024
    #: A probing WebSocket must finish the upgrade within this time, else it is
    #: closed and the session stays on polling (reference default 10 s).
    upgrade_timeout: float = 10.0
    #: A polling session closed by the server waits this long for the GET that
    #: carries its last packets, then is forgotten (reference: 30 s).
    close_timeout: float = 30.0
    #: A session that has not sent the Socket.IO CONNECT by then is closed
    #: (the reference's connectTimeout is 45 s; clients send it at once).
    connect_timeout: float = 10.0
    #: Open sessions at most; handshakes past it get 403 {"code": 4}.
    max_sessions: int = 10_000
    #: Inbound packets a session may send: a token bucket of ``packet_burst``
    #: refilled at ``packet_rate`` per second until the layer above calls
    #: :meth:`EngineSession.trust` (a verified token), then ``trusted_packet_*``.
    #: Past it the session ends with "too many packets" (no packet past the
    #: budget is decoded). A real client sends CONNECT, maybe a subscribe, the
    #: upgrade probe and ``5``, then a pong per ping interval and a refresh per
    #: token lifetime: well under both.
    packet_rate: float = 2.0
    packet_burst: int = 16
    trusted_packet_rate: float = 10.0
    trusted_packet_burst: int = 64
    #: A polling session closed before :meth:`EngineSession.trust` waits only
    #: this long for the GET that carries its last packets (it holds nothing a
    #: client needs; an abandoned handshake should cost little).
    untrusted_close_timeout: float = 2.0
    allow_polling: bool = True
    allow_websocket: bool = True
    #: Offer polling sessions the upgrade to WebSocket.
    allow_upgrades: bool = True


class HttpResponse(NamedTuple):
    """An answer to one HTTP request; the server adds Content-Length (and CORS)."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


_POLL_HEADERS: Final = (
    ("Content-Type", "text/plain; charset=UTF-8"),
    ("Cache-Control", "no-store"),
)
# text/html rather than text/plain: the reference's answer to a POST (GH-43).
_POST_OK: Final = HttpResponse(
    200, (("Content-Type", "text/html"), ("Cache-Control", "no-store")), b"ok"
)
_TOO_LARGE: Final = HttpResponse(413, (("Cache-Control", "no-store"),), b"")
_JSON_HEADERS: Final = (("Content-Type", "application/json"), ("Cache-Control", "no-store"))

_PING: Final = b"2"
_PONG: Final = b"3"
_PONGS: Final = frozenset({"3", b"3"})
_PONG_PROBE: Final = b"3probe"
_NOOP: Final = b"6"
_CLOSE: Final = b"1"
_NEVER: Final = math.inf


def error_response(code: ErrorCode, message: str | None = None) -> HttpResponse:
    """The reference's refusal of a polling request: 400 (403 for Forbidden) + JSON."""
    body = orjson.dumps({"code": int(code), "message": message or ERROR_MESSAGES[code]})
    return HttpResponse(403 if code is ErrorCode.FORBIDDEN else 400, _JSON_HEADERS, body)


def websocket_error_response(code: ErrorCode, message: str | None = None) -> HttpResponse:
    """The reference's refusal of a WebSocket handshake: 400 with the message as text."""
    text = (message or ERROR_MESSAGES[code]).encode()
    return HttpResponse(400, (("Content-Type", "text/html"), ("Connection", "close")), text)


def poll_response(body: bytes) -> HttpResponse:
    return HttpResponse(200, _POLL_HEADERS, body)


@dataclass(frozen=True, slots=True)
class Message:
    """An Engine.IO message from the client (only without a layer above)."""

    data: str | bytes


@dataclass(frozen=True, slots=True)
class Closed:
    """The session ended; it takes no more calls that send."""

    reason: str


class Output:
    """What the server must do after one call, in this order.

    1. ``response``: answer the HTTP request being handled (unless ``hold``);
    2. ``hold``: keep that GET open: it is the session's poll, answered by a
       later ``poll``;
    3. ``poll``: answer the session's held GET with this;
    4. ``frames``: send these text frames on the session's WebSocket (the
       probing one during an upgrade);
    5. ``close_websocket``: then close that WebSocket;
    6. ``events``: hand these to the application.
    """

    __slots__ = ("close_websocket", "events", "frames", "hold", "poll", "response")

    def __init__(self) -> None:
        self.response: HttpResponse | None = None
        self.hold = False
        self.poll: HttpResponse | None = None
        self.frames: list[bytes] = []
        self.close_websocket = False
        self.events: list[object] = []

    def __bool__(self) -> bool:
        return bool(
            self.response is not None
            or self.hold
            or self.poll is not None
            or self.frames
            or self.close_websocket
            or self.events
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Output({fields})"


class SessionTable(dict[str, Any]):
    """The server's sessions by sid, and their deadlines in one heap.

    A session reports each new ``wake_at`` (in ``moved``); the heap takes it at
    the next :meth:`next_wake` or :meth:`due`, once however often the deadline
    moved meanwhile (a new client's handshake moves it three times in one
    input). Entries a session has since moved are skipped when they come up, so
    the heap holds a few entries per session (about two per ping interval) and
    :meth:`due` costs O(log n) per deadline instead of a scan of every session
    per tick.
    """

    __slots__ = ("_heap", "_seq", "moved")

    def __init__(self) -> None:
        super().__init__()
        self._heap: list[tuple[float, int, EngineSession]] = []
        #: Sessions whose ``wake_at`` moved since the heap last took them (an
        #: owner that armed its timer at :meth:`next_wake` has nothing new to
        #: arm while this is empty: deadlines only leave the heap meanwhile).
        self.moved: dict[EngineSession, None] = {}
        self._seq = itertools.count()

    def _take_moved(self) -> None:
        moved, heap, seq = self.moved, self._heap, self._seq
        for session in moved:
            at = session.wake_at
            if at < _NEVER:
                heapq.heappush(heap, (at, next(seq), session))
        moved.clear()

    def next_wake(self) -> float:
        """The earliest deadline of any session (``inf`` when none)."""
        if self.moved:
            self._take_moved()
        heap = self._heap
        while heap and heap[0][0] != heap[0][2].wake_at:
            heapq.heappop(heap)  # moved since, or finished
        return heap[0][0] if heap else _NEVER

    def due(self, now: float) -> list[EngineSession]:
        """Every session whose deadline has come, each once."""
        self._take_moved()
        heap = self._heap
        found: dict[int, EngineSession] = {}
        while heap and heap[0][0] <= now:
            at, _, session = heapq.heappop(heap)
            if at == session.wake_at:
                found[id(session)] = session
        return list(found.values())


class State(IntEnum):
    """Where a session is in its life; :data:`STATE_CHANGES` lists every step."""

    OPEN = 1
    CLOSING = 2  # polling only: waiting for the GET that takes the last packets
    CLOSED = 3


class Upgrade(IntEnum):
    """Where a polling session is in its upgrade; :data:`UPGRADE_CHANGES` lists every step."""

    NONE = 0
    PROBING = 1  # a WebSocket is attached, "2probe" not yet seen
    UPGRADING = 2  # "3probe" sent, waiting for "5"


#: Every change of :class:`State` a session may make, and when. Any other is a
#: bug in this module: :meth:`EngineSession._enter` raises rather than go on.
STATE_CHANGES: Final[dict[tuple[State, State], str]] = {
    (State.OPEN, State.CLOSING): "closed by the server over polling: queued packets wait for a GET",
    (State.OPEN, State.CLOSED): "closed over WebSocket, or a failure: forgotten at once",
    (
        State.CLOSING,
        State.CLOSED,
    ): "a GET took the last packets, the client closed, or close_timeout",
}

#: Every change of :class:`Upgrade`, and when (the same rule as STATE_CHANGES).
UPGRADE_CHANGES: Final[dict[tuple[Upgrade, Upgrade], str]] = {
    (Upgrade.NONE, Upgrade.PROBING): "a WebSocket for the session was accepted",
    (Upgrade.PROBING, Upgrade.UPGRADING): "2probe arrived and 3probe was sent",
    (
        Upgrade.PROBING,
        Upgrade.NONE,
    ): "5 (now on WebSocket), or the probe failed, closed or timed out",
    (
        Upgrade.UPGRADING,
        Upgrade.NONE,
    ): "5 (now on WebSocket), or the probe failed, closed or timed out",
}

_OPEN: Final = State.OPEN
_CLOSING: Final = State.CLOSING
_CLOSED: Final = State.CLOSED
_NO_UPGRADE: Final = Upgrade.NONE
_PROBING: Final = Upgrade.PROBING
_UPGRADING: Final = Upgrade.UPGRADING


@functools.lru_cache(maxsize=16)
def _open_tail(upgrade: bool, ping_interval: float, ping_timeout: float, max_payload: int) -> bytes:
    """The open packet after its sid: the same for every session of a config, so
    encoded once (a new session's handshake is on the path of every client).
    Keyed by the fields it uses: hashing the whole config costs more than this."""
    body = orjson.dumps(
        {
            "sid": "",
            "upgrades": [TRANSPORT_WEBSOCKET] if upgrade else [],
            "pingInterval": round(ping_interval * 1000),
            "pingTimeout": round(ping_timeout * 1000),
            "maxPayload": max_payload,
        }
    )
    return body[len(b'{"sid":""') :]


class EngineSession:
    """One Engine.IO session: polling, WebSocket, or polling upgrading to WebSocket.

    Per-session state is a handful of slots (no per-session timers, tasks or
    queues while idle): the server drives time with :meth:`tick` whenever
    ``wake_at`` has passed. The layer above overrides :meth:`_on_message`.
    """

    __slots__ = (
        "_awaiting_pong",
        "_budget_at",
        "_buffer",
        "_buffered",
        "_close_by",
        "_heartbeat_at",
        "_poll_held",
        "_table",
        "_upgrade",
        "_upgrade_by",
        "config",
        "sid",
        "state",
        "trusted",
        "wake_at",
        "websocket",
    )

    def __init__(
        self,
        sid: str,
        config: EngineConfig,
        table: SessionTable,
        now: float,
        websocket: bool,
    ) -> None:
        self.sid = sid
        self.config = config
        #: True once packets travel as WebSocket frames: the server may then
        #: write a pre-encoded packet to the socket without calling the session.
        self.websocket = websocket
        self.state: State = _OPEN
        #: Call :meth:`tick` at or after this time (monotonic seconds).
        self.wake_at = _NEVER
        #: The server's session table, left on the final close.
        self._table = table
        self._buffer: list[bytes] | None = None
        self._buffered = 0
        self._poll_held = False
        self._upgrade: Upgrade = _NO_UPGRADE
        self._awaiting_pong = False
        self._heartbeat_at = now + config.ping_interval
        self._upgrade_by = _NEVER
        self._close_by = _NEVER
        #: The packet budget (EngineConfig.packet_rate) as one time (GCRA): the
        #: budget is full at or before it, and each packet moves it 1/rate later.
        self.trusted = False
        self._budget_at = now
        self._start_upper(now)
        # _reschedule for an open session that had no deadline yet.
        self.wake_at = min(self._heartbeat_at, self._upper_deadline())
        table.moved[self] = None

    # -- what the server reads -------------------------------------------------

    @property
    def closed(self) -> bool:
        """No more packets can be sent (it may still hand out its last poll)."""
        return self.state != _OPEN

    @property
    def buffered_bytes(self) -> int:
        """Bytes waiting for the next GET (polling only)."""
        return self._buffered

    def open_packet(self) -> bytes:
        """The handshake: the first GET's answer, or a WebSocket-only session's first frame."""
        config = self.config
        upgrade = not self.websocket and config.allow_upgrades and config.allow_websocket
        tail = _open_tail(upgrade, config.ping_interval, config.ping_timeout, config.max_payload)
        return b'0{"sid":' + orjson.dumps(self.sid) + tail

    # -- inputs from the server ----------------------------------------------

    def trust(self, now: float) -> None:
        """The layer above verified the client: the larger packet budget, full."""
        if not self.trusted:
            self.trusted = True
            self._budget_at = now

    def send_packet(self, packet: bytes, now: float) -> Output:
        """Queue one encoded Engine.IO packet (for example a pre-encoded event)."""
        out = Output()
        if self.state == _OPEN:
            self._queue(packet, now, out)
            self._flush(out)
        return out

    def receive_ws(self, data: str | bytes, now: float, *, binary: bool = False) -> Output:
        """One WebSocket message: text (``str``, or UTF-8 ``bytes``) or ``binary``."""
        out = Output()
        if self.state != _OPEN or not (self.websocket or self._upgrade):
            return out
        if not self._charge(1, now, self._awaiting_pong and data in _PONGS):
            self._end(TOO_MANY_PACKETS, now, out, flush=False)
            return out
        packet: Packet | None = None
        reason = PARSE_ERROR
        if len(data) > self.config.max_payload:
            reason = PAYLOAD_TOO_LARGE
        else:
            try:
                if isinstance(data, bytes) and not binary:
                    data = data.decode("utf-8")
                # Nearly every packet of an upgraded session is a text message:
                # handed up below without being decoded into a Packet first.
                websocket_message = self.websocket and data[:1] == "4"
                packet = _TEXT_MESSAGE if websocket_message else decode_packet(data)
            except (UnicodeDecodeError, ProtocolError):
                pass
        if self.websocket:
            if packet is None:
                self._end(reason, now, out, flush=False)
            elif packet is _TEXT_MESSAGE:
                self._on_message(data[1:], now, out)
            elif packet.type is PacketType.MESSAGE:
                self._on_message(packet.data, now, out)
            else:
                self._on_packet(packet, now, out)
        elif packet is None:
            self._abort_upgrade(out)
        else:
            self._on_probe_packet(packet, now, out)
        self._flush(out)
        return out

    def ws_closed(self, now: float) -> Output:
        """The peer closed the WebSocket (not one an Output said to close)."""
        out = Output()
        if self.state != _OPEN:
            return out
        if self.websocket:
            self._end(TRANSPORT_CLOSE, now, out, flush=False)
        elif self._upgrade:
            self._step_upgrade(_NO_UPGRADE)
            self._upgrade_by = _NEVER
            self._reschedule()
        return out

    def poll_aborted(self, now: float) -> Output:
        """The held GET's connection closed before it was answered."""
        out = Output()
        if self._poll_held:
            self._poll_held = False
            self._end(TRANSPORT_ERROR, now, out, flush=False)
        return out

    def end(self, reason: str, now: float) -> Output:
        """Close from the server side, delivering what is already queued first."""
        out = Output()
        self._end(reason, now, out, flush=True)
        return out

    def drop(self, reason: str, now: float) -> Output:
        """Close at once, dropping what is queued: the session leaves the table now."""
        out = Output()
        self._end(reason, now, out, flush=False)
        return out

    def tick(self, now: float) -> Output:
        """Run the timers: ping, ping timeout, upgrade timeout, close timeout."""
        out = Output()
        if now < self.wake_at:
            return out
        if self.state == _CLOSING:
            if now >= self._close_by:
                self._finish()
            return out
        if self.state != _OPEN:
            return out
        if self._upgrade and now >= self._upgrade_by:
            self._abort_upgrade(out)
        if now >= self._heartbeat_at:
            if self._awaiting_pong:
                self._end(PING_TIMEOUT, now, out, flush=False)
                return out
            self._awaiting_pong = True
            self._heartbeat_at = now + self.config.ping_timeout
            self._queue(_PING, now, out)
        self._tick_upper(now, out)
        self._flush(out)
        self._reschedule()
        return out

    # -- HTTP long-polling (called by EngineServer) -------------------------------

    def _get(self, now: float, out: Output) -> None:
        if self.state == _CLOSING:
            out.response = self._closing_poll()
        elif self._poll_held:
            # One GET at a time (reference: "overlap from client"): refuse the
            # new one, end the session, answer the held one with a close packet.
            out.response = error_response(ErrorCode.BAD_REQUEST)
            self._end(TRANSPORT_ERROR, now, out, flush=False)
        elif self._buffer:
            out.response = poll_response(self._take_buffer())
        elif self._upgrade == _UPGRADING:
            # The client pauses polling to upgrade: let this GET return at once.
            out.response = poll_response(_NOOP)
        else:
            self._poll_held = True
            out.hold = True

    def _post(self, body: bytes, now: float, out: Output) -> None:
        if self.state == _CLOSING:
            out.response = _POST_OK
            if body == _CLOSE or body.endswith(b"\x1e1"):
                self._finish()  # the client closed too: nothing left to deliver
            return
        if len(body) > self.config.max_payload:
            out.response = _TOO_LARGE
            self._end(PAYLOAD_TOO_LARGE, now, out, flush=False)
            return
        # Counted before decoding: a 32 KiB body may hold 16,000 one-byte packets.
        if not self._charge(body.count(b"\x1e") + 1, now, body == _PONG):
            out.response = error_response(ErrorCode.BAD_REQUEST, TOO_MANY_PACKETS)
            self._end(TOO_MANY_PACKETS, now, out, flush=False)
            return
        try:
            packets = decode_payload(body.decode("utf-8"))
        except (UnicodeDecodeError, ProtocolError):
            out.response = error_response(ErrorCode.BAD_REQUEST)
            self._end(PARSE_ERROR, now, out, flush=False)
            return
        out.response = _POST_OK
        for packet in packets:
            if self.state != _OPEN:
                break
            self._on_packet(packet, now, out)
        self._flush(out)

    def _attach_websocket(self, now: float) -> None:
        self._step_upgrade(_PROBING)
        self._upgrade_by = now + self.config.upgrade_timeout
        self._reschedule()

    # -- protocol rules -----------------------------------------------------------

    def _on_packet(self, packet: Packet, now: float, out: Output) -> None:
        kind = packet.type
        if kind is PacketType.MESSAGE:
            self._on_message(packet.data, now, out)
        elif kind is PacketType.PONG:
            # An unsolicited pong proves nothing new and moves no timer.
            if self._awaiting_pong:
                self._awaiting_pong = False
                self._heartbeat_at = now + self.config.ping_interval
                self._reschedule()
        elif kind is PacketType.NOOP:
            pass
        elif kind is PacketType.CLOSE:
            if self._poll_held:
                # The client closed: its held GET ends with a noop, as the
                # reference answers it (a close packet would tell it nothing).
                self._poll_held = False
                out.poll = poll_response(_NOOP)
            self._end(TRANSPORT_CLOSE, now, out, flush=False)
        elif kind is PacketType.PING:
            # v4: only the server pings (reference: "invalid heartbeat direction").
            self._end(TRANSPORT_ERROR, now, out, flush=False)
        else:
            self._end(PARSE_ERROR, now, out, flush=False)

    def _on_probe_packet(self, packet: Packet, now: float, out: Output) -> None:
        if packet.type is PacketType.PING and packet.data == "probe":
            out.frames.append(_PONG_PROBE)
            self._step_upgrade(_UPGRADING)
            if self._poll_held and not self._buffer:
                # Release the held GET so the client can pause polling.
                self._poll_held = False
                out.poll = poll_response(_NOOP)
        elif packet.type is PacketType.UPGRADE:
            self._step_upgrade(_NO_UPGRADE)
            self._upgrade_by = _NEVER
            self.websocket = True
            if self._poll_held:
                self._poll_held = False
                out.poll = poll_response(_NOOP)
            if self._buffer:
                out.frames.extend(self._buffer)
                self._buffer = None
                self._buffered = 0
            self._reschedule()
        else:
            self._abort_upgrade(out)

    def _abort_upgrade(self, out: Output) -> None:
        out.close_websocket = True
        self._step_upgrade(_NO_UPGRADE)
        self._upgrade_by = _NEVER
        self._reschedule()

    def _on_message(self, data: str | bytes, now: float, out: Output) -> None:
        """A message packet arrived; the layer above replaces this."""
        out.events.append(Message(data))

    def _start_upper(self, now: float) -> None:
        """The layer above's own state, set when the session starts (before its
        first deadline is scheduled)."""

    def _tick_upper(self, now: float, out: Output) -> None:
        """Timers of the layer above (run by :meth:`tick`)."""

    def _upper_deadline(self) -> float:
        return _NEVER

    def _charge(self, packets: int, now: float, pong: bool = False) -> bool:
        """Take ``packets`` from the budget; False (nothing taken) when it is short.

        A token bucket of ``burst`` filled at ``rate`` per second, kept as the
        time it would be full again (the generic cell rate algorithm): one slot.
        The pong to our own ping is free (its rate is ours: 1 / ping_interval,
        which operators may set high); any other pong is charged.
        """
        if pong and self._awaiting_pong:
            return True
        config = self.config
        if self.trusted:
            rate, burst = config.trusted_packet_rate, config.trusted_packet_burst
        else:
            rate, burst = config.packet_rate, config.packet_burst
        if rate <= 0:
            return True
        due = max(self._budget_at, now) + packets / rate
        if due - now > burst / rate:
            return False
        self._budget_at = due
        return True

    # -- buffers and closing ------------------------------------------------------

    def _queue(self, packet: bytes, now: float, out: Output) -> None:
        if self.websocket:
            out.frames.append(packet)
            return
        buffered = self._buffered + len(packet)
        if buffered > self.config.max_buffer_bytes:
            self._end(SEND_BUFFER_FULL, now, out, flush=False)
            return
        if self._buffer is None:
            self._buffer = [packet]
        else:
            self._buffer.append(packet)
        self._buffered = buffered

    def _flush(self, out: Output) -> None:
        if self._poll_held and self._buffer:
            self._poll_held = False
            out.poll = poll_response(self._take_buffer())

    def _take_buffer(self) -> bytes:
        buffer = self._buffer
        self._buffer = None
        self._buffered = 0
        if not buffer:
            return _NOOP
        if len(buffer) == 1:
            return buffer[0]
        return b"\x1e".join(buffer)

    def _end(self, reason: str, now: float, out: Output, *, flush: bool) -> None:
        """Close the session; ``flush`` delivers what is queued before the close."""
        if self.state != _OPEN:
            return
        out.events.append(Closed(reason))
        if self.websocket or self._upgrade:
            out.close_websocket = True
            self._step_upgrade(_NO_UPGRADE)
        if self.websocket:
            self._finish()
            return
        if not flush:
            self._buffer = None
            self._buffered = 0
            if self._poll_held:
                self._poll_held = False
                out.poll = poll_response(_CLOSE)
            # A failed session is forgotten at once, as in the reference: the
            # client's next request gets "Session ID unknown" and it reconnects.
            self._finish()
            return
        # What is queued goes out first and the close packet in a later answer,
        # as the reference does: socket.io-client handles a payload's packets on
        # the next tick but a close packet at once, so in one payload the close
        # would overtake a DISCONNECT queued before it.
        self._enter(_CLOSING)
        self._awaiting_pong = False
        self._heartbeat_at = _NEVER
        self._upgrade_by = _NEVER
        config = self.config
        linger = config.close_timeout if self.trusted else config.untrusted_close_timeout
        self._close_by = now + min(config.close_timeout, linger)
        self._reschedule()
        if self._poll_held:
            self._poll_held = False
            out.poll = self._closing_poll()

    def _closing_poll(self) -> HttpResponse:
        """Answer a GET of a closing session: what is queued, else the close packet."""
        if self._buffer:
            return poll_response(self._take_buffer())
        self._finish()
        return poll_response(_CLOSE)

    def _enter(self, state: State) -> None:
        if (self.state, state) not in STATE_CHANGES:
            raise RuntimeError(f"Engine.IO session {self.state.name} -> {state.name}")
        self.state = state

    def _step_upgrade(self, upgrade: Upgrade) -> None:
        if upgrade is not self._upgrade and (self._upgrade, upgrade) not in UPGRADE_CHANGES:
            raise RuntimeError(f"Engine.IO upgrade {self._upgrade.name} -> {upgrade.name}")
        self._upgrade = upgrade

    def _finish(self) -> None:
        if self.state is _CLOSED:
            return
        self._enter(_CLOSED)
        self._buffer = None
        self._buffered = 0
        self._poll_held = False
        self.wake_at = _NEVER
        if self._table.get(self.sid) is self:
            del self._table[self.sid]

    def _reschedule(self) -> None:
        before = self.wake_at
        if self.state == _OPEN:
            self.wake_at = min(self._heartbeat_at, self._upgrade_by, self._upper_deadline())
        elif self.state == _CLOSING:
            self.wake_at = self._close_by
        else:
            self.wake_at = _NEVER
        if self.wake_at != before:
            self._table.moved[self] = None


S = TypeVar("S", bound=EngineSession)


#: Random bytes per id: 15, 20 URL-safe characters (the reference's base64id size).
SID_BYTES: Final = 15
#: Ids cut from one ``os.urandom`` read: a read per id is a system call and a
#: base64 encoding each, on the path of every new session.
SIDS_PER_READ: Final = 256


class _SidPool:
    """Session ids (and Socket.IO socket ids) cut from one large read of the OS's
    random source; a forked child starts from a fresh read, never its parent's."""

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids: list[str] = []

    def take(self) -> str:
        ids = self._ids
        if not ids:
            text = base64.urlsafe_b64encode(os.urandom(SID_BYTES * SIDS_PER_READ)).decode()
            step = SID_BYTES * 4 // 3
            ids.extend([text[i : i + step] for i in range(0, len(text), step)])
        return ids.pop()

    def clear(self) -> None:
        self._ids.clear()


_SIDS = _SidPool()
os.register_at_fork(after_in_child=_SIDS.clear)


#: A fresh random id: 15 bytes from ``os.urandom``, 20 URL-safe characters (the
#: pool's own method: one call less on the path of every new session).
new_sid: Final[Callable[[], str]] = _SIDS.take


def parse_query(query: str | bytes) -> dict[str, str]:
    """Parse the query string of a ``/socket.io/`` request, bounded in size."""
    if len(query) > MAX_QUERY_BYTES:
        raise ProtocolError("query string too long")
    if isinstance(query, bytes):
        try:
            query = query.decode("ascii")
        except UnicodeDecodeError:
            raise ProtocolError("query string is not ASCII") from None
    try:
        return dict(query_pairs(query, MAX_QUERY_FIELDS))
    except ValueError:
        raise ProtocolError("malformed query string") from None


#: A request's query string, or the fields :func:`parse_query` made of it (a
#: server that looked at the query first need not parse it twice).
Query = str | bytes | dict[str, str]


class _Refused(Exception):
    """A request refused with an Engine.IO error; the caller frames it as an HTTP
    answer or a refused WebSocket handshake."""

    def __init__(self, code: ErrorCode, message: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.message = message


def _check_version(params: dict[str, str]) -> None:
    if params.get("EIO") != "4":
        raise _Refused(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION)


class EngineServer(Generic[S]):
    """The table of sessions behind one ``/socket.io/`` path, and its entry points.

    The server hands every HTTP request and WebSocket handshake on the path to
    :meth:`handle_http` / :meth:`handle_websocket`, later calls go to the session
    returned, and :meth:`tick` runs the timers of every session that is due.
    """

    def __init__(
        self,
        session_class: type[S],
        config: EngineConfig | None = None,
        *,
        new_sid: Callable[[], str] = new_sid,
    ) -> None:
        self.config = config or EngineConfig()
        #: Sessions by sid (values are of ``session_class``), with their deadlines.
        self.sessions = SessionTable()
        self._session_class = session_class
        self._new_sid = new_sid
        #: The ``transport`` values this server takes (the config is frozen).
        self._allowed = self._transports()
        self._websocket_allowed = TRANSPORT_WEBSOCKET in self._allowed

    def handle_http(
        self, method: str, query: Query, body: bytes, now: float
    ) -> tuple[S | None, Output]:
        """A GET or POST on the path; ``body`` is the whole request body."""
        out = Output()
        try:
            return self._http(method, query, body, now, out), out
        except _Refused as refused:
            out.response = error_response(refused.code, refused.message)
            return None, out

    def handle_websocket(self, query: Query, now: float) -> tuple[S | None, Output]:
        """A WebSocket handshake on the path, before answering it.

        With ``response`` set, refuse the handshake with it. With no session but
        ``close_websocket``, accept it and close the socket at once. Otherwise
        accept, send ``frames``, and route the socket's messages and close to
        the session.
        """
        out = Output()
        if (
            type(query) is dict
            and query.get("transport") == TRANSPORT_WEBSOCKET
            and self._websocket_allowed
            and "sid" not in query
            and query.get("EIO") == "4"
            and len(self.sessions) < self.config.max_sessions
        ):
            # A new WebSocket-only session (most clients): _websocket's checks,
            # in the order they pass, without its calls.
            session = self._create(now, websocket=True)
            out.frames.append(session.open_packet())
            return session, out
        try:
            return self._websocket(query, now, out), out
        except _Refused as refused:
            out.response = websocket_error_response(refused.code, refused.message)
            return None, out

    def _http(self, method: str, query: Query, body: bytes, now: float, out: Output) -> S:
        params = self._params(query)
        if "j" in params:  # JSONP polling (protocol v3 browsers only)
            raise _Refused(ErrorCode.BAD_REQUEST)
        transport = params["transport"]
        sid = params.get("sid")
        if sid is not None:
            session = self._session(sid)
            if transport != TRANSPORT_POLLING or session.websocket:
                raise _Refused(ErrorCode.BAD_REQUEST)
            _check_version(params)
            if method == "GET":
                session._get(now, out)
            elif method == "POST":
                session._post(body, now, out)
            else:
                out.response = error_response(ErrorCode.BAD_REQUEST)
            return session
        if method != "GET":
            raise _Refused(ErrorCode.BAD_HANDSHAKE_METHOD)
        if transport != TRANSPORT_POLLING:
            raise _Refused(ErrorCode.BAD_REQUEST)
        _check_version(params)
        session = self._open(now, websocket=False)
        out.response = poll_response(session.open_packet())
        return session

    def _websocket(self, query: Query, now: float, out: Output) -> S | None:
        params = self._params(query)
        if params["transport"] != TRANSPORT_WEBSOCKET:
            raise _Refused(ErrorCode.BAD_REQUEST)
        _check_version(params)
        sid = params.get("sid")
        if sid is not None:
            session = self._session(sid)
            if not self.config.allow_upgrades:
                raise _Refused(ErrorCode.BAD_REQUEST)
            if session.websocket or session._upgrade or session.state != _OPEN:
                # Already upgraded, already upgrading, or closing: as the
                # reference does, accept the handshake, then close that socket.
                out.close_websocket = True
                return None
            session._attach_websocket(now)
            return session
        session = self._open(now, websocket=True)
        out.frames.append(session.open_packet())
        return session

    def _params(self, query: Query) -> dict[str, str]:
        """The query, with a ``transport`` this server allows."""
        if isinstance(query, dict):
            params = query
        else:
            try:
                params = parse_query(query)
            except ProtocolError:
                raise _Refused(ErrorCode.BAD_REQUEST) from None
        if params.get("transport") not in self._allowed:
            raise _Refused(ErrorCode.UNKNOWN_TRANSPORT)
        return params

    def _session(self, sid: str) -> S:
        session: S | None = self.sessions.get(sid)
        if session is None or session.state == _CLOSED:
            raise _Refused(ErrorCode.UNKNOWN_SID)
        return session

    def _open(self, now: float, *, websocket: bool) -> S:
        """A new session (the caller checked the protocol), if there is room."""
        if len(self.sessions) >= self.config.max_sessions:
            raise _Refused(ErrorCode.FORBIDDEN, "Server full")
        return self._create(now, websocket=websocket)

    def tick(self, now: float) -> list[tuple[S, Output]]:
        """Run every due session's timers; call it at :meth:`next_wake` (or often)."""
        results: list[tuple[S, Output]] = []
        for session in self.sessions.due(now):
            out = session.tick(now)
            if out:
                results.append((session, out))  # type: ignore[arg-type]
        return results

    def next_wake(self) -> float:
        """When :meth:`tick` next has work (monotonic seconds; ``inf``: never)."""
        return self.sessions.next_wake()

    def end_all(self, reason: str, now: float) -> list[tuple[S, Output]]:
        """Close every session (shutdown), delivering what is queued."""
        sessions: list[S] = list(self.sessions.values())
        return [(s, s.end(reason, now)) for s in sessions]

    def _transports(self) -> tuple[str, ...]:
        allowed: tuple[str, ...] = ()
        if self.config.allow_polling:
            allowed += (TRANSPORT_POLLING,)
        if self.config.allow_websocket:
            allowed += (TRANSPORT_WEBSOCKET,)
        return allowed

    def _create(self, now: float, *, websocket: bool) -> S:
        sid = self._new_sid()
        while sid in self.sessions:
            sid = self._new_sid()
        session = self._session_class(sid, self.config, self.sessions, now, websocket)
        self.sessions[sid] = session
        return session
