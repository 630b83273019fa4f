"""Push servers on real Redis, published to the way the app does (RedisPublisher + encode_poke).

Project ids are random and large so parallel runs and colleagues' tests on the
same Redis never meet; version keys are deleted afterwards. The pause test stops
the Redis process for ~3 s and always resumes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import pytest
import redis.asyncio as redis
import websockets

from tests.support import until
from tidings.broker.redis_publisher import RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.protocol.channels import project_channel, version_key
from tidings.protocol.errors import CloseCode
from tidings.protocol.poke import Poke, encode_poke
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import KeyRing, sign_push_token
from tidings.push.server import PushServer
from tidings.testing.clients import RawSse, RawWebSocket
from tidings.testing.processes import start_push_any_port, stop_async

from .conftest import FAST, KEYS, token

pytestmark = pytest.mark.redis

TIMEOUT = 10.0


def project_ids(n: int) -> list[int]:
    base = random.randint(10**9, 2 * 10**9)
    return [base + i for i in range(n)]


class Cluster:
    """Push servers on Redis plus the app-side publisher; everything closed on exit."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.publisher = RedisPublisher.from_url(url)
        self.servers: list[PushServer] = []
        self.projects: list[int] = []
        #: Per server, the channels whose SUBSCRIBE Redis has confirmed to it.
        self.confirmed: dict[PushServer, set[str]] = {}

    def ids(self, n: int) -> list[int]:
        ids = project_ids(n)
        self.projects += ids
        return ids

    async def server(
        self,
        subscriber_class: type[RedisSubscriber] = RedisSubscriber,
        *,
        sharded: bool = False,
        **settings: Any,
    ) -> PushServer:
        subscriber = subscriber_class(
            self.url,
            sharded=sharded,
            ping_after=1.0,
            dead_after=2.0,
            backoff_max=0.5,
            client_name=f"tidings-push-test-{os.getpid()}",
        )
        server = PushServer(FAST.with_(**settings), subscriber, KEYS)
        self.servers.append(server)
        await server.start("127.0.0.1", 0)
        self._record_confirmations(server)
        await until(lambda: server.hub.state is ServerState.OK, TIMEOUT, "server ready")
        return server

    def _record_confirmations(self, server: PushServer) -> None:
        heard = self.confirmed[server] = set()
        server_hears = server.subscriber.on_subscribed
        assert server_hears is not None

        def confirmed(channel: str) -> None:
            server_hears(channel)  # first: recorded means the server has acted on it
            heard.add(channel)

        server.subscriber.on_subscribed = confirmed

    async def live(self, server: PushServer, *projects: int) -> None:
        """Wait until Redis has confirmed the server's SUBSCRIBE of each project.

        The subscriber sends SUBSCRIBE without waiting for the reply, so a poke
        published before the confirmation may be lost (on purpose, in some tests).
        """
        channels = {project_channel(p) for p in projects}
        await until(
            lambda: channels <= self.confirmed[server], TIMEOUT, f"{sorted(channels)} confirmed"
        )

    async def poke(self, project: int, version: int, **kw: Any) -> None:
        """What the app does after a commit: version key first, then the poke."""
        await self.publisher.set_version(project, version)
        await self.publisher.publish(
            project_channel(project), encode_poke(Poke(project, version, time.time(), **kw))
        )

    async def close(self) -> None:
        for server in self.servers:
            await server.close()
        if self.projects:
            client = redis.Redis.from_url(self.url)
            await client.delete(*[version_key(p) for p in self.projects])
            await client.aclose()
        await self.publisher.close()


@pytest.fixture
async def cluster(redis_url: str) -> AsyncIterator[Cluster]:
    c = Cluster(redis_url)
    try:
        yield c
    finally:
        await asyncio.wait_for(c.close(), 30)


async def recv_json(ws: Any, within: float = TIMEOUT) -> dict[str, Any]:
    body: dict[str, Any] = orjson.loads(await asyncio.wait_for(ws.recv(), within))
    return body


async def next_of(
    read: Callable[[], Awaitable[dict[str, Any]]], kind: str, within: float = TIMEOUT
) -> dict[str, Any]:
    async def scan() -> dict[str, Any]:
        while True:
            message = await read()
            if message["type"] == kind:
                return message

    return await asyncio.wait_for(scan(), within)


def subscribe_msg(projects: dict[int, int], **kw: Any) -> str:
    tok = token(projects=list(projects), **kw)
    held = {str(p): v for p, v in projects.items()}
    return orjson.dumps({"type": "subscribe", "token": tok, "projects": held}).decode()


