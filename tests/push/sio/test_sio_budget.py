"""What a hostile Socket.IO client costs, sans-I/O: the per-session packet budget,
the short life of an untrusted session, and the table of not-yet-clients."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tidings.push.limits import PendingTable
from tidings.push.sio.engineio import TOO_MANY_PACKETS, Closed, EngineConfig, Output
from tidings.push.sio.session import CONNECT_TIMEOUT, SioSession, SocketIOServer

BURST = 16
RATE = 2.0
TRUSTED_BURST = 64


def make_server(**config: Any) -> SocketIOServer:
    ids = (f"sid{i}" for i in itertools.count())
    return SocketIOServer(EngineConfig(**config), new_sid=lambda: next(ids))


def ws_session(server: SocketIOServer, now: float = 0.0) -> SioSession:
    session, out = server.handle_websocket("EIO=4&transport=websocket", now)
    assert session is not None and out.frames
    return session


def polling_session(server: SocketIOServer, now: float = 0.0) -> SioSession:
    session, out = server.handle_http("GET", "EIO=4&transport=polling", b"", now)
    assert session is not None and out.response is not None
    return session


def post(server: SocketIOServer, session: SioSession, body: bytes, now: float) -> Output:
    query = f"EIO=4&transport=polling&sid={session.sid}"
    return server.handle_http("POST", query, body, now)[1]


def closed_reasons(out: Output) -> list[str]:
    return [e.reason for e in out.events if isinstance(e, Closed)]


@pytest.mark.parametrize("packet", ["6", "40/a,", "3"])
def test_a_websocket_flood_of_tiny_packets_ends_the_session_past_its_burst(packet: str) -> None:
    server = make_server()
    session = ws_session(server)
    for _ in range(BURST):
        out = session.receive_ws(packet, 0.0)
        assert not closed_reasons(out)
    out = session.receive_ws(packet, 0.0)
    assert closed_reasons(out) == [TOO_MANY_PACKETS]
    assert out.close_websocket
    assert session.closed and server.sessions == {}


def test_the_budget_refills_at_its_rate() -> None:
    server = make_server()
    session = ws_session(server)
    for _ in range(BURST):
        session.receive_ws("6", 0.0)
    # One packet per 1/RATE seconds may follow, for ever.
    for i in range(1, 50):
        assert not closed_reasons(session.receive_ws("6", i / RATE))
    assert closed_reasons(session.receive_ws("6", 49 / RATE)) == [TOO_MANY_PACKETS]


def test_a_trusted_session_gets_the_larger_budget() -> None:
    server = make_server()
    session = ws_session(server)
    session.trust(0.0)
    for _ in range(TRUSTED_BURST):
        assert not closed_reasons(session.receive_ws("6", 0.0))
    assert closed_reasons(session.receive_ws("6", 0.0)) == [TOO_MANY_PACKETS]


def test_a_polling_post_past_the_budget_is_refused_before_it_is_decoded() -> None:
    server = make_server()
    session = polling_session(server)
    # 17 packets, most of them garbage: counted, never parsed.
    body = b"\x1e".join([b"6"] + [b"\xff"] * BURST)
    out = post(server, session, body, 0.0)
    assert out.response is not None and out.response.status == 400
    assert closed_reasons(out) == [TOO_MANY_PACKETS]
    assert server.sessions == {}


def test_polling_posts_share_one_budget() -> None:
    server = make_server()
    session = polling_session(server)
    for _ in range(BURST // 4):
        out = post(server, session, b"6\x1e6\x1e6\x1e6", 0.0)
        assert out.response is not None and out.response.status == 200
    out = post(server, session, b"6", 0.0)
    assert closed_reasons(out) == [TOO_MANY_PACKETS]


def test_an_abandoned_polling_handshake_is_forgotten_quickly() -> None:
    server = make_server(connect_timeout=10.0, close_timeout=30.0, untrusted_close_timeout=2.0)
    session = polling_session(server)
    out = session.tick(10.0)
    assert closed_reasons(out) == [CONNECT_TIMEOUT]
    assert session.wake_at == 12.0
    server.tick(12.0)
    assert server.sessions == {}


def test_a_trusted_polling_session_waits_the_full_close_timeout() -> None:
    server = make_server(close_timeout=30.0, untrusted_close_timeout=2.0)
    session = polling_session(server)
    session.trust(1.0)
    session.end("going away", 1.0)
    assert session.wake_at == 31.0


def test_the_pending_table_counts_per_address_oldest_first() -> None:
    table: PendingTable[str] = PendingTable()
    for key, peer in [("a", "1.1.1.1"), ("b", "2.2.2.2"), ("c", "1.1.1.1")]:
        table.add(key, peer)
    assert len(table) == 3 and table.count_for("1.1.1.1") == 2
    assert list(table) == ["a", "b", "c"]
    assert table.of_peer("1.1.1.1") == ["a", "c"]
    assert table.remove("a") and not table.remove("a")
    assert table.count_for("1.1.1.1") == 1 and list(table) == ["b", "c"]
    table.remove("c")
    assert table.count_for("1.1.1.1") == 0 and table.of_peer("1.1.1.1") == []
    table.add("b", "2.2.2.2")  # already there: no second entry
    assert len(table) == 1


def test_the_pong_to_our_own_ping_is_free_at_any_ping_interval() -> None:
    # The protocol suites run 300 ms pings: pongs alone must never exhaust a budget.
    server = make_server(ping_interval=0.1, ping_timeout=1.0, packet_burst=2, packet_rate=0.1)
    session = ws_session(server)
    now = 0.0
    for _ in range(100):
        now += 0.1
        assert session.tick(now).frames == [b"2"]
        assert not closed_reasons(session.receive_ws("3", now))
    assert not session.closed
    # An unsolicited one is charged like any packet.
    session.receive_ws("3", now)
    session.receive_ws("3", now)
    assert closed_reasons(session.receive_ws("3", now)) == [TOO_MANY_PACKETS]
