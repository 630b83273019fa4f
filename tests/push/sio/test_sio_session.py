"""The Socket.IO session speaking tidings messages, over both transports, with a fake clock."""

from __future__ import annotations

import itertools
import json
from typing import Any

import orjson
import pytest

from tidings.protocol import push
from tidings.push.sio.engineio import Closed, EngineConfig, EngineSession, Output
from tidings.push.sio.session import (
    Connected,
    InvalidEvent,
    Refresh,
    SioSession,
    SocketIOServer,
    Subscribe,
)
from tidings.push.sio.socketio import encode_message

TOKEN = "header.claims.signature"
#: 300 nested lists: JSON a client may send, deeper than orjson encodes.
DEEP: list[Any] = []
for _ in range(300):
    DEEP = [DEEP]


def make_server(**config: Any) -> SocketIOServer:
    ids = (f"sid{i}" for i in itertools.count())
    return SocketIOServer(EngineConfig(**config), new_sid=lambda: next(ids))


def ws_session(server: SocketIOServer, now: float = 0.0) -> SioSession:
    session, out = server.handle_websocket("EIO=4&transport=websocket", now)
    assert session is not None and out.frames[0].startswith(b"0{")
    return session


def connected(server: SocketIOServer, auth: dict[str, Any] | None = None) -> SioSession:
    session = ws_session(server)
    packet = "40" + (json.dumps(auth) if auth is not None else "")
    out = session.receive_ws(packet, 0.0)
    assert session.connected, out
    return session


def polling_session(server: SocketIOServer) -> SioSession:
    session, _ = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)
    assert session is not None
    return session


def poll(
    server: SocketIOServer, session: SioSession, method: str = "GET", body: bytes = b""
) -> Output:
    query = f"EIO=4&transport=polling&sid={session.sid}"
    return server.handle_http(method, query, body, 0.0)[1]


def closed_reasons(out: Output) -> list[str]:
    return [e.reason for e in out.events if isinstance(e, Closed)]


def sio_frames(out: Output) -> list[str]:
    """The Socket.IO packets in the frames (the Engine.IO "4" stripped)."""
    assert all(f.startswith(b"4") for f in out.frames)
    return [f[1:].decode() for f in out.frames]


# -- CONNECT ------------------------------------------------------------------------------


def test_connect_without_auth_answers_a_socket_id_of_its_own() -> None:
    server = make_server()
    session = ws_session(server)
    out = session.receive_ws("40", 0.0)
    [answer] = sio_frames(out)
    assert answer.startswith("0{")
    sid = json.loads(answer[1:])["sid"]
    assert isinstance(sid, str) and len(sid) == 20 and sid != session.sid
    assert session.connected
    assert out.events == [Connected()]


def test_a_token_in_the_connect_auth_payload_subscribes() -> None:
    server = make_server()
    session = ws_session(server)
    out = session.receive_ws('40{"token":"' + TOKEN + '","projects":{"7":42,"9":0}}', 0.0)
    assert sio_frames(out)[0].startswith("0{")
    assert out.events == [Connected(), Subscribe(TOKEN, {7: 42, 9: 0})]


def test_an_auth_payload_without_a_token_only_connects() -> None:
    server = make_server()
    session = ws_session(server)
    out = session.receive_ws('40{"client":"web"}', 0.0)
    assert session.connected and out.events == [Connected()]


@pytest.mark.parametrize(
    "auth",
    [
        {"token": ""},
        {"token": 12},
        {"token": TOKEN, "projects": {"7": -1}},
        {"token": TOKEN, "projects": {"x": 1}},
        {"token": TOKEN, "projects": [7]},
        {"token": "x" * 20_000},
        # Decoded (under 1,024 levels) but past the 255 its re-encoding takes.
        {"token": TOKEN, "projects": {}, "deep": DEEP},
    ],
)
def test_a_malformed_auth_payload_gets_connect_error_and_no_connection(
    auth: dict[str, Any],
) -> None:
    server = make_server(connect_timeout=10)
    session = ws_session(server)
    out = session.receive_ws("40" + json.dumps(auth), 0.0)
    [error] = sio_frames(out)
    assert error.startswith("4{")
    assert set(json.loads(error[1:])) == {"message"}
    assert not session.connected and out.events == []
    # The client gives up; if it does not, the connect timeout ends the session.
    [(_, timeout)] = server.tick(10.0)
    assert closed_reasons(timeout) == ["connect timeout"]


