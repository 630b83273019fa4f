"""The publisher library, sync and asyncio, against real Redis (one node, and the
shared cluster with sharded pub/sub) and a real push server in-process: a
subscribed WebSocket client receives what the library publishes."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import redis.asyncio as redis
import websockets

from tests.broker.cluster import require_cluster
from tests.push.conftest import FAST, KEYS
from tests.support import free_port, until
from tidings.broker.redis_config import RedisConfig
from tidings.broker.redis_publisher import RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.broker.redis_sync import SyncRedisPublisher
from tidings.protocol.channels import REVOCATIONS_KEY, project_channel, version_key
from tidings.protocol.push import ServerState
from tidings.publish import (
    AsyncPushPublisher,
    Outcome,
    PublishFailed,
    PushPublisher,
    Retry,
    sign_push_token,
)
from tidings.publish.sync import Heartbeat
from tidings.push.server import PushServer

pytestmark = pytest.mark.redis

TIMEOUT = 10.0


class Either:
    """One publisher, sync (run on a thread, as a WSGI app would) or asyncio."""

    def __init__(self, flavour: str, url: str, *, sharded: bool = False, **kw: Any) -> None:
        self.sync = (
            PushPublisher.connect(url, sharded=sharded, env={}, **kw) if flavour == "sync" else None
        )
        self.aio = (
            None if self.sync else AsyncPushPublisher.connect(url, sharded=sharded, env={}, **kw)
        )

    async def poke(self, project: int, version: int, **kw: Any) -> Outcome:
        if self.sync is not None:
            return await asyncio.to_thread(self.sync.poke, project, version, **kw)
        assert self.aio is not None
        return await self.aio.poke(project, version, **kw)

    async def revoke(self, user: int, project: int, **kw: Any) -> None:
        if self.sync is not None:
            await asyncio.to_thread(self.sync.revoke, user, project, **kw)
        else:
            assert self.aio is not None
            await self.aio.revoke(user, project, **kw)

    async def close(self) -> None:
        if self.sync is not None:
            self.sync.close()
        else:
            assert self.aio is not None
            await self.aio.close()


class Stack:
    """A push server on ``url`` and what it has confirmed subscribing to."""

    def __init__(self, server: PushServer, confirmed: set[str]) -> None:
        self.server = server
        self.confirmed = confirmed

    async def live(self, project: int) -> None:
        """Until Redis confirmed the server's SUBSCRIBE: a poke published before
        could be missed (and then only recovered from the version key)."""
        channel = project_channel(project)
        await until(lambda: channel in self.confirmed, TIMEOUT, f"{channel} confirmed")


async def start_stack(url: str, sharded: bool, **settings: Any) -> Stack:
    subscriber = RedisSubscriber(
        url,
        sharded=sharded,
        ping_after=1.0,
        dead_after=2.0,
        backoff_max=0.5,
        client_name=f"tidings-publish-test-{os.getpid()}",
    )
    server = PushServer(FAST.with_(audit_interval=60.0, **settings), subscriber, KEYS)
    await server.start("127.0.0.1", 0)
    confirmed: set[str] = set()
    hears = subscriber.on_subscribed
    assert hears is not None

    def on_subscribed(channel: str) -> None:
        hears(channel)
        confirmed.add(channel)

    subscriber.on_subscribed = on_subscribed
    await until(lambda: server.hub.state is ServerState.OK, TIMEOUT, "server ready")
    return Stack(server, confirmed)


@pytest.fixture(params=["single", "cluster"])
async def stack(request: pytest.FixtureRequest) -> AsyncIterator[tuple[str, bool, Stack]]:
    """``(url, sharded, stack)``: one Redis with PUBLISH, the cluster with SPUBLISH."""
    if request.param == "single":
        url, sharded = request.getfixturevalue("redis_url"), False
    else:
        url, sharded = require_cluster(), True
    found = await start_stack(url, sharded)
    try:
        yield url, sharded, found
    finally:
        await found.server.close()


async def recv(ws: Any, kind: str) -> dict[str, Any]:
    async def scan() -> dict[str, Any]:
        while True:
            message: dict[str, Any] = orjson.loads(await ws.recv())
            if message["type"] == kind:
                return message

    return await asyncio.wait_for(scan(), TIMEOUT)


async def forget(url: str, project: int) -> None:
    pub = RedisPublisher.from_url(url)
    try:
        client: Any = pub._redis  # the same client class the URL calls for
        await client.delete(version_key(project))
    finally:
        await pub.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_poke_reaches_a_subscribed_client_and_never_goes_backwards(
    stack: tuple[str, bool, Stack], flavour: str
) -> None:
    url, sharded, found = stack
    project, user = random.randint(10**9, 2 * 10**9), random.randint(1, 10**6)
    token, _ = sign_push_token(KEYS, user, [project])
    pub = Either(flavour, url, sharded=sharded)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{found.server.port}/ws") as ws:
            hello = {"type": "subscribe", "token": token, "projects": {str(project): 0}}
            await ws.send(orjson.dumps(hello).decode())
            await recv(ws, "subscribed")
            await found.live(project)

            first = await pub.poke(project, 2, events=None)
            assert first.published and first.stored == 2
            poke = await recv(ws, "poke")
            assert (poke["project"], poke["version"]) == (project, 2)

            # Going backwards: the key keeps 2, nothing is published.
            older = await pub.poke(project, 1)
            assert older.stale and older.stored == 2
            await pub.poke(project, 3)
            poke = await recv(ws, "poke")
            assert poke["version"] == 3, "the stale poke for version 1 was published"
        # Every poke came through PUBLISH/SPUBLISH, none from the version key.
        assert found.server.counters.recovery_pokes == 0
    finally:
        await pub.close()
        await forget(url, project)


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_revocation_reaches_a_subscribed_client_and_is_kept(
    redis_url: str, flavour: str
) -> None:
    found = await start_stack(redis_url, False)
    kept, lost = random.randint(10**9, 2 * 10**9), random.randint(2 * 10**9, 3 * 10**9)
    user = random.randint(10**6, 10**9)
    token, claims = sign_push_token(KEYS, user, [kept, lost])
    pub = Either(flavour, redis_url, token_ttl=60)
    try:
        async with websockets.connect(f"ws://127.0.0.1:{found.server.port}/ws") as ws:
            held = {str(kept): 0, str(lost): 0}
            await ws.send(
                orjson.dumps({"type": "subscribe", "token": token, "projects": held}).decode()
            )
            await recv(ws, "subscribed")
            await pub.revoke(user, lost, at=claims.issued_at + 1)
            assert await recv(ws, "revoked") == {"type": "revoked", "project": lost}
        client = redis.Redis.from_url(redis_url)
        try:
            kept_messages: Any = await client.zrangebyscore(
                REVOCATIONS_KEY, claims.issued_at, "+inf"
            )
            assert any(orjson.loads(m)["user"] == user for m in kept_messages)
            assert 0 < await client.ttl(REVOCATIONS_KEY) <= 60 + 2 * 5 + 1
        finally:
            await client.aclose()
    finally:
        await pub.close()
        await found.server.close()


class CountingPublisher(RedisPublisher):
    attempts = 0

    async def set_version(self, project_id: int, version: int) -> int:
        self.attempts += 1
        return await super().set_version(project_id, version)


async def test_async_retries_are_bounded_and_the_error_says_what_failed() -> None:
    dead = CountingPublisher.from_url(f"redis://127.0.0.1:{free_port()}/0")
    assert isinstance(dead, CountingPublisher)
    pub = AsyncPushPublisher(dead, retry=Retry(attempts=3, base=0.01, cap=0.02), timeout=2.0)
    try:
        with pytest.raises(PublishFailed) as failed:
            await pub.poke(5, 1)
        assert dead.attempts == 3 and failed.value.attempts == 3
        assert str(failed.value).startswith("poke project=5 version=1: not published after 3")
        assert "ConnectionError" in str(failed.value)
    finally:
        await pub.close()


def test_sync_retries_are_bounded_and_the_error_says_what_failed() -> None:
    waits: list[float] = []
    url = f"redis://127.0.0.1:{free_port()}/0"
    broker = SyncRedisPublisher.from_config(RedisConfig.parse(url))
    # No real wait: each call is a wait before an attempt after the first.
    pub = PushPublisher(broker, retry=Retry(attempts=4, base=0.01, cap=0.02), sleep=waits.append)
    try:
        with pytest.raises(PublishFailed) as failed:
            pub.revoke(3, 9, at=1.0)
        assert len(waits) == 3 and all(0 <= w <= 0.02 for w in waits)
        assert str(failed.value).startswith("revoke user=3 project=9: not published after 4")
        assert "ConnectionError" in str(failed.value)
    finally:
        pub.close()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_the_heartbeat_carries_the_kill_switch_and_its_silence_is_noticed(
    own_redis: str, flavour: str
) -> None:
    """On a Redis of its own: a kill switch or a silent app on the shared one would
    degrade every push server listening there (other tests' too)."""
    redis_url = own_redis
    found = await start_stack(redis_url, False, app_deaf_after=1.0, app_check_interval=0.1)
    state = found.server.hub

    async def becomes(wanted: ServerState, why: str) -> None:
        await until(lambda: state.state is wanted, TIMEOUT, why)

    off = False
    task: asyncio.Task[None] | None = None
    beating: Heartbeat | None = None
    sync = PushPublisher.connect(redis_url, env={}) if flavour == "sync" else None
    aio = None if sync else AsyncPushPublisher.connect(redis_url, env={})
    try:
        if sync is not None:
            beating = sync.start_heartbeat(push_off=lambda: off, interval=0.2)
        else:
            assert aio is not None
            task = asyncio.create_task(aio.heartbeat(push_off=lambda: off, interval=0.2))
        off = True
        await becomes(ServerState.DEGRADED, "the kill switch reached the push server")
        off = False
        await becomes(ServerState.OK, "push back on")
        # Silent (its connections still open: cut off, not dead): degraded.
        if beating is not None:
            beating.stop(bye=False)
        elif task is not None:
            task.cancel()
        await becomes(ServerState.DEGRADED, "a silent app noticed")
        if sync is not None:
            await asyncio.to_thread(sync.bye)
        else:
            assert aio is not None
            await aio.bye()
        await becomes(ServerState.OK, "app_bye: the silence is on purpose")
    finally:
        if task is not None:
            task.cancel()
        if sync is not None:
            sync.close()
        if aio is not None:
            await aio.close()
        await found.server.close()
