"""Invariants over random input: only ProtocolError escapes the parsers, encodings
round-trip, and no sequence of calls breaks a session's bounds."""

from __future__ import annotations

import contextlib
import itertools
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.push.sio.engineio import (
    Closed,
    EngineConfig,
    Packet,
    PacketType,
    ProtocolError,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
)
from tidings.push.sio.session import SocketIOServer
from tidings.push.sio.socketio import PacketType as SioType
from tidings.push.sio.socketio import SioPacket
from tidings.push.sio.socketio import decode_packet as sio_decode
from tidings.push.sio.socketio import encode_packet as sio_encode

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@given(st.text(max_size=200))
def test_engine_packet_decoding_raises_only_protocol_errors(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode_packet(text)


@given(
    st.text(alphabet=st.sampled_from("0123456b4\x1eAQ=probe"), max_size=40) | st.text(max_size=100)
)
def test_engine_payload_decoding_raises_only_protocol_errors(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        decode_payload(text)


@given(st.text(max_size=200))
def test_socket_io_decoding_raises_only_protocol_errors(text: str) -> None:
    with contextlib.suppress(ProtocolError):
        sio_decode(text)


@st.composite
def packet_shaped_text(draw: st.DrawFn) -> str:
    """Text with the packet's parts in place, each of them possibly wrong."""
    parts = [draw(st.sampled_from("0123456789x-/ "))]
    if draw(st.booleans()):
        parts.append(draw(st.text(alphabet="0123456789-x", max_size=4)) + "-")
    if draw(st.booleans()):
        parts.append("/" + draw(st.text(max_size=10)) + draw(st.sampled_from([",", ""])))
    if draw(st.booleans()):
        parts.append(draw(st.text(alphabet="0123456789\u0661", max_size=12)))
    if draw(st.booleans()):
        value = draw(json_values)
        encoded = json.dumps(value)
        if draw(st.booleans()):
            encoded = encoded[: draw(st.integers(0, len(encoded)))]
        parts.append(encoded)
    return "".join(parts)


@settings(max_examples=300)
@given(packet_shaped_text())
def test_structured_but_wrong_packets_raise_only_protocol_errors(text: str) -> None:
    try:
        packet = sio_decode(text)
    except ProtocolError:
        return
    # Whatever decodes is well formed: it encodes back to an equal packet.
    if packet.type not in (SioType.BINARY_EVENT, SioType.BINARY_ACK):
        again = sio_decode(sio_encode(packet.type, packet.data, nsp=packet.nsp, ack_id=packet.id))
        assert again == packet


namespaces = st.just("/") | st.text(
    alphabet=st.characters(blacklist_characters=",", blacklist_categories=["Cs"]), max_size=12
).map(lambda s: "/" + s)
ack_ids = st.integers(min_value=0, max_value=999_999_999)
event_names = st.text(max_size=10).filter(
    lambda s: (
        s
        not in {
            "connect",
            "connect_error",
            "disconnect",
            "disconnecting",
            "newListener",
            "removeListener",
        }
    )
)


@st.composite
def valid_packets(draw: st.DrawFn) -> SioPacket:
    kind = draw(
        st.sampled_from(
            [SioType.CONNECT, SioType.DISCONNECT, SioType.EVENT, SioType.ACK, SioType.CONNECT_ERROR]
        )
    )
    nsp = draw(namespaces)
    objects = st.dictionaries(st.text(max_size=8), json_values, max_size=4)
    if kind is SioType.CONNECT:
        return SioPacket(kind, nsp, None, draw(st.none() | objects))
    if kind is SioType.DISCONNECT:
        return SioPacket(kind, nsp)
    if kind is SioType.EVENT:
        args = [draw(event_names), *draw(st.lists(json_values, max_size=3))]
        return SioPacket(kind, nsp, draw(st.none() | ack_ids), args)
    if kind is SioType.ACK:
        return SioPacket(kind, nsp, draw(ack_ids), draw(st.lists(json_values, max_size=3)))
    return SioPacket(kind, nsp, None, draw(st.text(max_size=10) | objects))


@given(valid_packets())
def test_socket_io_packets_round_trip(packet: SioPacket) -> None:
    wire = sio_encode(packet.type, packet.data, nsp=packet.nsp, ack_id=packet.id)
    assert sio_decode(wire) == packet


engine_packets = st.builds(
    Packet,
    st.sampled_from(list(PacketType)),
    st.text(
        alphabet=st.characters(blacklist_characters="\x1e", blacklist_categories=["Cs"]),
        max_size=20,
    ),
) | st.builds(lambda b: Packet(PacketType.MESSAGE, b), st.binary(max_size=20))


@given(st.lists(engine_packets, min_size=1, max_size=6))
def test_engine_payloads_round_trip(packets: list[Packet]) -> None:
    assert decode_payload(encode_payload(packets)) == packets
    for packet in packets:
        assert decode_packet(encode_packet(packet)) == packet


# -- sessions under random calls ----------------------------------------------------------

frames = st.sampled_from(
    [
        "2probe",
        "5",
        "3",
        "40",
        '40{"token":"t"}',
        '42["subscribe",{"token":"t"}]',
        "41",
        "1",
        "6",
        "x",
    ]
) | st.text(max_size=30)
operations = st.one_of(
    st.tuples(st.just("get")),
    st.tuples(st.just("post"), st.binary(max_size=60) | frames.map(str.encode)),
    st.tuples(st.just("upgrade")),
    st.tuples(st.just("ws"), frames),
    st.tuples(st.just("ws_closed")),
    st.tuples(st.just("poll_aborted")),
    st.tuples(st.just("send"), st.binary(min_size=1, max_size=40)),
    st.tuples(st.just("tick"), st.floats(min_value=0, max_value=40)),
    st.tuples(st.just("close")),
)


@settings(max_examples=200, deadline=None)
@given(st.booleans(), st.lists(operations, max_size=30))
def test_no_sequence_of_calls_breaks_a_session(polling: bool, ops: list[tuple[Any, ...]]) -> None:
    config = EngineConfig(ping_interval=5, ping_timeout=3, max_buffer_bytes=100, max_payload=50)
    ids = (f"s{i}" for i in itertools.count())
    server = SocketIOServer(config, new_sid=lambda: next(ids))
    if polling:
        session, _ = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)
    else:
        session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    query = f"EIO=4&transport=polling&sid={session.sid}"
    now, held, closes = 0.0, False, 0
    for op in ops:
        if op[0] == "get":
            _, out = server.handle_http("GET", query, b"", now)
        elif op[0] == "post":
            _, out = server.handle_http("POST", query, op[1], now)
        elif op[0] == "upgrade":
            _, out = server.handle_websocket(f"EIO=4&transport=websocket&sid={session.sid}", now)
        elif op[0] == "ws":
            out = session.receive_ws(op[1], now)
        elif op[0] == "ws_closed":
            out = session.ws_closed(now)
        elif op[0] == "poll_aborted":
            out = session.poll_aborted(now)
            held = False
        elif op[0] == "send":
            out = session.send_packet(op[1], now)
        elif op[0] == "tick":
            now += op[1]
            outs = [o for _, o in server.tick(now)]
            out = outs[0] if outs else session.tick(now)
        else:
            out = session.end("bye", now)
        # At most one GET is held, and each answer goes to one that was.
        if out.poll is not None:
            assert held
            held = False
        if out.hold:
            assert not held
            held = True
        closes += sum(isinstance(e, Closed) for e in out.events)
        assert session.buffered_bytes <= config.max_buffer_bytes
        assert closes <= 1
        assert (session.sid in server.sessions) or session.closed
        if closes:
            assert session.closed