def test_another_namespace_gets_invalid_namespace_and_the_session_stays() -> None:
    server = make_server()
    session = ws_session(server)
    out = session.receive_ws("40/admin,", 0.0)
    assert out.frames == [b'44/admin,{"message":"Invalid namespace"}']
    assert not session.closed and not session.connected
    assert session.receive_ws("40", 0.0).frames[0].startswith(b"40{")


def test_no_connect_within_the_connect_timeout_closes_the_session() -> None:
    server = make_server(connect_timeout=10, ping_interval=25)
    session = ws_session(server)
    assert session.wake_at == 10.0
    assert server.tick(9.9) == []
    [(_, out)] = server.tick(10.0)
    assert closed_reasons(out) == ["connect timeout"]
    assert out.close_websocket


def test_a_connected_session_is_not_ended_at_its_connect_deadline() -> None:
    # The deadline stays (a subclass may want a token by then); this layer is content.
    server = make_server(connect_timeout=10, ping_interval=25)
    session = connected(server)
    assert not session.tick(10.0)
    assert session.connected
    assert session.wake_at == 25.0


@pytest.mark.parametrize(
    ("before", "packet"),
    [
        (False, '42["subscribe",{}]'),  # an event before CONNECT
        (False, "41"),
        (False, "431[]"),
        (True, "40"),  # CONNECT twice
        (True, '42/admin,["subscribe",{}]'),  # a namespace never joined
        (True, '44{"message":"x"}'),  # CONNECT_ERROR comes from servers only
    ],
)
def test_packets_out_of_place_close_the_session(before: bool, packet: str) -> None:
    server = make_server()
    session = connected(server) if before else ws_session(server)
    out = session.receive_ws(packet, 0.0)
    assert closed_reasons(out) == ["invalid state"]
    assert out.close_websocket


@pytest.mark.parametrize("packet", ["4", "49", '42["subscribe"', "4{}", '42["connect"]', "4 0"])
def test_malformed_socket_io_packets_are_a_parse_error(packet: str) -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws(packet, 0.0)
    assert closed_reasons(out) == ["parse error"]


# -- events --------------------------------------------------------------------------------


def test_a_subscribe_event_subscribes() -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws('42["subscribe",{"token":"' + TOKEN + '","projects":{"7":3}}]', 0.0)
    assert out.events == [Subscribe(TOKEN, {7: 3})]
    assert out.frames == []  # no ack asked, none sent


def test_the_message_object_may_repeat_its_type() -> None:
    server = make_server()
    session = connected(server)
    body = {"type": "refresh", "token": TOKEN, "projects": {"7": 4}}
    out = session.receive_ws("42" + json.dumps(["refresh", body]), 0.0)
    assert out.events == [Refresh(TOKEN, {7: 4})]


def test_an_event_with_an_ack_id_is_acknowledged_with_no_arguments() -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws('4217["refresh",{"token":"' + TOKEN + '"}]', 0.0)
    assert out.events == [Refresh(TOKEN, {})]
    assert out.frames == [b"4317[]"]


@pytest.mark.parametrize(
    ("args", "detail"),
    [
        (["poke", {"token": TOKEN}], "unknown event"),
        ([42, {"token": TOKEN}], "unknown event"),
        (["subscribe"], "one message object"),
        (["subscribe", {"token": TOKEN}, "extra"], "one message object"),
        (["subscribe", [TOKEN]], "one message object"),
        (["subscribe", {"type": "refresh", "token": TOKEN}], "differs from the event name"),
        (["subscribe", {"projects": {}}], "'token'"),
        (["subscribe", {"token": TOKEN, "projects": {"7": "new"}}], "non-negative"),
        (["subscribe", {"token": TOKEN, "deep": DEEP}], "nested too deeply"),
    ],
)
def test_events_that_are_not_tidings_messages_are_reported_not_acknowledged(
    args: list[Any], detail: str
) -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws("423" + json.dumps(args), 0.0)
    [invalid] = out.events
    assert isinstance(invalid, InvalidEvent)
    assert detail in invalid.error.detail
    assert out.frames == []
    assert not session.closed  # the server decides what to do about it


