"""Socket.IO v5 packet format: the spec's examples, and many ways to get it wrong."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from tidings.protocol import push
from tidings.protocol.errors import BadMessage
from tidings.push.sio.engineio import ProtocolError
from tidings.push.sio.socketio import (
    PacketType,
    SioPacket,
    decode_packet,
    encode_event,
    encode_message,
    encode_packet,
)

CONNECT, DISCONNECT, EVENT, ACK = (
    PacketType.CONNECT,
    PacketType.DISCONNECT,
    PacketType.EVENT,
    PacketType.ACK,
)
CONNECT_ERROR, BINARY_EVENT, BINARY_ACK = (
    PacketType.CONNECT_ERROR,
    PacketType.BINARY_EVENT,
    PacketType.BINARY_ACK,
)
PLACEHOLDER = {"_placeholder": True, "num": 0}


@pytest.mark.parametrize(
    ("wire", "packet"),
    [
        ("0", SioPacket(CONNECT)),
        ("0/admin,", SioPacket(CONNECT, "/admin")),
        ("0/admin", SioPacket(CONNECT, "/admin")),
        ('0{"token":"123"}', SioPacket(CONNECT, data={"token": "123"})),
        ('0/admin,{"token":"123"}', SioPacket(CONNECT, "/admin", data={"token": "123"})),
        ("1", SioPacket(DISCONNECT)),
        ("1/admin,", SioPacket(DISCONNECT, "/admin")),
        ('2["hello",1]', SioPacket(EVENT, data=["hello", 1])),
        (
            '2/admin,456["project:delete",123]',
            SioPacket(EVENT, "/admin", 456, ["project:delete", 123]),
        ),
        ("212[42]", SioPacket(EVENT, id=12, data=[42])),
        ("3/admin,456[]", SioPacket(ACK, "/admin", 456, [])),
        ('30["ok"]', SioPacket(ACK, id=0, data=["ok"])),
        (
            '4{"message":"Not authorized"}',
            SioPacket(CONNECT_ERROR, data={"message": "Not authorized"}),
        ),
        ('4"legacy"', SioPacket(CONNECT_ERROR, data="legacy")),
        (
            '51-["hello",{"_placeholder":true,"num":0}]',
            SioPacket(BINARY_EVENT, data=["hello", PLACEHOLDER], attachments=1),
        ),
        (
            '61-/admin,456[{"_placeholder":true,"num":0}]',
            SioPacket(BINARY_ACK, "/admin", 456, [PLACEHOLDER], attachments=1),
        ),
    ],
)
def test_packets_from_the_spec_decode(wire: str, packet: SioPacket) -> None:
    assert decode_packet(wire) == packet


@pytest.mark.parametrize(
    "wire",
    [
        "",  # the reference reads this as CONNECT; an empty message is no packet
        "7",
        "9[]",
        "a",
        "-1",
        " 2[]",
        "2",  # an event needs its arguments
        "2[]",
        '2["connect"]',
        '2["disconnect",1]',
        '2["newListener"]',
        "2{}",
        '2"hello"',
        "2[true]",
        "2[null]",
        "2[[1]]",
        "2null",
        '2["a"]x',
        '2["a",',
        '2["a"]\x1e',
        '2\u0661["a"]',  # a non-ASCII digit (ARABIC-INDIC ONE) is not an ack id
        '21234567890["a"]',  # ack id longer than nine digits
        "2/" + "n" * 200 + ',["a"]',  # namespace too long
        "2/" + "n" * 200,
        "0[]",
        '0"token"',
        "0null",
        "0 {}",
        '2["a"] ',
        '2\n["a"]',
        '01{"a":1}',  # CONNECT takes no ack id
        "1{}",
        "1[]",
        "11",
        "3[]",  # an ACK needs its id
        "3{}",
        "31",
        "31{}",
        "4",
        "4[]",
        "4null",
        "41{}",
        "5[]",
        '5-["a"]',
        '50-["a"]',
        '511-["a"]',
        '5x-["a"]',
        '51["a"]',
        '5111111-["a"]',
        "6-[]",
        '2["a\ud800"]',
        "2" + "[" * 2000 + "]" * 2000,
    ],
)
def test_malformed_packets_raise_protocol_error(wire: str) -> None:
    with pytest.raises(ProtocolError):
        decode_packet(wire)


def test_protocol_error_is_a_bad_message() -> None:
    with pytest.raises(BadMessage):
        decode_packet("x")


@pytest.mark.parametrize(
    ("kind", "data", "nsp", "ack_id", "wire"),
    [
        (CONNECT, {"sid": "abc"}, "/", None, '0{"sid":"abc"}'),
        (
            CONNECT_ERROR,
            {"message": "Invalid namespace"},
            "/x",
            None,
            '4/x,{"message":"Invalid namespace"}',
        ),
        (DISCONNECT, None, "/", None, "1"),
        (EVENT, ["poke", {"a": 1}], "/", None, '2["poke",{"a":1}]'),
        (ACK, [], "/", 7, "37[]"),
        (ACK, [], "/admin", 7, "3/admin,7[]"),
    ],
)
def test_packets_encode_and_round_trip(
    kind: PacketType, data: Any, nsp: str, ack_id: int | None, wire: str
) -> None:
    assert encode_packet(kind, data, nsp=nsp, ack_id=ack_id) == wire
    assert decode_packet(wire) == SioPacket(kind, nsp, ack_id, data)


def test_binary_packets_and_bad_namespaces_are_not_encoded() -> None:
    with pytest.raises(ValueError):
        encode_packet(BINARY_EVENT, ["a"])
    with pytest.raises(ValueError):
        encode_packet(EVENT, ["a"], nsp="admin")
    with pytest.raises(ValueError):
        encode_packet(EVENT, ["a"], nsp="/a,b")


def test_a_server_message_becomes_an_event_named_by_its_type_with_the_object_as_argument() -> None:
    message = push.heartbeat(push.ServerState.DEGRADED)
    packet = encode_message(message)
    assert packet == b'42["heartbeat",' + message + b"]"
    decoded = decode_packet(packet[1:].decode())
    assert decoded == SioPacket(EVENT, data=["heartbeat", orjson.loads(message)])


@pytest.mark.parametrize(
    "message",
    [
        push.subscribed({7: 3}, push.ServerState.OK, 25.0),
        push.heartbeat(push.ServerState.OK),
        push.drain(12.5),
        push.token_expiring(1732780600.0),
        push.error("bad_token", "token expired"),
        b'{"type":"poke","project":7,"version":43,"ts":1732780200.5}',
    ],
)
def test_every_server_message_type_maps_to_its_event(message: bytes) -> None:
    name = orjson.loads(message)["type"]
    assert encode_message(message).startswith(b'42["' + name.encode() + b'",')


@pytest.mark.parametrize(
    "message",
    [b"[]", b"not json", b'{"type":"subscribe","token":"x"}', b'{"no":"type"}', b'"poke"'],
)
def test_encode_message_refuses_what_is_not_a_server_message(message: bytes) -> None:
    with pytest.raises(ValueError):
        encode_message(message)


def test_encode_event_refuses_the_record_separator() -> None:
    with pytest.raises(ValueError):
        encode_event("poke", b'{"a":"\x1e"}')
