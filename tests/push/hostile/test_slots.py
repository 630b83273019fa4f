"""Connection slots against a real ``tidings push`` on Redis: silent sockets
cannot crowd out clients.

A socket is *pending* until it carries a client with a verified token; pending
sockets are capped per address (the socket past the cap gets 429 and is closed
at once) and in all (the oldest is closed to make room), and they do not count
against ``max_connections``. See PushSettings.max_pending.
"""

from __future__ import annotations

import asyncio
import socket
import time

from tests.push.conftest import token
from tidings.protocol.errors import CloseCode
from tidings.testing.clients import RawWebSocket
from tidings.testing.hostile import PushProcess, project_id

#: The bound asserted for a thousand silent sockets (docs/OPERATIONS.md).
RSS_BOUND_KB = 20 * 1024
#: The process's limits: clients, sockets without a token (in all, per address).
MAX_CONNECTIONS = 50
MAX_PENDING = 200
PER_IP = 64

#: The module's server (one for all its tests; each leaves no socket behind).
#: Per-IP limits on: every attacker address is its own.
PUSH_ENV = {
    "TIDINGS_PUSH_DRAIN_WINDOW": "0.5",  # stopped, not rolled: no 30 s drain
    "TIDINGS_PUSH_IP_RATE": "20",
    "TIDINGS_PUSH_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
    "TIDINGS_PUSH_MAX_PENDING": str(MAX_PENDING),
    "TIDINGS_PUSH_MAX_PENDING_PER_IP": str(PER_IP),
}


async def silent(port: int, source: str) -> socket.socket:
    """A socket that connects from ``source`` and never sends a byte."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    sock.bind((source, 0))
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), 5)
    except BaseException:
        sock.close()
        raise
    return sock


def closed(sock: socket.socket) -> bool:
    """Has the server closed it (EOF or reset, perhaps after a 429)?"""
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return True
    except BlockingIOError:
        return False
    except ConnectionError:
        return True


async def until_settled(socks: list[socket.socket], expect_open: int, seconds: float) -> int:
    """Wait until at most ``expect_open`` are open (or the time is up); how many are."""
    deadline = time.monotonic() + seconds
    while True:
        still = sum(not closed(s) for s in socks)
        if still <= expect_open or time.monotonic() > deadline:
            return still
        await asyncio.sleep(0.05)


async def subscribed(port: int, project: int) -> RawWebSocket:
    ws = await RawWebSocket.connect(port)
    assert ws.status == 101, ws.head
    ws.send_json(
        {"type": "subscribe", "token": token(projects=[project]), "projects": {str(project): 0}}
    )
    msg = await ws.message()
    assert msg["type"] == "subscribed", msg
    return ws


async def test_silent_sockets_from_one_address_are_closed_past_its_pending_cap(
    push: PushProcess,
) -> None:
    # The finding: 1,100 silent sockets from one address filled a 1,000-slot server.
    rss_before = push.rss_kb()
    started = time.monotonic()
    socks = [await silent(push.port, "127.0.6.1") for _ in range(1100)]
    opened = time.monotonic() - started
    try:
        still = await until_settled(socks, PER_IP, 5.0)
        rss_after = push.rss_kb()
        m = await push.metrics()
        # Everyone else connects as usual, on every transport.
        project = project_id()
        ws = await subscribed(push.port, project)
        ws.close()
        status, body = await push.get("/socket.io/?EIO=4&transport=polling")
        assert status == 200 and body.startswith(b"0{"), (status, body)
    finally:
        for s in socks:
            s.close()
    print(
        f"\n1,100 silent sockets opened in {opened:.2f} s: {still} left open, "
        f"pending_refused {m['tidings_push_pending_refused_total']:.0f}, "
        f"RSS {rss_before} -> {rss_after} KB"
    )
    assert still == PER_IP, still
    assert m["tidings_push_pending_refused_total"] >= 1100 - PER_IP, m
    assert rss_after - rss_before < RSS_BOUND_KB


async def test_silent_sockets_from_many_addresses_push_out_only_the_oldest(
    push: PushProcess,
) -> None:
    sources = [f"127.0.7.{i}" for i in range(1, 21)]
    evicted_before = (await push.metrics())["tidings_push_pending_evicted_total"]
    socks = [await silent(push.port, sources[i % 20]) for i in range(600)]
    try:
        still = await until_settled(socks, MAX_PENDING, 5.0)
        open_flags = [not closed(s) for s in socks]
        m = await push.metrics()
        # The newest stayed; the oldest were closed to make room.
        assert all(open_flags[-150:]), open_flags.count(True)
        assert not any(open_flags[:350]), open_flags.count(True)
        # Real clients get in while the attack goes on: each new silent socket
        # pushes out an old one, never a client with a token.
        keep_up = asyncio.ensure_future(_keep_opening(push, sources, socks))
        try:
            project = project_id()
            clients = [await subscribed(push.port, project) for _ in range(20)]
            await asyncio.sleep(0.3)
            for ws in clients:
                ws.send_json({"type": "refresh", "token": token(projects=[project])})
                assert (await ws.message())["type"] == "subscribed"
                ws.close()
        finally:
            keep_up.cancel()
    finally:
        for s in socks:
            s.close()
    assert still <= MAX_PENDING, still
    assert m["tidings_push_pending_evicted_total"] - evicted_before >= 600 - MAX_PENDING, m


async def _keep_opening(push: PushProcess, sources: list[str], socks: list[socket.socket]) -> None:
    i = 0
    while True:
        socks.append(await silent(push.port, sources[i % len(sources)]))
        i += 1
        if i % 20 == 0:
            await asyncio.sleep(0.01)


async def test_clients_with_a_token_still_reach_max_connections_under_a_silent_attack(
    push: PushProcess,
) -> None:
    socks = [await silent(push.port, f"127.0.8.{1 + i % 5}") for i in range(MAX_PENDING)]
    clients: list[RawWebSocket] = []
    try:
        project = project_id()
        clients = [await subscribed(push.port, project) for _ in range(MAX_CONNECTIONS)]
        m = await push.metrics()
        assert m['tidings_push_connections{transport="ws"}'] == MAX_CONNECTIONS, m
        extra = await RawWebSocket.connect(push.port)
        assert (await extra.close_code())[0] == CloseCode.TRY_AGAIN_LATER
        extra.close()
    finally:
        for ws in clients:
            ws.close()
        for s in socks:
            s.close()