def test_acks_from_the_client_are_ignored() -> None:
    server = make_server()
    session = connected(server)
    assert not session.receive_ws('431["whatever"]', 0.0)


@pytest.mark.parametrize(
    ("frame", "binary"),
    [
        ('451-["subscribe",{"_placeholder":true,"num":0}]', False),
        ("461-3[]", False),
        (b"\x00\x01", True),
        ("bAAE=", False),
    ],
)
def test_binary_packets_are_refused(frame: str | bytes, binary: bool) -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws(frame, 0.0, binary=binary)
    assert closed_reasons(out) == ["binary packets refused"]


def test_a_binary_message_over_polling_is_refused_too() -> None:
    server = make_server()
    session = polling_session(server)
    poll(server, session, "POST", b"40")
    out = poll(server, session, "POST", b"bAAE=")
    assert closed_reasons(out) == ["binary packets refused"]


def test_a_client_disconnect_ends_the_session() -> None:
    server = make_server()
    session = connected(server)
    out = session.receive_ws("41", 0.0)
    assert closed_reasons(out) == ["client namespace disconnect"]
    assert out.close_websocket and not session.connected
    assert server.sessions == {}


# -- sending ---------------------------------------------------------------------------------


def test_send_message_frames_a_server_message_as_its_event() -> None:
    server = make_server()
    session = connected(server)
    message = push.drain(12.5)
    out = session.send_message(message, 0.0)
    assert out.frames == [b'42["drain",' + message + b"]"]


def test_one_pre_encoded_poke_is_the_same_bytes_for_every_client() -> None:
    server = make_server()
    sessions = [connected(server) for _ in range(3)]
    pollers = [polling_session(server) for _ in range(3)]
    for p in pollers:
        poll(server, p, "POST", b"40")
        poll(server, p)  # takes the CONNECT answer
        assert poll(server, p).hold
    packet = encode_message(b'{"type":"poke","project":7,"version":43,"ts":1732780200.5}')
    for s in sessions:
        [frame] = s.send_packet(packet, 1.0).frames
        assert frame is packet
    for p in pollers:
        answer = p.send_packet(packet, 1.0).poll
        assert answer is not None and answer.body is packet


def test_server_close_over_websocket_disconnects_the_namespace_first() -> None:
    server = make_server()
    session = connected(server)
    out = session.end("token expired", 1.0)
    assert out.frames == [b"41"]
    assert out.close_websocket
    assert closed_reasons(out) == ["token expired"]
    assert not session.connected and server.sessions == {}


def test_server_close_over_polling_sends_disconnect_then_close_in_two_answers() -> None:
    server = make_server()
    session = polling_session(server)
    poll(server, session, "POST", b"40")
    poll(server, session)
    session.send_message(push.error("bad_token", "token expired"), 1.0)
    out = session.end("token expired", 1.0)
    assert closed_reasons(out) == ["token expired"]
    first = poll(server, session).response
    assert first is not None
    assert first.body.split(b"\x1e") == [
        b'42["error",' + push.error("bad_token", "token expired") + b"]",
        b"41",
    ]
    second = poll(server, session).response
    assert second is not None and second.body == b"1"
    assert server.sessions == {}


def test_closing_a_session_that_never_connected_sends_no_disconnect() -> None:
    server = make_server()
    session = ws_session(server)
    out = session.end("shutdown", 1.0)
    assert out.frames == [] and out.close_websocket


def test_a_polling_client_goes_through_connect_subscribe_and_poke() -> None:
    server = make_server()
    session = polling_session(server)
    posted = poll(server, session, "POST", orjson.dumps({"token": TOKEN}).join([b"40", b""]))
    assert posted.events == [Connected(), Subscribe(TOKEN, {})]
    answer = poll(server, session).response
    assert answer is not None and answer.body.startswith(b'40{"sid":')
    assert poll(server, session).hold
    out = session.send_message(b'{"type":"poke","project":7,"version":1,"ts":0}', 1.0)
    assert out.poll is not None
    assert out.poll.body == b'42["poke",{"type":"poke","project":7,"version":1,"ts":0}]'


def test_a_session_object_stays_small() -> None:
    session = connected(make_server())
    assert not hasattr(session, "__dict__")
    # Two slots more than the 16 it had before the packet budget (trusted, budget time).
    assert len(SioSession.__slots__) + len(EngineSession.__slots__) <= 18
