"""A Socket.IO v5 session over Engine.IO v4, speaking the tidings push messages.

Each tidings message travels as an EVENT on ``/`` named by its ``type``, with the
message object as its one argument; the token may also come in the CONNECT auth
payload. Sans-I/O like the layers below: the server moves the bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import orjson

from tidings.protocol.errors import BadMessage
from tidings.protocol.push import MAX_CLIENT_MESSAGE_BYTES, ClientType, client_message_fields
from tidings.push.sio.engineio import (
    PARSE_ERROR,
    EngineConfig,
    EngineServer,
    EngineSession,
    Output,
    ProtocolError,
    new_sid,
)
from tidings.push.sio.socketio import (
    DEFAULT_NAMESPACE,
    PacketType,
    SioPacket,
    decode_packet,
    encode_message,
    encode_packet,
)

# Close reasons added by this layer (see engineio for the transport's own).
CLIENT_DISCONNECT: Final = "client namespace disconnect"
CONNECT_TIMEOUT: Final = "connect timeout"
INVALID_STATE: Final = "invalid state"
BINARY_REFUSED: Final = "binary packets refused"

_INVALID_NAMESPACE: Final = {"message": "Invalid namespace"}
_DISCONNECT: Final = b"41"
_NEVER: Final = float("inf")
_SUBSCRIBE: Final = ClientType.SUBSCRIBE.value


@dataclass(frozen=True, slots=True)
class Connected:
    """The client joined ``/`` (before any :class:`Subscribe` from its auth payload)."""


_CONNECTED: Final = Connected()


# Subscribe and Refresh are made for every client: plain slotted classes (a
# frozen dataclass's __init__ sets each field through object.__setattr__).
@dataclass(slots=True)
class Subscribe:
    """The client subscribed (an event, or the token in CONNECT's auth payload)."""

    token: str
    #: Project id -> the version the client holds.
    projects: dict[int, int]


@dataclass(slots=True)
class Refresh:
    """The client sent a fresh token (and possibly more projects)."""

    token: str
    projects: dict[int, int]


@dataclass(frozen=True, slots=True)
class InvalidEvent:
    """A well-framed event that is not a valid tidings message; the server decides
    what to answer (as on ``/ws``: an ``error`` message, perhaps a close)."""

    error: BadMessage


def _token_and_projects(body: dict[str, object], kind: str) -> tuple[str, dict[int, int]]:
    """A Socket.IO message object judged as the same message on ``/ws`` would be
    (one parser, one size limit on its JSON). Its encoding refuses nesting past
    255 levels, which the decoder took: that is a bad message too, not an error
    of the server's. ``kind`` is the message type's name, a plain string."""
    message = {**body, "type": kind}
    try:
        encoded = orjson.dumps(message)
    except orjson.JSONEncodeError:
        raise BadMessage("message nested too deeply") from None
    if len(encoded) > MAX_CLIENT_MESSAGE_BYTES:
        raise BadMessage("message too large")
    _, token, projects = client_message_fields(message)
    return token, projects


class SioSession(EngineSession):
    """One client: an Engine.IO session with the Socket.IO namespace ``/`` on top.

    A subclass rather than a wrapper so that a connection is one small object.
    """

    __slots__ = ("_connected", "_handshake_by")

    def _start_upper(self, now: float) -> None:
        self._connected = False
        #: The connect timeout, counted from the session's start and kept after
        #: CONNECT: a subclass that also wants a token by then says so in
        #: :meth:`_handshake_expired` (an abandoned handshake must cost little).
        self._handshake_by = now + self.config.connect_timeout

    @property
    def connected(self) -> bool:
        """Between the client's CONNECT to ``/`` and the end of the session."""
        return self._connected and not self.closed

    def send_message(self, message: bytes, now: float) -> Output:
        """Send one tidings server message (bytes of a ``push.py`` JSON object).

        To fan one message out, encode it once with :func:`encode_message` and
        pass the result to :meth:`send_packet` of every session instead.
        """
        return self.send_packet(encode_message(message), now)

    def end(self, reason: str, now: float) -> Output:
        """Disconnect ``/`` (the client sees "io server disconnect") and close."""
        out = Output()
        if self.connected:
            self._queue(_DISCONNECT, now, out)
        self._connected = False
        self._end(reason, now, out, flush=True)
        return out

    # -- the Socket.IO layer ------------------------------------------------------

    def _on_message(self, data: str | bytes, now: float, out: Output) -> None:
        if not isinstance(data, str):
            # Attachments of a binary event, or a stray binary frame.
            self._end(BINARY_REFUSED, now, out, flush=False)
            return
        try:
            packet = decode_packet(data)
        except ProtocolError:
            self._end(PARSE_ERROR, now, out, flush=False)
            return
        kind = packet.type
        if kind is PacketType.CONNECT:
            self._on_connect(packet, now, out)
        elif packet.nsp != DEFAULT_NAMESPACE or not self.connected:
            # The reference closes on a packet for a namespace not joined.
            self._end(INVALID_STATE, now, out, flush=False)
        elif kind is PacketType.EVENT:
            self._on_event(packet, now, out)
        elif kind is PacketType.ACK:
            pass  # this server never asks for acks: nothing to match
        elif kind is PacketType.DISCONNECT:
            # The client closes its transport next; let that close be orderly.
            self._connected = False
            self._end(CLIENT_DISCONNECT, now, out, flush=True)
        elif kind is PacketType.CONNECT_ERROR:
            self._end(INVALID_STATE, now, out, flush=False)
        else:
            self._end(BINARY_REFUSED, now, out, flush=False)

    def _on_connect(self, packet: SioPacket, now: float, out: Output) -> None:
        if packet.nsp != DEFAULT_NAMESPACE:
            error = encode_packet(PacketType.CONNECT_ERROR, _INVALID_NAMESPACE, nsp=packet.nsp)
            self._queue_sio(error, now, out)
            return
        if self._connected:  # (the session is open: it is reading a packet)
            self._end(INVALID_STATE, now, out, flush=False)
            return
        auth = packet.data
        subscribe: Subscribe | None = None
        if auth and "token" in auth:
            try:
                token, projects = _token_and_projects(auth, _SUBSCRIBE)
            except BadMessage as exc:
                # Refused like a failed middleware: connect_error on the client.
                error = encode_packet(PacketType.CONNECT_ERROR, {"message": exc.detail})
                self._queue_sio(error, now, out)
                return
            subscribe = Subscribe(token, projects)
        self._connected = True
        # "4" + encode_packet(CONNECT, {"sid": ...}) written out: a sid is
        # URL-safe base64, nothing in it to escape.
        self._queue(b'40{"sid":"' + new_sid().encode() + b'"}', now, out)
        out.events.append(_CONNECTED)
        if subscribe is not None:
            out.events.append(subscribe)

    def _on_event(self, packet: SioPacket, now: float, out: Output) -> None:
        args = packet.data
        name = args[0]
        try:
            kind = ClientType(name)
        except ValueError:
            out.events.append(InvalidEvent(BadMessage(f"unknown event {name!r}")))
            return
        if len(args) != 2 or not isinstance(args[1], dict):
            out.events.append(InvalidEvent(BadMessage("an event carries one message object")))
            return
        body = args[1]
        if body.get("type", kind.value) != kind.value:
            out.events.append(InvalidEvent(BadMessage("'type' differs from the event name")))
            return
        try:
            token, projects = _token_and_projects(body, name)
        except BadMessage as exc:
            out.events.append(InvalidEvent(exc))
            return
        if packet.id is not None:
            # The ack means "received"; the answer comes as a subscribed/error event.
            ack = encode_packet(PacketType.ACK, [], ack_id=packet.id)
            self._queue_sio(ack, now, out)
        if kind is ClientType.SUBSCRIBE:
            out.events.append(Subscribe(token, projects))
        else:
            out.events.append(Refresh(token, projects))

    def _queue_sio(self, packet: str, now: float, out: Output) -> None:
        # An Engine.IO message packet ("4") carrying one Socket.IO packet.
        self._queue(b"4" + packet.encode(), now, out)

    def _tick_upper(self, now: float, out: Output) -> None:
        if now >= self._handshake_by:
            self._handshake_by = _NEVER
            self._handshake_expired(now, out)

    def _handshake_expired(self, now: float, out: Output) -> None:
        """``_handshake_by`` passed: without CONNECT, the session ends (after
        CONNECT this layer has nothing more to wait for)."""
        if not self._connected:
            self._end(CONNECT_TIMEOUT, now, out, flush=True)

    def _upper_deadline(self) -> float:
        return self._handshake_by


class SocketIOServer(EngineServer[SioSession]):
    """The ``/socket.io/`` endpoint: Engine.IO sessions that speak tidings over Socket.IO."""

    def __init__(
        self, config: EngineConfig | None = None, *, new_sid: Callable[[], str] | None = None
    ) -> None:
        if new_sid is None:
            super().__init__(SioSession, config)
        else:
            super().__init__(SioSession, config, new_sid=new_sid)
