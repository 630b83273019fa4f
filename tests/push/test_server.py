"""The push server's HTTP side and operations on the in-process broker: health, metrics,
limits on requests, drain, and the state seen by clients when the link goes deaf."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest

from tests.support import until
from tidings.protocol.channels import project_channel
from tidings.protocol.errors import CloseCode
from tidings.protocol.poke import Poke, encode_poke
from tidings.protocol.push import ServerState
from tidings.push.settings import from_env
from tidings.testing.clients import RawWebSocket

from .conftest import StartServer, token
from .test_redis_integration import TIMEOUT


async def request(port: int, raw: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(raw)
        data = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}
    return int(status_line.split()[1]), headers, body


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()


async def test_health_readiness_and_unknown_routes(start_server: StartServer) -> None:
    server, _ = await start_server()
    assert (await request(server.port, get("/healthz")))[0] == 200
    status, _, body = await request(server.port, get("/readyz"))
    assert (status, orjson.loads(body)) == (200, {"status": "ok", "server": server.server_id})
    status, _, body = await request(server.port, get("/nowhere"))
    assert status == 404 and orjson.loads(body)["error"] == "not_found"


async def test_metrics_count_connections_and_pokes(start_server: StartServer) -> None:
    server, broker = await start_server()
    ws = await RawWebSocket.connect(server.port)
    ws.send_json({"type": "subscribe", "token": token(), "projects": {"7": 1}})
    await ws.message()
    await broker.publish(project_channel(7), encode_poke(Poke(7, 2, time.time())))
    await ws.message()
    await broker.publish(project_channel(7), b"{not a poke")
    await until(lambda: server.counters.broker_invalid == 1, TIMEOUT, "the bad poke counted")
    status, headers, body = await request(server.port, get("/metrics"))
    text = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/plain")
    for line in (
        'tidings_push_connections{transport="ws"} 1.0',
        'tidings_push_connections{transport="sse"} 0.0',
        "tidings_push_pokes_received_total 1.0",
        "tidings_push_pokes_sent_total 1.0",
        "tidings_push_broker_invalid_total 1.0",
        'tidings_push_state{state="ok"} 1.0',
        "tidings_push_draining 0.0",
        "tidings_push_slow_closes_total 0.0",
        "tidings_push_broker_reconnects_total 0.0",
    ):
        assert line in text, line
    assert "tidings_push_link_heartbeat_age_seconds" in text
    ws.close()


async def test_an_idle_healthy_server_reports_ok_and_every_series_at_zero(
    start_server: StartServer,
) -> None:
    """No client yet (an empty hub is falsy): the state is ok, not degraded, and every
    transport's connections series exists, so alerts and dashboards see them from the start."""
    server, _ = await start_server()
    status, _, body = await request(server.port, get("/metrics"))
    text = body.decode()
    assert status == 200
    for line in (
        'tidings_push_state{state="ok"} 1.0',
        'tidings_push_state{state="degraded"} 0.0',
        'tidings_push_connections{transport="ws"} 0.0',
        'tidings_push_connections{transport="sse"} 0.0',
        'tidings_push_connections{transport="socketio"} 0.0',
        "tidings_push_draining 0.0",
        "tidings_push_task_restarts_total 0.0",
    ):
        assert line in text, line
    stats = server.stats()
    assert stats["state"] == "ok" and stats["draining"] is False
    assert stats["connections"] == {"ws": 0, "sse": 0, "socketio": 0}


