"""RedisSubscriber on real Redis: desired channels replayed after a dropped link, sharded mode."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tests.support import until
from tidings.broker.redis_publisher import RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber

pytestmark = pytest.mark.redis


class Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self.links: list[bool] = []

    def on_message(self, channel: str, data: bytes) -> None:
        self.messages.append((channel, data))

    def on_link(self, up: bool) -> None:
        self.links.append(up)


WAIT = 10.0  # seconds; what the tests wait for takes milliseconds on an idle machine


@pytest.fixture
async def admin(redis_url: str) -> AsyncIterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    yield client
    await client.aclose()


async def publish_until_heard(
    publisher: RedisPublisher, inbox: Inbox, channel: str, data: bytes
) -> None:
    """Publish until one arrives: a SUBSCRIBE may still be on its way."""
    deadline = time.monotonic() + 10
    while (channel, data) not in inbox.messages:
        assert time.monotonic() < deadline, f"{channel} never delivered"
        await publisher.publish(channel, data)
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("sharded", [False, True], ids=["pubsub", "sharded"])
async def test_channels_are_replayed_after_the_connection_is_killed(
    redis_url: str, admin: redis.Redis, sharded: bool
) -> None:
    name = f"tidings-test-{uuid.uuid4().hex[:8]}"
    sub = RedisSubscriber(redis_url, sharded=sharded, backoff_max=0.3, client_name=name)
    pub = RedisPublisher.from_url(redis_url, sharded=sharded)
    inbox = Inbox()
    a, b = f"tidings:test:{{{name}a}}", f"tidings:test:{{{name}b}}"
    try:
        sub.subscribe(a)
        sub.start(inbox.on_message, inbox.on_link)
        await until(lambda: inbox.links == [True], WAIT, "link up")
        sub.subscribe(b)
        sub.unsubscribe(a)
        await publish_until_heard(pub, inbox, b, b"1")
        clients = await admin.client_list()
        (mine,) = [c for c in clients if c.get("name") == name]
        await admin.client_kill_filter(_id=mine["id"])
        await until(lambda: inbox.links == [True, False, True], WAIT, "reconnected")
        assert sub.reconnects >= 1
        await publish_until_heard(pub, inbox, b, b"2")
        await pub.publish(a, b"not subscribed any more")
        await asyncio.sleep(0.2)
        assert all(channel == b for channel, _ in inbox.messages)
    finally:
        await asyncio.wait_for(sub.close(), 10)
        await pub.close()


async def test_an_unreachable_redis_is_retried_with_backoff_and_never_blocks(
    admin: redis.Redis,
) -> None:
    # Nothing listens on port 1: every attempt fails fast; close() still returns promptly.
    sub = RedisSubscriber("redis://127.0.0.1:1/0", backoff_base=0.01, backoff_max=0.05)
    inbox = Inbox()
    sub.subscribe("tidings:test:x")
    sub.start(inbox.on_message, inbox.on_link)
    await until(lambda: sub.reconnects >= 3, WAIT, "retries")
    assert inbox.links == []
    with pytest.raises((OSError, TimeoutError, redis.ConnectionError)):
        await sub.get_versions([1])
    await asyncio.wait_for(sub.close(), 5)


async def test_a_backlog_of_messages_leaves_the_loop_its_turns(
    redis_url: str, admin: redis.Redis
) -> None:
    """While Redis has a backlog and each message costs a fan-out, sockets still get
    accepted and read between messages, not only once the backlog is gone (a storm's
    survivor once left its listener's queue unaccepted for minutes)."""
    name = f"tidings-test-{uuid.uuid4().hex[:8]}"
    channel = f"tidings:test:{{{name}}}"
    backlog, knock_at = 300, 20
    sub = RedisSubscriber(redis_url, client_name=name)
    heard: list[bytes] = []
    knock = threading.Event()
    answered_at: list[int] = []

    def on_message(channel: str, data: bytes) -> None:
        heard.append(data)
        if len(heard) == knock_at:
            knock.set()
        time.sleep(0.005)  # the fan-out of one message to many clients, loop blocked

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        answered_at.append(len(heard))
        writer.write(b"ok\n")
        await writer.drain()
        writer.close()

    def client(port: int, reply: list[bytes]) -> None:
        assert knock.wait(WAIT)
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(b"hello\n")
            reply.append(sock.recv(16))

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    links: list[bool] = []
    reply: list[bytes] = []
    try:
        sub.subscribe(channel)
        sub.start(on_message, links.append)
        await until(lambda: links == [True], WAIT, "link up")
        pipe = admin.pipeline(transaction=False)
        for k in range(backlog):
            pipe.publish(channel, str(k).encode())
        thread = threading.Thread(target=client, args=(port, reply), daemon=True)
        thread.start()
        await pipe.execute()
        await until(lambda: len(heard) == backlog, WAIT, "the backlog delivered")
        await asyncio.to_thread(thread.join, WAIT)
        assert reply == [b"ok\n"]
        # Answered a few messages after the knock, long before the backlog's end.
        assert answered_at and answered_at[0] < backlog // 2, answered_at
    finally:
        server.close()
        await asyncio.wait_for(sub.close(), 10)
