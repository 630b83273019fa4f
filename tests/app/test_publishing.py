"""Pokes reach a real Redis subscriber after commit; a broker failure never fails a command."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import orjson
import pytest
import redis.asyncio as redis

from tests.app.conftest import Stack, StackFactory
from tests.app.test_api import make_project
from tests.support import until
from tidings.app import publisher
from tidings.broker import redis_publisher
from tidings.protocol import control
from tidings.protocol.channels import project_channel, version_key
from tidings.protocol.poke import Poke, decode_poke


async def poke_at(pubsub: redis.client.PubSub, version: int, within: float = 5.0) -> Poke:
    """The poke for ``version`` (the project's creation poke may arrive first)."""

    async def wait() -> Poke:
        while True:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is not None:
                poke = decode_poke(message["data"])
                if poke.version == version:
                    return poke

    return await asyncio.wait_for(wait(), within)


@dataclass
class Watched:
    """A project of a fresh user's, its HTTP client, and a Redis subscriber on its channel."""

    http: httpx.AsyncClient
    pid: int
    pubsub: redis.client.PubSub
    redis: redis.Redis


@contextlib.asynccontextmanager
async def watched_project(stack: Stack, redis_url: str) -> AsyncIterator[Watched]:
    _owner, token = await stack.user("ada@x.io")
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    try:
        async with stack.client(token) as http:
            pid = (await http.post("/api/projects", json={"name": "P"})).json()["project"]
            await pubsub.subscribe(project_channel(pid))
            await pubsub.get_message(timeout=1.0)  # subscribe confirmation
            yield Watched(http, pid, pubsub, client)
    finally:
        await pubsub.aclose()
        await client.aclose()


async def test_poke_is_published_after_commit_with_the_version_key(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    stack = await make_stack(sqlite_url, redis_url=redis_url)
    async with watched_project(stack, redis_url) as w:
        r = await w.http.post(
            f"/api/projects/{w.pid}/commands",
            json={"command": {"type": "create_story", "title": "x"}},
        )
        committed_ts = r.json()["event"]["ts"]
        poke = await poke_at(w.pubsub, 2)
        assert (poke.project, poke.version, poke.ts) == (w.pid, 2, committed_ts)
        assert poke.events is None
        assert await w.redis.get(version_key(w.pid)) == b"2"
        # The poll path reads the version from Redis: another app process agrees at once.
        r = await w.http.get(f"/api/projects/{w.pid}/events?since=2")
        assert r.json()["version"] == 2
        await w.redis.delete(version_key(w.pid))


async def test_full_push_pokes_carry_the_events(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    stack = await make_stack(sqlite_url, redis_url=redis_url, full_push=True)
    async with watched_project(stack, redis_url) as w:
        await w.http.post(
            f"/api/projects/{w.pid}/commands",
            json={"command": {"type": "create_story", "title": "x"}},
        )
        poke = await poke_at(w.pubsub, 2)
        polled = (await w.http.get(f"/api/projects/{w.pid}/events?since=1")).json()["events"]
    assert poke.events is not None and list(poke.events) == polled


async def test_versions_shared_through_redis_reach_another_app_process(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    one = await make_stack(sqlite_url, redis_url=redis_url)
    two = await make_stack(sqlite_url, redis_url=redis_url)
    p = await make_project(one)
    async with two.client(p["tokens"]["member"]) as reader:
        assert (await reader.get(f"/api/projects/{p['pid']}/events?since=4")).json()["version"] == 4
        async with one.client(p["tokens"]["owner"]) as writer:
            await writer.post(
                f"/api/projects/{p['pid']}/commands",
                json={"command": {"type": "create_story", "title": "new"}},
            )
        url = f"/api/projects/{p['pid']}/events?since=4"

        async def seen() -> bool:  # the publisher's worker sets the key after commit
            return bool((await reader.get(url)).json()["version"] == 5)

        await until(seen, 5.0, "the new version through Redis")
        body = (await reader.get(url)).json()
    assert body["version"] == 5 and [e["version"] for e in body["events"]] == [5]


async def test_a_dead_broker_never_fails_a_command(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    # Nothing listens on port 1: every publish fails fast.
    stack = await make_stack(sqlite_url, redis_url="redis://127.0.0.1:1/0")
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(
            f"/api/projects/{p['pid']}/commands",
            json={"command": {"type": "create_story", "title": "still works"}},
        )
        assert r.status_code == 200 and r.json()["version"] == 5
        polled = await http.get(f"/api/projects/{p['pid']}/events?since=4")
        assert [e["version"] for e in polled.json()["events"]] == [5]
    await stack.services.pokes.close()
    assert stack.services.metrics.publish_failures._value.get() >= 1
    assert orjson.loads(r.content)["event"]["data"]["story"]["title"] == "still works"


async def test_a_member_removal_is_kept_for_push_servers_that_start_later(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    stack = await make_stack(sqlite_url, redis_url=redis_url)
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        r = await http.post(
            f"/api/projects/{p['pid']}/commands",
            json={"command": {"type": "remove_member", "user_id": p["ids"]["member"]}},
        )
        assert r.status_code == 200, r.text
        removed_at = r.json()["event"]["ts"]
    expected = (p["ids"]["member"], p["pid"], removed_at)

    async def kept() -> None:
        while True:
            found = await stack.services.broker.recent_revocations(removed_at - 1)
            if expected in [control.parse_revoke(m) for m in found]:
                return
            await asyncio.sleep(0.05)

    await asyncio.wait_for(kept(), 5)


async def test_a_publish_that_hangs_is_abandoned_and_kept_for_the_retry(
    make_stack: StackFactory, sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A server that accepts connections and never answers: Redis stalled.
    held: list[asyncio.StreamWriter] = []

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    # Only the publisher's own bound can end the wait: no socket timeout in time.
    monkeypatch.setattr(redis_publisher, "SOCKET_TIMEOUT", 60.0)
    monkeypatch.setattr(publisher, "PUBLISH_TIMEOUT", 0.4)
    monkeypatch.setattr(publisher, "WATCH_INTERVAL", 0.05)
    try:
        stack = await make_stack(sqlite_url, redis_url=f"redis://127.0.0.1:{port}/0")
        p = await make_project(stack)
        metrics, pokes = stack.services.metrics, stack.services.pokes
        before = metrics.publish_failures._value.get()
        loop = asyncio.get_running_loop()
        async with stack.client(p["tokens"]["owner"]) as http:
            sent_at = loop.time()
            r = await http.post(
                f"/api/projects/{p['pid']}/commands",
                json={"command": {"type": "create_story", "title": "during a stall"}},
            )
            assert r.status_code == 200  # the command never waits for the broker
            # Every poke queued so far is abandoned in turn, each after 0.4-0.45 s.
            failed = lambda: metrics.publish_failures._value.get() >= before + 1  # noqa: E731
            await until(failed, 10, "the stalled publish abandoned")
            assert loop.time() - sent_at >= 0.4
            await until(lambda: pokes.failing >= 1, 10, "the poke kept for the retry")
            assert pokes.failing <= 1  # one project: the latest poke kept
    finally:
        server.close()
        for writer in held:
            writer.close()
