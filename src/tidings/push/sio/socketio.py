"""Socket.IO v5 packets: strict, bounded parsing and encoding, with no I/O.

``<type>[<#attachments>-][<nsp>,][<ack id>][JSON]`` as text. Binary packets are
recognised only so that they can be refused: tidings clients send JSON.
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final, NamedTuple

import orjson

from tidings.protocol.push import ServerType
from tidings.push.sio.engineio import ProtocolError

#: The Socket.IO protocol revision spoken here (socket.io-client 3.x and 4.x).
PROTOCOL: Final = 5

DEFAULT_NAMESPACE: Final = "/"

#: Longest namespace accepted (the path of ``io("http://host/<nsp>")``).
MAX_NAMESPACE_LENGTH: Final = 128

#: Ack ids are the client's counter: 9 digits outlast any connection.
MAX_ACK_ID_DIGITS: Final = 9

#: The reference parser's cap on binary attachments (socket.io-parser maxAttachments).
MAX_ATTACHMENTS: Final = 10

#: Event names with a meaning of their own in the libraries, never sent as events.
RESERVED_EVENTS: Final = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class PacketType(IntEnum):
    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


class SioPacket(NamedTuple):
    type: PacketType
    nsp: str = DEFAULT_NAMESPACE
    #: The ack id, when the sender wants (or gives) an acknowledgement.
    id: int | None = None
    #: The decoded JSON payload; ``None`` when absent (JSON ``null`` is never valid).
    data: Any = None
    #: Number of binary attachments announced (binary types only).
    attachments: int = 0


#: Packet types by their digit (an index, not an enum call: on every packet's path).
_TYPES: Final = tuple(PacketType)
_DIGITS: Final = frozenset("0123456789")
_JSON_SPACE: Final = frozenset(" \t\r\n")
#: Types whose packets may have JSON right after the type digit (not the binary
#: ones: an attachments count comes first), and how that JSON may start.
_PLAIN_TYPES: Final = {str(int(t)): t for t in PacketType if t < PacketType.BINARY_EVENT}
_JSON_START: Final = frozenset("{[")


def _is_json_object(value: object) -> bool:
    return isinstance(value, dict)


def _valid_event_args(value: object) -> bool:
    if not isinstance(value, list) or not value:
        return False
    name = value[0]
    if isinstance(name, str):
        return name not in RESERVED_EVENTS
    # The reference also allows a number as the event name; JSON true is not one.
    return isinstance(name, int | float) and not isinstance(name, bool)


def decode_packet(text: str) -> SioPacket:
    """Decode one text packet; raise :class:`ProtocolError` on anything malformed."""
    kind = _PLAIN_TYPES.get(text[:1])
    if kind is not None and text[1:2] in _JSON_START and text[-1] not in _JSON_SPACE:
        # The common shape (CONNECT with auth, an EVENT): no attachments count,
        # namespace or ack id, JSON from the second character, checked as below.
        try:
            payload = orjson.loads(text[1:])
        except orjson.JSONDecodeError:
            raise ProtocolError("Socket.IO payload is not JSON") from None
        if kind is PacketType.CONNECT:  # _check_payload's rule for it, inline
            if not isinstance(payload, dict):
                raise ProtocolError("invalid payload for a CONNECT packet")
        else:
            _check_payload(kind, None, payload)
        return SioPacket(kind, DEFAULT_NAMESPACE, None, payload)
    if not text:
        raise ProtocolError("empty Socket.IO packet")
    head = text[0]
    if head not in _DIGITS or head > "6":
        raise ProtocolError(f"unknown Socket.IO packet type {head!r}")
    kind = _TYPES[ord(head) - 48]
    i, n = 1, len(text)
    attachments = 0
    if kind is PacketType.BINARY_EVENT or kind is PacketType.BINARY_ACK:
        dash = text.find("-", 1, 1 + 3)
        count = text[1:dash]
        if dash < 0 or not count or not set(count) <= _DIGITS:
            raise ProtocolError("illegal attachments count")
        attachments = int(count)
        if not 1 <= attachments <= MAX_ATTACHMENTS:
            raise ProtocolError("illegal attachments count")
        i = dash + 1
    nsp = DEFAULT_NAMESPACE
    if i < n and text[i] == "/":
        comma = text.find(",", i, i + MAX_NAMESPACE_LENGTH + 1)
        if comma < 0:
            # As in the reference, a namespace with no comma runs to the end.
            if n - i > MAX_NAMESPACE_LENGTH:
                raise ProtocolError("namespace too long")
            nsp, i = text[i:], n
        else:
            nsp, i = text[i:comma], comma + 1
    ack_id: int | None = None
    start = i
    while i < n and text[i] in _DIGITS:
        i += 1
        if i - start > MAX_ACK_ID_DIGITS:
            raise ProtocolError("ack id too long")
    if i > start:
        ack_id = int(text[start:i])
    data: Any = None
    if i < n:
        if text[i] in _JSON_SPACE or text[-1] in _JSON_SPACE:
            raise ProtocolError("Socket.IO payload has stray whitespace")
        try:
            data = orjson.loads(text[i:])
        except orjson.JSONDecodeError:
            raise ProtocolError("Socket.IO payload is not JSON") from None
        if data is None:
            raise ProtocolError("Socket.IO payload may not be null")
    _check_payload(kind, ack_id, data)
    return SioPacket(kind, nsp, ack_id, data, attachments)


def _check_payload(kind: PacketType, ack_id: int | None, data: Any) -> None:
    if kind is PacketType.CONNECT:
        ok = data is None or _is_json_object(data)
    elif kind is PacketType.DISCONNECT:
        ok = data is None
    elif kind is PacketType.EVENT or kind is PacketType.BINARY_EVENT:
        ok = _valid_event_args(data)
    elif kind is PacketType.ACK or kind is PacketType.BINARY_ACK:
        ok = ack_id is not None and isinstance(data, list)
    else:  # CONNECT_ERROR
        ok = isinstance(data, str) or _is_json_object(data)
    if not ok:
        raise ProtocolError(f"invalid payload for a {kind.name} packet")
    if ack_id is not None and kind not in (
        PacketType.EVENT,
        PacketType.ACK,
        PacketType.BINARY_EVENT,
        PacketType.BINARY_ACK,
    ):
        raise ProtocolError(f"a {kind.name} packet carries no ack id")


def encode_packet(
    kind: PacketType,
    data: Any = None,
    *,
    nsp: str = DEFAULT_NAMESPACE,
    ack_id: int | None = None,
) -> str:
    """Encode one text packet (the server never sends binary ones)."""
    if kind is PacketType.BINARY_EVENT or kind is PacketType.BINARY_ACK:
        raise ValueError("binary packets are not sent by this server")
    if not nsp.startswith("/") or "," in nsp:
        raise ValueError(f"invalid namespace {nsp!r}")
    parts = [str(int(kind))]
    if nsp != DEFAULT_NAMESPACE:
        parts.append(nsp + ",")
    if ack_id is not None:
        parts.append(str(ack_id))
    if data is not None:
        parts.append(orjson.dumps(data).decode())
    return "".join(parts)


_KNOWN_EVENTS: Final = frozenset(t.value for t in ServerType)


def encode_event(event: str, message: bytes) -> bytes:
    """The Engine.IO packet ``42["<event>",<message>]`` on ``/``, ready for any session.

    ``message`` is one JSON object as bytes; it is framed, not re-encoded, so the
    same bytes go to every WebSocket and every polling buffer.
    """
    if b"\x1e" in message:  # would split a long-polling payload; JSON escapes it
        raise ValueError("message contains the record separator")
    return b'42["' + event.encode() + b'",' + message + b"]"


def encode_message(message: bytes) -> bytes:
    """Frame one tidings server message (``push.py``) as the event named by its ``type``."""
    try:
        kind = orjson.loads(message).get("type")
    except (orjson.JSONDecodeError, AttributeError):
        raise ValueError("a server message is a JSON object") from None
    if kind not in _KNOWN_EVENTS:
        raise ValueError(f"unknown server message type {kind!r}")
    return encode_event(kind, message)