async def test_two_servers_deliver_pokes_to_each_transport_for_its_projects_only(
    cluster: Cluster,
) -> None:
    a, b = await cluster.server(), await cluster.server()
    p1, p2 = cluster.ids(2)
    async with (
        websockets.connect(f"ws://127.0.0.1:{a.port}/ws") as on_a,
        websockets.connect(f"ws://127.0.0.1:{b.port}/ws") as on_b,
    ):
        await on_a.send(subscribe_msg({p1: 0}))
        await on_b.send(subscribe_msg({p1: 0, p2: 0}))
        tok = token(projects=[p2])
        sse = await RawSse.connect(b.port, f"token={tok}&p={p2}:0")
        reads: list[Callable[[], Awaitable[dict[str, Any]]]] = [
            lambda: recv_json(on_a),
            lambda: recv_json(on_b),
            sse.event,
        ]
        for read in reads:
            assert (await read())["type"] == "subscribed"
        await until(
            lambda: a.hub.watchers(p1) == 1 and b.hub.watchers(p2) == 2, TIMEOUT, "subscribed"
        )
        await cluster.live(a, p1)
        await cluster.live(b, p1, p2)

        await cluster.poke(p1, 1)
        await cluster.poke(p2, 1)
        await cluster.poke(p1, 2)
        got_a = [(m["project"], m["version"]) for m in [await recv_json(on_a) for _ in range(2)]]
        got_b = [(m["project"], m["version"]) for m in [await recv_json(on_b) for _ in range(3)]]
        got_sse = await sse.event()
        assert got_a == [(p1, 1), (p1, 2)]
        assert sorted(got_b) == [(p1, 1), (p1, 2), (p2, 1)]
        assert (got_sse["project"], got_sse["version"]) == (p2, 1)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(on_a.recv(), 0.3)
        sse.close()


async def test_full_push_events_travel_through_redis(cluster: Cluster) -> None:
    server = await cluster.server()
    (p,) = cluster.ids(1)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 1}))
        await recv_json(ws)
        await cluster.live(server, p)
        event = {
            "version": 2,
            "type": "story_deleted",
            "data": {"story_id": 3},
            "actor": 1,
            "ts": 1.0,
        }
        await cluster.poke(p, 2, events=(event,))
        assert (await recv_json(ws))["events"] == [event]


async def test_a_client_behind_the_version_key_is_poked_on_subscribe(cluster: Cluster) -> None:
    server = await cluster.server()
    (p,) = cluster.ids(1)
    await cluster.publisher.set_version(p, 10)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 8}))
        assert (await recv_json(ws))["type"] == "subscribed"
        poke = await recv_json(ws)
        assert (poke["project"], poke["version"]) == (p, 10)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 10}))
        await recv_json(ws)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(ws.recv(), 0.3)


async def test_the_audit_pokes_a_client_behind_a_key_that_rose_without_a_poke(
    cluster: Cluster,
) -> None:
    audit = 0.5
    server = await cluster.server(audit_interval=audit)
    (p,) = cluster.ids(1)
    await cluster.publisher.set_version(p, 3)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 3}))
        assert (await recv_json(ws))["type"] == "subscribed"
        # Both checks (on subscribe, on Redis's confirmation) read 3: nothing to send.
        await cluster.live(server, p)
        await until(lambda: server.versions.idle, TIMEOUT, "the version reads")
        # The version key rises and no poke is ever published (lost on its way to
        # this server, or the publisher's): no failure anyone could see.
        await cluster.publisher.set_version(p, 5)
        started = time.monotonic()
        poke = await next_of(lambda: recv_json(ws), "poke", audit + 2)
        assert (poke["project"], poke["version"]) == (p, 5)
        assert time.monotonic() - started < audit + 0.5
        assert server.counters.audits >= 1 and server.counters.recovery_pokes == 1


class SlowSubscribe(RedisSubscriber):
    """A link whose SUBSCRIBE commands leave late (a busy connection, a slow
    network): the window in which a commit can slip between a subscription's
    version read and the moment the subscription is live."""

    delay = 0.0

    async def apply(self, link: Any, pubsub: Any) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        await super().apply(link, pubsub)


@pytest.mark.parametrize("sharded", [False, True], ids=["subscribe", "ssubscribe"])
async def test_a_commit_between_the_version_read_and_the_live_subscription_is_poked(
    cluster: Cluster, sharded: bool
) -> None:
    if sharded:
        await cluster.publisher.close()
        cluster.publisher = RedisPublisher.from_url(cluster.url, sharded=True)
    server = await cluster.server(SlowSubscribe, sharded=sharded, audit_interval=60.0)
    subscriber = server.subscriber
    assert isinstance(subscriber, SlowSubscribe)
    subscriber.delay = 0.8
    (p,) = cluster.ids(1)
    await cluster.publisher.set_version(p, 1)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 1}))
        assert (await recv_json(ws))["type"] == "subscribed"
        # The subscribe-time read (after 10 ms) found 1; the SUBSCRIBE leaves at 0.8 s.
        await until(lambda: server.versions.idle, TIMEOUT, "the subscribe-time read")
        assert project_channel(p) not in cluster.confirmed[server], "too late: SUBSCRIBE left"
        # Committed and published while the SUBSCRIBE has still not left: Redis
        # drops the publish for this server, only the key remembers it.
        await cluster.poke(p, 2)
        poke = await next_of(lambda: recv_json(ws), "poke", 3.0)
        assert (poke["project"], poke["version"]) == (p, 2)
        assert server.counters.audits == 0 and server.counters.recovery_pokes == 1


