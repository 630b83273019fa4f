"""Revocations reach push servers that were not listening when they were published:
the app keeps each ``revoke`` in the broker, and a push server applies the kept
ones whenever its link comes up (start, reconnect)."""

from __future__ import annotations

import asyncio
import os
import random
import time

import orjson
import pytest
import websockets

from tests.push.conftest import FAST, KEYS
from tidings.broker.base import Publisher, Subscriber
from tidings.broker.memory import MemoryBroker
from tidings.broker.redis_publisher import RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.protocol import control
from tidings.protocol.tokens import LEEWAY_SECONDS, sign_push_token
from tidings.push.server import PushServer

KEEP = 600.0


async def subscribe(port: int, token: str, projects: dict[str, int]) -> list[dict[str, object]]:
    """The subscriber's first messages: ``subscribed`` and any ``revoked``."""
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws") as ws:
        hello = {"type": "subscribe", "token": token, "projects": projects}
        await ws.send(orjson.dumps(hello).decode())
        seen = [orjson.loads(await asyncio.wait_for(ws.recv(), 5))]
        try:
            while True:
                seen.append(orjson.loads(await asyncio.wait_for(ws.recv(), 0.5)))
        except TimeoutError:
            return seen


async def old_token_is_refused_by_a_server_started_later(
    publisher: Publisher, subscriber: Subscriber
) -> None:
    user, kept, lost = random.randrange(10**6, 10**9), 10**9 + 1, 10**9 + 2
    removed_at = time.time() - 30
    old, _ = sign_push_token(KEYS, user, [kept, lost], now=removed_at - 60)
    fresh, _ = sign_push_token(KEYS, user, [kept, lost], now=removed_at + LEEWAY_SECONDS + 1)
    await publisher.record_revocation(control.revoke(user, lost, removed_at), removed_at, KEEP)

    server = PushServer(FAST, subscriber, KEYS)
    await server.start("127.0.0.1", 0)
    try:
        deadline = time.monotonic() + 5
        while server.counters.revocations_received == 0:
            assert time.monotonic() < deadline, "the kept revocation was never replayed"
            await asyncio.sleep(0.02)
        seen = await subscribe(server.port, old, {str(kept): 0, str(lost): 0})
        assert seen[0]["type"] == "subscribed"
        assert seen[0]["projects"] == {str(kept): 0}
        assert {"type": "revoked", "project": lost} in seen
        # A token signed after the removal (the user was added back) is not refused.
        seen = await subscribe(server.port, fresh, {str(kept): 0, str(lost): 0})
        assert seen[0]["projects"] == {str(kept): 0, str(lost): 0}
    finally:
        await server.close()


async def test_memory_broker_replays_kept_revocations_to_a_new_server() -> None:
    broker = MemoryBroker()
    await old_token_is_refused_by_a_server_started_later(broker, broker.subscriber())


@pytest.mark.redis
async def test_redis_replays_kept_revocations_to_a_new_server(redis_url: str) -> None:
    publisher = RedisPublisher.from_url(redis_url)
    subscriber = RedisSubscriber(redis_url, client_name=f"tidings-revocations-{os.getpid()}")
    try:
        await old_token_is_refused_by_a_server_started_later(publisher, subscriber)
    finally:
        await publisher.close()


@pytest.mark.redis
async def test_kept_revocations_expire_after_a_token_lifetime(redis_url: str) -> None:
    publisher = RedisPublisher.from_url(redis_url)
    try:
        now = time.time()
        user = random.randrange(10**6, 10**9)
        stale = control.revoke(user, 1, now - 100)
        recent = control.revoke(user, 2, now)
        await publisher.record_revocation(stale, now - 100, 50)
        await publisher.record_revocation(recent, now, 50)
        kept = await publisher.recent_revocations(now - 1000)
        assert recent in kept and stale not in kept
        assert recent not in await publisher.recent_revocations(now)
    finally:
        await publisher.close()


async def test_memory_broker_forgets_expired_revocations() -> None:
    broker = MemoryBroker()
    now = time.time()
    await broker.record_revocation(b"old", now - 100, 50)
    await broker.record_revocation(b"new", now, 50)
    assert await broker.recent_revocations(now - 1000) == [b"new"]