async def test_a_crash_of_the_servers_clock_is_logged_and_the_clock_started_again(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    server, _ = await start_server()
    hub = server.hub
    real_tick = hub.tick
    crashed: list[float] = []
    ticks_after: list[float] = []

    def tick(now: float) -> None:
        if not crashed:
            crashed.append(now)
            raise RuntimeError("a bug in the clock")
        ticks_after.append(now)
        real_tick(now)

    hub.tick = tick  # type: ignore[method-assign]
    await until(lambda: len(ticks_after) >= 3, 5, "the clock started again")
    assert server.counters.task_restarts == 1
    crashes = [r for r in caplog.records if "event=task_crashed task=tick" in r.getMessage()]
    assert len(crashes) == 1 and crashes[0].name == "tidings.push"
    _, _, body = await request(server.port, get("/metrics"))
    assert b"tidings_push_task_restarts_total 1.0" in body


async def test_socketio_is_served_by_the_route_table(start_server: StartServer) -> None:
    server, _ = await start_server()
    for path in ("/socket.io/", "/socket.io"):
        status, _, body = await request(server.port, get(path))
        # Mounted: Engine.IO itself refuses a handshake with no transport (not a 404).
        assert (status, orjson.loads(body)) == (400, {"code": 0, "message": "Transport unknown"})
    assert (await request(server.port, get("/socket.iox")))[0] == 404


async def test_keep_alive_serves_several_requests_on_one_connection(
    start_server: StartServer,
) -> None:
    server, _ = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200") and b"keep-alive" in head
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            await asyncio.wait_for(reader.readexactly(length), 5)
    finally:
        writer.close()


async def test_oversize_heads_and_garbage_are_refused(start_server: StartServer) -> None:
    server, _ = await start_server(max_request_head_bytes=2048)
    big = b"GET /sse?token=" + b"a" * 4000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    assert (await request(server.port, big))[0] == 431
    assert (await request(server.port, b"\x16\x03\x01 hello\r\n\r\n"))[0] == 400


async def test_a_silent_socket_is_closed_after_the_handshake_timeout(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(handshake_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    await until(lambda: server.context.sockets == 0, TIMEOUT, "the socket counted closed")


async def test_drain_tells_everyone_closes_each_at_its_delay_and_stops_accepting(
    start_server: StartServer,
) -> None:
    server, _ = await start_server()
    clients = []
    for _ in range(10):
        ws = await RawWebSocket.connect(server.port)
        ws.send_json({"type": "subscribe", "token": token(), "projects": {"7": 1}})
        await ws.message()
        clients.append(ws)
    started = time.monotonic()
    drain = asyncio.create_task(server.drain(1.0))
    for ws in clients:
        # The state at once (not at the next heartbeat round), then the delay.
        assert await ws.message() == {"type": "heartbeat", "state": "draining"}
        told = await ws.message()
        assert told["type"] == "drain" and 0 <= told["reconnect_after"] < 1.0
        assert (await ws.close_code())[0] == CloseCode.GOING_AWAY
        assert time.monotonic() - started >= told["reconnect_after"] - 0.05
    await asyncio.wait_for(drain, 5)
    assert server.hub.state is ServerState.DRAINING
    assert len(server.hub) == 0


async def test_clients_hear_degraded_at_once_when_link_heartbeats_stop(
    start_server: StartServer,
) -> None:
    server, broker = await start_server(link_deaf_after=0.5)
    ws = await RawWebSocket.connect(server.port)
    ws.send_json({"type": "subscribe", "token": token(), "projects": {"7": 1}})
    await ws.message()
    # Make the in-process link deaf: heartbeats are published but never delivered.
    server.subscriber.unsubscribe(server.link_channel)
    assert await ws.message() == {"type": "heartbeat", "state": "degraded"}
    assert (await request(server.port, get("/readyz")))[0] == 503
    await broker.set_version(7, 4)
    server.subscriber.subscribe(server.link_channel)
    assert await ws.message() == {"type": "heartbeat", "state": "ok"}
    poke = await ws.message()
    assert (poke["type"], poke["version"]) == ("poke", 4)
    ws.close()


async def test_the_audit_pokes_a_client_left_behind_its_key_and_can_be_turned_off(
    start_server: StartServer,
) -> None:
    """A key that rose with no poke reaching the server (a message lost without any
    failure being seen): the periodic audit finds it; with ``audit_interval=0`` only
    the client's own poll would."""
    audited = await start_server(audit_interval=0.3)
    unaudited = await start_server(audit_interval=0)
    clients = []
    for server, _ in (audited, unaudited):
        ws = await RawWebSocket.connect(server.port)
        ws.send_json({"type": "subscribe", "token": token(), "projects": {"7": 3}})
        assert (await ws.message())["type"] == "subscribed"
        clients.append(ws)
    # The subscribe-time version check is done (it found no key).
    await until(
        lambda: all(s.versions.idle for s, _ in (audited, unaudited)), TIMEOUT, "version checks"
    )
    for _, broker in (audited, unaudited):
        await broker.set_version(7, 5)
    started = time.monotonic()
    poke = await asyncio.wait_for(clients[0].message(), 3)
    assert (poke["type"], poke["project"], poke["version"]) == ("poke", 7, 5)
    assert time.monotonic() - started < 0.3 + 0.5
    assert audited[0].counters.audits >= 1 and audited[0].counters.recovery_pokes == 1
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(clients[1].message(), 1.0)
    assert unaudited[0].counters.audits == 0
    for ws in clients:
        ws.close()


def test_the_audit_interval_comes_from_the_environment() -> None:
    assert from_env({}).audit_interval == 30.0
    assert from_env({"TIDINGS_PUSH_AUDIT_INTERVAL": "0"}).audit_interval == 0.0