@pytest.mark.parametrize(
    ("make_token", "code"),
    [
        (lambda p: sign_push_token(KeyRing({"k1": b"f" * 32}), 1, [p])[0], CloseCode.UNAUTHORIZED),
        (lambda p: token(projects=[p], now=time.time() - 1000), CloseCode.UNAUTHORIZED),
        (lambda p: sign_push_token(KeyRing({"zz": b"a" * 32}), 1, [p])[0], CloseCode.UNAUTHORIZED),
        (lambda p: token(projects=[p + 1]), CloseCode.FORBIDDEN),
    ],
    ids=["forged", "expired", "wrong-kid", "other-project"],
)
async def test_bad_tokens_are_refused(
    cluster: Cluster, make_token: Callable[[int], str], code: int
) -> None:
    server = await cluster.server()
    (p,) = cluster.ids(1)
    ws = await RawWebSocket.connect(server.port)
    ws.send_json({"type": "subscribe", "token": make_token(p), "projects": {str(p): 0}})
    assert (await ws.close_code())[0] == code
    sse = await RawSse.connect(server.port, f"token={make_token(p)}&p={p}:0")
    assert sse.status == (401 if code == CloseCode.UNAUTHORIZED else 403)
    sse.close()


async def test_drain_spreads_reconnects_over_the_window(cluster: Cluster) -> None:
    old, new = await cluster.server(), await cluster.server()
    (p,) = cluster.ids(1)
    clients = []
    for _ in range(24):
        ws = await websockets.connect(f"ws://127.0.0.1:{old.port}/ws")
        await ws.send(subscribe_msg({p: 0}))
        await recv_json(ws)
        clients.append(ws)
    window = 2.0
    start = time.monotonic()
    drain = asyncio.create_task(old.drain(window))

    async def follow(ws: Any) -> tuple[float, float, int | None]:
        """Wait for drain, the close, then reconnect to the other server."""
        told = await next_of(lambda: recv_json(ws), "drain")
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(ws.recv(), window + 3)
        closed_at = time.monotonic() - start
        async with websockets.connect(f"ws://127.0.0.1:{new.port}/ws") as again:
            await again.send(subscribe_msg({p: 0}))
            await recv_json(again)
        return float(told["reconnect_after"]), closed_at, ws.close_code

    results = await asyncio.wait_for(asyncio.gather(*(follow(ws) for ws in clients)), 15)
    await asyncio.wait_for(drain, 10)
    delays = sorted(r[0] for r in results)
    assert all(0 <= d < window for d in delays)
    assert delays[-1] - delays[0] > window / 2, "reconnects are spread, not bunched"
    for delay, closed_at, code in results:
        assert code == CloseCode.GOING_AWAY
        assert delay - 0.2 <= closed_at <= delay + 0.6, (delay, closed_at)
    # The old server takes no new client: the upgrade, then 1013 (try again later).
    async with websockets.connect(f"ws://127.0.0.1:{old.port}/ws") as late:
        with contextlib.suppress(websockets.ConnectionClosed):
            await asyncio.wait_for(late.recv(), 5)
    assert late.close_code == CloseCode.TRY_AGAIN_LATER


def redis_pid(url: str) -> int:
    import redis as sync_redis

    client = sync_redis.Redis.from_url(url, socket_timeout=2)
    try:
        return int(client.info("server")["process_id"])
    finally:
        client.close()


