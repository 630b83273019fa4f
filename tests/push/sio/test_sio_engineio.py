"""Engine.IO v4 rules, driven by plain calls with a fake clock (no sockets, no sleeps)."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import pytest

from tidings.push.sio.engineio import (
    SIDS_PER_READ,
    STATE_CHANGES,
    UPGRADE_CHANGES,
    Closed,
    EngineConfig,
    EngineServer,
    EngineSession,
    ErrorCode,
    HttpResponse,
    Message,
    Output,
    Packet,
    PacketType,
    ProtocolError,
    State,
    Upgrade,
    decode_packet,
    decode_payload,
    encode_packet,
    encode_payload,
    new_sid,
    parse_query,
)

Server = EngineServer[EngineSession]


def make_server(**config: Any) -> Server:
    ids = (f"sid{i}" for i in itertools.count())
    return EngineServer(EngineSession, EngineConfig(**config), new_sid=lambda: next(ids))


def handshake(server: Server, now: float = 0.0) -> tuple[EngineSession, dict[str, Any]]:
    session, out = server.handle_http("GET", "EIO=4&transport=polling&t=N8hyd6w", b"", now)
    assert session is not None and out.response is not None
    assert out.response.status == 200
    assert out.response.body.startswith(b"0")
    return session, json.loads(out.response.body[1:])


def state_of(session: EngineSession) -> State:
    """The state read afresh: a type checker keeps ``session.state`` narrowed across calls."""
    return session.state


def query(session: EngineSession, transport: str = "polling") -> str:
    return f"EIO=4&transport={transport}&sid={session.sid}"


def get(server: Server, session: EngineSession, now: float = 0.0) -> Output:
    return server.handle_http("GET", query(session), b"", now)[1]


def post(server: Server, session: EngineSession, body: bytes, now: float = 0.0) -> Output:
    return server.handle_http("POST", query(session), body, now)[1]


def error_body(response: HttpResponse | None) -> dict[str, Any]:
    assert response is not None
    assert ("Content-Type", "application/json") in response.headers
    body: dict[str, Any] = json.loads(response.body)
    return body


def closed_reasons(out: Output) -> list[str]:
    return [e.reason for e in out.events if isinstance(e, Closed)]


# -- packets and payloads -------------------------------------------------------------


@pytest.mark.parametrize(
    ("wire", "packet"),
    [
        ("0{}", Packet(PacketType.OPEN, "{}")),
        ("1", Packet(PacketType.CLOSE)),
        ("2", Packet(PacketType.PING)),
        ("2probe", Packet(PacketType.PING, "probe")),
        ("3probe", Packet(PacketType.PONG, "probe")),
        ("4hello", Packet(PacketType.MESSAGE, "hello")),
        ("4", Packet(PacketType.MESSAGE, "")),
        ("5", Packet(PacketType.UPGRADE)),
        ("6", Packet(PacketType.NOOP)),
        ("bAQIDBA==", Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04")),
    ],
)
def test_packets_decode_as_in_the_spec(wire: str, packet: Packet) -> None:
    assert decode_packet(wire) == packet


def test_a_binary_frame_is_a_message_packet_with_no_prefix() -> None:
    assert decode_packet(b"\x01\x02") == Packet(PacketType.MESSAGE, b"\x01\x02")
    assert encode_packet(Packet(PacketType.MESSAGE, b"\x01\x02")) == b"\x01\x02"
    assert encode_packet(Packet(PacketType.MESSAGE, b"\x01"), binary_frames=False) == "bAQ=="


@pytest.mark.parametrize("wire", ["", "7", "x", "-1", " 4", "b!!!", "bé", "bAQ"])
def test_malformed_packets_raise_protocol_error(wire: str) -> None:
    with pytest.raises(ProtocolError):
        decode_packet(wire)


def test_polling_payload_joins_packets_with_the_record_separator() -> None:
    packets = [
        Packet(PacketType.MESSAGE, "hello"),
        Packet(PacketType.PING),
        Packet(PacketType.MESSAGE, b"\x01\x02\x03\x04"),
    ]
    assert encode_payload(packets) == "4hello\x1e2\x1ebAQIDBA=="
    assert decode_payload("4hello\x1e2\x1ebAQIDBA==") == packets


@pytest.mark.parametrize("payload", ["", "\x1e", "4a\x1e", "4a\x1e\x1e2", "4a\x1e9"])
def test_malformed_payloads_raise_protocol_error(payload: str) -> None:
    with pytest.raises(ProtocolError):
        decode_payload(payload)


# -- handshake ------------------------------------------------------------------------


def test_handshake_answers_the_open_packet_with_the_session_parameters() -> None:
    server = make_server()
    session, out = server.handle_http("GET", "EIO=4&transport=polling&t=N8hyd6w", b"", 0.0)
    assert session is not None and out.response is not None
    assert ("Content-Type", "text/plain; charset=UTF-8") in out.response.headers
    assert json.loads(out.response.body[1:]) == {
        "sid": "sid0",
        "upgrades": ["websocket"],
        "pingInterval": 25000,
        "pingTimeout": 20000,
        "maxPayload": 32768,
    }
    assert server.sessions == {"sid0": session}


def test_default_sids_are_random_url_safe_and_unique() -> None:
    server: Server = EngineServer(EngineSession)
    sids = {handshake(server)[1]["sid"] for _ in range(50)}
    assert len(sids) == 50
    assert all(len(s) == 20 and s.replace("-", "").replace("_", "").isalnum() for s in sids)


def test_sids_stay_unique_and_well_formed_across_many_reads_of_the_random_source() -> None:
    sids = [new_sid() for _ in range(3 * SIDS_PER_READ + 7)]
    assert len(set(sids)) == len(sids)
    assert all(len(s) == 20 and s.replace("-", "").replace("_", "").isalnum() for s in sids)


def test_a_forked_child_draws_sids_of_its_own() -> None:
    new_sid()  # the pool holds ids the child must not reuse
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(write, ",".join(new_sid() for _ in range(SIDS_PER_READ)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split(","))
    os.waitpid(pid, 0)
    parent = {new_sid() for _ in range(SIDS_PER_READ)}
    assert len(child) == SIDS_PER_READ
    assert not child & parent


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("EIO=4&transport=websocket", {"EIO": "4", "transport": "websocket"}),
        (
            "EIO=4&&transport=polling&t=N8hyd6w",
            {"EIO": "4", "transport": "polling", "t": "N8hyd6w"},
        ),
        ("sid=a&sid=b&x", {"sid": "b", "x": ""}),
        ("sid=a%2Bb+c", {"sid": "a+b c"}),
        ("", {}),
    ],
)
def test_query_fields_last_one_wins_and_escapes_are_decoded(
    query: str, params: dict[str, str]
) -> None:
    assert parse_query(query) == params


def test_a_query_of_more_than_16_fields_is_refused() -> None:
    parse_query("&".join(f"f{i}=1" for i in range(16)))
    with pytest.raises(ProtocolError):
        parse_query("&".join(f"f{i}=1" for i in range(17)))
    with pytest.raises(ProtocolError):
        parse_query("&" * 16)


def test_handshake_offers_no_upgrade_when_upgrades_are_off() -> None:
    assert handshake(make_server(allow_upgrades=False))[1]["upgrades"] == []
    assert handshake(make_server(allow_websocket=False))[1]["upgrades"] == []


def test_websocket_only_handshake_sends_the_open_packet_as_the_first_frame() -> None:
    server = make_server(ping_interval=10, ping_timeout=5)
    session, out = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None and session.websocket
    assert out.response is None
    [frame] = out.frames
    assert json.loads(frame[1:]) == {
        "sid": "sid0",
        "upgrades": [],
        "pingInterval": 10000,
        "pingTimeout": 5000,
        "maxPayload": 32768,
    }


@pytest.mark.parametrize(
    ("method", "query_string", "code", "message"),
    [
        ("GET", "EIO=4&transport=carrier-pigeon", 0, "Transport unknown"),
        ("GET", "EIO=4", 0, "Transport unknown"),
        ("GET", "EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"),
        ("POST", "EIO=4&transport=polling&sid=nope", 1, "Session ID unknown"),
        ("POST", "EIO=4&transport=polling", 2, "Bad handshake method"),
        ("PUT", "EIO=4&transport=polling", 2, "Bad handshake method"),
        ("GET", "EIO=4&transport=websocket", 3, "Bad request"),
        ("GET", "EIO=4&transport=polling&j=0", 3, "Bad request"),
        ("GET", "EIO=4&transport=polling&" + "x" * 2000, 3, "Bad request"),
        ("GET", "EIO=3&transport=polling", 5, "Unsupported protocol version"),
        ("GET", "transport=polling", 5, "Unsupported protocol version"),
    ],
)
def test_bad_requests_get_the_reference_error_codes(
    method: str, query_string: str, code: int, message: str
) -> None:
    server = make_server()
    session, out = server.handle_http(method, query_string, b"", 0.0)
    assert session is None
    assert out.response is not None and out.response.status == 400
    assert error_body(out.response) == {"code": code, "message": message}
    assert server.sessions == {}


def test_polling_is_an_unknown_transport_when_disabled() -> None:
    server = make_server(allow_polling=False)
    out = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)[1]
    assert error_body(out.response)["code"] == ErrorCode.UNKNOWN_TRANSPORT


def test_a_full_server_refuses_handshakes_with_403_forbidden() -> None:
    server = make_server(max_sessions=2)
    handshake(server)
    handshake(server)
    session, out = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)
    assert session is None and out.response is not None
    assert out.response.status == 403
    assert error_body(out.response) == {"code": 4, "message": "Server full"}
    ws_session, ws_out = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert ws_session is None and ws_out.response is not None
    assert ws_out.response.body == b"Server full"


@pytest.mark.parametrize(
    ("query_string", "message"),
    [
        ("EIO=4&transport=websocket&sid=nope", b"Session ID unknown"),
        ("EIO=4&transport=polling", b"Bad request"),
        ("EIO=4&transport=foo", b"Transport unknown"),
        ("EIO=3&transport=websocket", b"Unsupported protocol version"),
    ],
)
def test_websocket_handshakes_are_refused_like_the_reference(
    query_string: str, message: bytes
) -> None:
    server = make_server()
    session, out = server.handle_websocket(query_string, 0.0)
    assert session is None and out.response is not None
    assert out.response.status == 400
    assert out.response.body == message


# -- long-polling ---------------------------------------------------------------------


def test_get_with_nothing_queued_is_held_until_a_packet_is_sent() -> None:
    server = make_server()
    session, _ = handshake(server)
    out = get(server, session)
    assert out.hold and out.response is None
    sent = session.send_packet(b"4hello", 1.0)
    assert sent.poll is not None
    assert sent.poll.status == 200
    assert sent.poll.body == b"4hello"
    assert ("Content-Type", "text/plain; charset=UTF-8") in sent.poll.headers


def test_get_returns_everything_queued_joined_by_record_separators() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert not session.send_packet(b"4a", 0.0)
    assert not session.send_packet(b"4b", 0.0)
    assert session.buffered_bytes == 4
    out = get(server, session)
    assert out.response is not None
    assert out.response.body == b"4a\x1e4b"
    assert session.buffered_bytes == 0


def test_a_second_concurrent_get_is_refused_and_closes_the_session() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert get(server, session).hold
    out = get(server, session)
    assert out.response is not None and out.response.status == 400
    assert error_body(out.response)["code"] == ErrorCode.BAD_REQUEST
    assert out.poll is not None and out.poll.body == b"1"  # the held GET learns of the close
    assert closed_reasons(out) == ["transport error"]
    assert server.sessions == {}
    assert error_body(get(server, session).response)["code"] == ErrorCode.UNKNOWN_SID


def test_post_delivers_its_packets_and_answers_ok() -> None:
    server = make_server()
    session, _ = handshake(server)
    out = post(server, session, b"4hello\x1e6\x1e4world")
    assert out.response is not None
    assert (out.response.status, out.response.body) == (200, b"ok")
    assert ("Content-Type", "text/html") in out.response.headers
    assert out.events == [Message("hello"), Message("world")]


def test_post_over_max_payload_is_413_and_ends_the_session() -> None:
    server = make_server(max_payload=100)
    session, _ = handshake(server)
    out = post(server, session, b"4" + b"x" * 100)
    assert out.response is not None and out.response.status == 413
    assert closed_reasons(out) == ["payload too large"]
    assert session.closed


@pytest.mark.parametrize("body", [b"", b"9", b"4a\x1e", b"\xff\xfe", b"bnot-base64!"])
def test_malformed_post_is_400_and_a_parse_error(body: bytes) -> None:
    server = make_server()
    session, _ = handshake(server)
    held = get(server, session)
    out = post(server, session, body)
    assert held.hold
    assert out.response is not None and out.response.status == 400
    assert closed_reasons(out) == ["parse error"]
    assert out.poll is not None and out.poll.body == b"1"


def test_client_close_packet_ends_the_session() -> None:
    server = make_server()
    session, _ = handshake(server)
    out = post(server, session, b"1")
    assert closed_reasons(out) == ["transport close"]
    assert server.sessions == {}


def test_client_close_answers_the_held_get_with_a_noop() -> None:
    # As the reference server does (its protocol test suite checks it).
    server = make_server()
    session, _ = handshake(server)
    assert get(server, session).hold
    out = post(server, session, b"1")
    assert out.poll is not None and out.poll.body == b"6"
    assert closed_reasons(out) == ["transport close"]
    assert server.sessions == {}


def test_a_ping_from_the_client_breaks_protocol_v4() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert closed_reasons(post(server, session, b"2")) == ["transport error"]


@pytest.mark.parametrize("body", [b"0", b"5"])
def test_open_or_upgrade_on_the_polling_transport_is_a_parse_error(body: bytes) -> None:
    server = make_server()
    session, _ = handshake(server)
    assert closed_reasons(post(server, session, body)) == ["parse error"]


def test_unsupported_method_on_a_session_is_refused_without_closing() -> None:
    server = make_server()
    session, _ = handshake(server)
    out = server.handle_http("DELETE", query(session), b"", 0.0)[1]
    assert error_body(out.response)["code"] == ErrorCode.BAD_REQUEST
    assert not session.closed


def test_a_held_get_whose_connection_drops_ends_the_session() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert get(server, session).hold
    out = session.poll_aborted(1.0)
    assert closed_reasons(out) == ["transport error"]
    assert server.sessions == {}
    assert not session.poll_aborted(1.0)  # nothing was held any more


def test_the_polling_buffer_is_bounded() -> None:
    server = make_server(max_buffer_bytes=10)
    session, _ = handshake(server)
    assert not session.send_packet(b"4abcd", 0.0)
    assert not session.send_packet(b"4abcd", 0.0)
    out = session.send_packet(b"4a", 0.0)
    assert closed_reasons(out) == ["send buffer full"]
    assert session.buffered_bytes == 0
    assert server.sessions == {}


# -- heartbeat ------------------------------------------------------------------------


def test_server_pings_after_ping_interval_and_waits_ping_timeout_for_the_pong() -> None:
    server = make_server(ping_interval=25, ping_timeout=20)
    session, _ = handshake(server, now=100.0)
    assert session.wake_at == 125.0
    assert get(server, session, now=100.0).hold
    assert server.tick(124.9) == []
    [(ticked, out)] = server.tick(125.0)
    assert ticked is session
    assert out.poll is not None and out.poll.body == b"2"
    assert session.wake_at == 145.0  # the pong deadline
    assert post(server, session, b"3", now=130.0).response == HttpResponse(
        200, (("Content-Type", "text/html"), ("Cache-Control", "no-store")), b"ok"
    )
    # The next ping comes ping_interval after the pong.
    assert session.wake_at == 155.0
    assert not session.tick(154.0)
    assert not session.closed


def test_a_missing_pong_closes_the_session_after_ping_timeout() -> None:
    server = make_server(ping_interval=25, ping_timeout=20)
    handshake(server)
    server.tick(25.0)
    assert server.tick(44.9) == []
    [(_, out)] = server.tick(45.0)
    assert closed_reasons(out) == ["ping timeout"]
    assert server.sessions == {}


def test_an_unsolicited_pong_moves_no_timer() -> None:
    server = make_server(ping_interval=25, ping_timeout=20)
    session, _ = handshake(server)
    post(server, session, b"3", now=10.0)
    assert session.wake_at == 25.0


def test_pings_and_pongs_travel_as_frames_on_websocket() -> None:
    server = make_server(ping_interval=25, ping_timeout=20)
    session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    [(_, out)] = server.tick(25.0)
    assert out.frames == [b"2"]
    assert not session.receive_ws("3", 26.0)
    assert session.wake_at == 51.0


# -- the WebSocket upgrade ----------------------------------------------------------


def test_upgrade_sequence_probe_noop_upgrade_then_frames() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert get(server, session).hold
    ws_session, out = server.handle_websocket(query(session, "websocket"), 1.0)
    assert ws_session is session and not out
    # Packets sent while probing still go to the polling transport.
    before = session.send_packet(b"4early", 1.0)
    assert before.poll is not None and before.poll.body == b"4early"
    assert get(server, session, 1.0).hold
    probe = session.receive_ws("2probe", 1.1)
    assert probe.frames == [b"3probe"]
    assert probe.poll is not None and probe.poll.body == b"6"  # frees the client to pause
    # A GET arriving while upgrading returns at once.
    late = get(server, session, 1.1)
    assert late.response is not None and late.response.body == b"6"
    assert not session.send_packet(b"4during", 1.2)  # buffered for the new transport
    done = session.receive_ws("5", 1.3)
    assert session.websocket
    assert done.frames == [b"4during"]
    assert session.send_packet(b"4after", 1.4).frames == [b"4after"]
    # Polling is over for this session: refused, but the session lives on.
    assert error_body(get(server, session, 1.5).response)["code"] == ErrorCode.BAD_REQUEST
    assert error_body(post(server, session, b"4x", 1.5).response)["code"] == ErrorCode.BAD_REQUEST
    assert not session.closed
    assert session.receive_ws("4hi", 1.6).events == [Message("hi")]


def test_an_upgrade_packet_releases_a_get_still_held() -> None:
    server = make_server()
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 0.0)
    assert get(server, session).hold
    out = session.receive_ws("5", 0.5)
    assert out.poll is not None and out.poll.body == b"6"
    assert session.websocket


def test_an_unfinished_upgrade_times_out_and_polling_continues() -> None:
    server = make_server(upgrade_timeout=10)
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 1.0)
    session.receive_ws("2probe", 1.0)
    assert session.wake_at == 11.0
    [(_, out)] = server.tick(11.0)
    assert out.close_websocket
    assert not session.closed and not session.websocket
    assert get(server, session, 12.0).hold


@pytest.mark.parametrize("frame", ["4hello", "2", "3probe", "", "x"])
def test_anything_but_probe_or_upgrade_on_the_probing_socket_aborts_the_upgrade(
    frame: str,
) -> None:
    server = make_server()
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 0.0)
    out = session.receive_ws(frame, 0.1)
    assert out.close_websocket and not out.events
    assert not session.closed and not session.websocket


def test_the_probing_socket_closing_leaves_the_session_on_polling() -> None:
    server = make_server()
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 0.0)
    assert not session.ws_closed(0.5)
    assert not session.closed
    # A fresh upgrade attempt is allowed again.
    assert server.handle_websocket(query(session, "websocket"), 1.0)[1].response is None


def test_a_second_websocket_is_accepted_then_closed() -> None:
    # As the reference server does: the handshake completes, the socket closes.
    server = make_server()
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 0.0)
    second, out = server.handle_websocket(query(session, "websocket"), 0.1)
    assert second is None and out.response is None and out.close_websocket
    session.receive_ws("2probe", 0.2)
    session.receive_ws("5", 0.2)
    assert session.websocket
    second, out = server.handle_websocket(query(session, "websocket"), 0.3)
    assert second is None and out.response is None and out.close_websocket
    assert not session.closed


def test_upgrades_are_refused_when_off() -> None:
    server = make_server(allow_upgrades=False)
    session, _ = handshake(server)
    out = server.handle_websocket(query(session, "websocket"), 0.0)[1]
    assert out.response is not None and out.response.status == 400


# -- closing ----------------------------------------------------------------------------


def test_server_close_on_websocket_sends_what_is_queued_then_closes() -> None:
    server = make_server()
    session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    out = session.end("going away", 1.0)
    assert out.close_websocket
    assert closed_reasons(out) == ["going away"]
    assert server.sessions == {}
    assert not session.send_packet(b"4late", 1.0)


def test_server_close_on_polling_delivers_the_buffer_then_the_close_packet() -> None:
    server = make_server()
    session, _ = handshake(server)
    session.send_packet(b"4bye", 0.0)
    out = session.end("going away", 1.0)
    assert closed_reasons(out) == ["going away"]
    assert "sid0" in server.sessions  # waiting for the GETs that take the last packets
    assert not session.send_packet(b"4late", 1.0)
    first = get(server, session, 2.0)
    assert first.response is not None and first.response.body == b"4bye"
    # The close packet comes in a later answer (socket.io-client handles it at once).
    second = get(server, session, 2.1)
    assert second.response is not None and second.response.body == b"1"
    assert server.sessions == {}


def test_server_close_answers_a_held_get_with_the_close_packet() -> None:
    server = make_server()
    session, _ = handshake(server)
    assert get(server, session).hold
    out = session.end("going away", 1.0)
    assert out.poll is not None and out.poll.body == b"1"
    assert server.sessions == {}


def test_a_closing_polling_session_is_forgotten_after_close_timeout() -> None:
    server = make_server(close_timeout=30)
    session, _ = handshake(server)
    session.trust(0.5)
    session.end("going away", 1.0)
    assert session.wake_at == 31.0
    assert server.tick(30.9) == []
    assert "sid0" in server.sessions
    assert server.tick(31.0) == []  # nothing to send, the session is just dropped
    assert server.sessions == {}


def test_a_websocket_closed_by_the_peer_ends_the_session() -> None:
    server = make_server()
    session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    assert closed_reasons(session.ws_closed(1.0)) == ["transport close"]
    assert server.sessions == {}
    assert not session.ws_closed(1.0)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [("x", "parse error"), (b"\xff", "parse error"), ("4" + "x" * 200, "payload too large")],
)
def test_bad_websocket_frames_end_the_session(frame: str | bytes, reason: str) -> None:
    server = make_server(max_payload=100)
    session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    out = session.receive_ws(frame, 0.0)
    assert closed_reasons(out) == [reason]
    assert out.close_websocket


def test_binary_websocket_frames_are_message_packets() -> None:
    server = make_server()
    session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
    assert session is not None
    assert session.receive_ws(b"\x00\x01", 0.0, binary=True).events == [Message(b"\x00\x01")]
    assert session.receive_ws(b"4text", 0.0).events == [Message("text")]


def test_end_all_ends_every_session() -> None:
    server = make_server()
    handshake(server)
    server.handle_websocket("EIO=4&transport=websocket", 0.0)
    results = server.end_all("shutdown", 1.0)
    assert [closed_reasons(out) for _, out in results] == [["shutdown"], ["shutdown"]]


def test_sessions_keep_no_per_instance_dict() -> None:
    session, _ = handshake(make_server())
    assert not hasattr(session, "__dict__")


def test_states_change_only_as_the_tables_say() -> None:
    server = make_server()
    session, _ = handshake(server)
    server.handle_websocket(query(session, "websocket"), 0.0)  # NONE -> PROBING
    session.receive_ws("2probe", 0.1)  # -> UPGRADING
    session.receive_ws("5", 0.2)  # -> NONE, on WebSocket
    assert session.websocket and session.state is State.OPEN
    session.end("bye", 0.3)  # OPEN -> CLOSED (WebSocket: no linger)
    assert state_of(session) is State.CLOSED
    # Reopening, or any step not listed, is refused rather than carried out.
    assert (State.CLOSED, State.OPEN) not in STATE_CHANGES
    with pytest.raises(RuntimeError):
        session._enter(State.OPEN)
    assert (Upgrade.NONE, Upgrade.UPGRADING) not in UPGRADE_CHANGES
    other, _ = handshake(server)
    with pytest.raises(RuntimeError):
        other._step_upgrade(Upgrade.UPGRADING)
