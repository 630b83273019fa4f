"""A version key left behind by a lost write is raised by the next poll, not after its expiry."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from tests.app.conftest import StackFactory
from tests.app.test_api import make_project
from tidings.protocol.channels import version_key


async def test_a_key_behind_a_version_this_process_committed_is_raised_by_the_next_poll(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    stack = await make_stack(sqlite_url, redis_url=redis_url)
    p = await make_project(stack)
    pid = p["pid"]
    client = redis.Redis.from_url(redis_url)
    try:
        async with stack.client(p["tokens"]["owner"]) as http:
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "create_story", "title": "during a partition"}},
            )
            assert r.json()["version"] == 5

            # The publisher's worker sets the key just after the commit.
            for _ in range(250):
                if await client.get(version_key(pid)) == b"5":
                    break
                await asyncio.sleep(0.02)
            assert await client.get(version_key(pid)) == b"5"
            # What a key write lost to a partition or a Redis restart leaves behind
            # (tests/faults reproduces the partition itself): the previous version.
            await client.set(version_key(pid), 4, ex=60)
            body = (await http.get(f"/api/projects/{pid}/events?since=4")).json()
            assert body["version"] == 5
            assert [e["version"] for e in body["events"]] == [5]
            assert await client.get(version_key(pid)) == b"5"
    finally:
        await client.delete(version_key(pid))
        await client.aclose()