class RawRedis:
    """A Redis connection that writes commands and reads replies by hand."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def send(self, *words: str) -> None:
        frame = f"*{len(words)}\r\n" + "".join(f"${len(w)}\r\n{w}\r\n" for w in words)
        self.writer.write(frame.encode())
        await self.writer.drain()


async def raw_redis(url: str) -> RawRedis:
    parts = urlsplit(url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port or 6379)
    conn = RawRedis(reader, writer)
    await conn.send("SELECT", parts.path.strip("/") or "0")
    assert await asyncio.wait_for(reader.readline(), 5) == b"+OK\r\n"
    return conn


async def test_paused_redis_degrades_clients_then_recovers_and_rechecks(cluster: Cluster) -> None:
    pid = redis_pid(cluster.url)
    server = await cluster.server(link_deaf_after=1.0)
    (p,) = cluster.ids(1)
    await cluster.publisher.set_version(p, 5)
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        await ws.send(subscribe_msg({p: 5}))
        await recv_json(ws)
        # A raw connection, ready before the pause: once its SET is written it
        # sits in Redis's socket, queued behind the pause with nothing to wait for.
        setter = await raw_redis(cluster.url)
        try:
            os.kill(pid, signal.SIGSTOP)
            try:
                degraded = await next_of(lambda: recv_json(ws), "heartbeat", within=5)
                assert degraded["state"] == "degraded"
                status = await http_status(server.port, "/readyz")
                assert status == 503
                # Queued behind the pause: applied as soon as Redis resumes, with no poke.
                await setter.send("SET", version_key(p), "6")
            finally:
                os.kill(pid, signal.SIGCONT)
            assert await asyncio.wait_for(setter.reader.readline(), 10) == b"+OK\r\n"
            recovered = await next_of(lambda: recv_json(ws), "heartbeat", within=10)
            assert recovered["state"] == "ok"
            poke = await next_of(lambda: recv_json(ws), "poke", within=5)
            assert poke["version"] == 6
            assert await http_status(server.port, "/readyz") == 200
        finally:
            os.kill(pid, signal.SIGCONT)
            setter.writer.close()


async def http_status(port: int, path: str) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(reader.readline(), 5)
        return int(line.split()[1])
    finally:
        writer.close()


async def test_a_client_that_never_reads_stays_bounded_and_others_are_unaffected(
    cluster: Cluster,
) -> None:
    send_buffer = 32 * 1024
    server = await cluster.server(send_buffer_bytes=send_buffer, slow_consumer_timeout=1.5)
    (p,) = cluster.ids(1)
    # A tiny receive window so the kernel cannot absorb the backlog for the client.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    sock.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=sock)
    stuck = RawWebSocket(reader, writer)
    stuck.writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await stuck.reader.readuntil(b"\r\n\r\n")
    stuck.send_json({"type": "subscribe", "token": token(projects=[p]), "projects": {str(p): 0}})
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws", max_size=2**20) as healthy:
        await healthy.send(subscribe_msg({p: 0}))
        await recv_json(healthy)
        await until(lambda: server.hub.watchers(p) == 2, TIMEOUT, "both subscribed")
        await cluster.live(server, p)
        big = {
            "version": 0,
            "type": "comment_edited",
            "data": {"story_id": 1, "comment_id": 2, "text": "x" * 10_000},
            "actor": 1,
            "ts": 1.0,
        }
        worst = 0
        last = 0
        for version in range(1, 301):
            await cluster.poke(p, version, events=({**big, "version": version},))
            last = version
            for conn in server.hub:
                transport = getattr(conn, "transport", None)
                if transport is not None and not transport.is_closing():
                    worst = max(worst, transport.get_write_buffer_size())
            if server.counters.slow_closes:
                break
            if version % 20 == 0:
                await asyncio.sleep(0.05)

        # Others are unaffected: the healthy client sees the latest version.
        async def latest() -> None:
            while (await recv_json(healthy))["version"] < last:
                pass

        await asyncio.wait_for(latest(), TIMEOUT)
        await until(lambda: server.counters.slow_closes == 1, 10, "slow client closed")
        assert server.counters.pokes_coalesced > 0
        # Bounded: the send buffer never held more than its limit plus one poke frame.
        assert send_buffer // 2 < worst <= send_buffer + 17 * 1024, worst
        assert server.hub.watchers(p) == 1
    stuck.close()


async def test_the_push_process_drains_on_sigterm_and_exits_cleanly(redis_url: str) -> None:
    """``tidings push`` as operators run it (uvloop, env configuration, signals)."""
    proc, port = await start_push_any_port(
        redis_url,
        KEYS.spec(),
        "--drain-window",
        "1",
        TIDINGS_ALLOWED_ORIGINS="http://localhost:8000",
    )
    try:
        (p,) = project_ids(1)
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws", origin=websockets.Origin("http://localhost:8000")
        ) as ws:
            await ws.send(subscribe_msg({p: 0}))
            # A state heartbeat may come first (the server's link may turn ok meanwhile).
            await next_of(lambda: recv_json(ws), "subscribed")
            proc.send_signal(signal.SIGTERM)
            told = await next_of(lambda: recv_json(ws), "drain")
            assert 0 <= told["reconnect_after"] < 1
            with contextlib.suppress(websockets.ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 5)
            assert ws.close_code == CloseCode.GOING_AWAY
        assert await asyncio.wait_for(proc.wait(), 15) == 0
    finally:
        await stop_async(proc)
