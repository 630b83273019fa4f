"""Polls' version-key reads batched per pass of the event loop (app/readbatch.py):
one read for the polls that arrived together, never a read sent before a poll
arrived, and the database when Redis fails."""

from __future__ import annotations

import asyncio

import redis.asyncio as redis

from tests.app.conftest import StackFactory
from tests.app.test_api import make_project
from tests.support import free_port, until
from tidings.app.readbatch import ReadBatcher
from tidings.protocol.channels import version_key


class Store:
    """Keys read by the batcher, with every read recorded and held until released."""

    def __init__(self) -> None:
        self.values: dict[int, int] = {}
        self.reads: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self._read_made = asyncio.Event()

    async def read(self, ids: list[int]) -> dict[int, int] | None:
        self.reads.append(ids)
        self._read_made.set()
        snapshot = {p: self.values[p] for p in ids if p in self.values}
        await self.release.wait()
        return snapshot

    async def reads_made(self, n: int) -> None:
        async with asyncio.timeout(5):
            while len(self.reads) < n:
                self._read_made.clear()
                await self._read_made.wait()


async def test_reads_asked_in_one_pass_are_one_read() -> None:
    store = Store()
    store.values = {1: 10, 2: 20, 3: 30}
    batcher = ReadBatcher(store.read)
    answers = await asyncio.gather(
        batcher.get([1]), batcher.get([2, 3]), batcher.get([1, 4]), batcher.get([3])
    )
    assert list(answers) == [{1: 10}, {2: 20, 3: 30}, {1: 10}, {3: 30}]
    assert store.reads == [[1, 2, 3, 4]]
    assert (batcher.batches, batcher.reads) == (1, 4)


async def test_a_read_asked_after_a_batch_was_sent_is_not_answered_by_it() -> None:
    # The lost update this rule prevents: a batch sent before a key rose, joined by
    # a poll that arrived after it rose (its client poked), would answer the old version.
    store = Store()
    store.values = {1: 10}
    store.release.clear()
    batcher = ReadBatcher(store.read)
    first = asyncio.create_task(batcher.get([1]))
    await store.reads_made(1)  # the first batch is sent and its read made
    store.values[1] = 11  # the key rises while that read is in flight
    second = asyncio.create_task(batcher.get([1]))
    await store.reads_made(2)
    store.release.set()
    assert await first == {1: 10}
    assert await second == {1: 11}
    assert store.reads == [[1], [1]]


async def test_a_batch_is_bounded_and_a_failed_read_is_none_for_every_poll() -> None:
    store = Store()
    batcher = ReadBatcher(store.read, max_keys=3)
    await asyncio.gather(batcher.get([1, 2]), batcher.get([3, 4]), batcher.get([5]))
    assert store.reads == [[1, 2], [3, 4, 5]]

    async def failing(ids: list[int]) -> dict[int, int] | None:
        return None

    batcher = ReadBatcher(failing)
    assert list(await asyncio.gather(batcher.get([1]), batcher.get([2]))) == [None, None]
    assert batcher.batches == 1


async def test_a_cancelled_poll_does_not_cancel_the_others_read() -> None:
    store = Store()
    store.values = {1: 10}
    store.release.clear()
    batcher = ReadBatcher(store.read)
    gone = asyncio.create_task(batcher.get([1]))
    stays = asyncio.create_task(batcher.get([1]))
    await store.reads_made(1)
    gone.cancel()
    store.release.set()
    assert await stays == {1: 10}
    assert gone.cancelled()


async def test_concurrent_polls_share_one_redis_read_and_see_another_process_commit(
    make_stack: StackFactory, sqlite_url: str, redis_url: str
) -> None:
    stack = await make_stack(sqlite_url, redis_url=redis_url)
    other = await make_stack(sqlite_url, redis_url=redis_url)  # another app process
    p = await make_project(stack)
    pid, version = p["pid"], 4
    client = redis.Redis.from_url(redis_url)
    batches = stack.services.versions._batches
    try:
        async with stack.client(p["tokens"]["owner"]) as http:
            url = f"/api/projects/{pid}/events?since={version}"
            assert (await http.get(url)).json()["version"] == version
            before = batches.batches
            answers = await asyncio.gather(*(http.get(url) for _ in range(20)))
            assert {r.json()["version"] for r in answers} == {version}
            # httpx's ASGI transport starts each request on the loop as gather does,
            # so the 20 polls reach the version cache together: fewer reads than polls.
            assert batches.batches - before < 20
        async with other.client(p["tokens"]["owner"]) as http:
            r = await http.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "create_story", "title": "elsewhere"}},
            )
            assert r.json()["version"] == version + 1

        async def key_rose() -> bool:
            return await client.get(version_key(pid)) == b"5"

        await until(key_rose, 10, "the other process's version key write")
        # The key rose after this process's last read: the next poll sees it.
        async with stack.client(p["tokens"]["owner"]) as http:
            r = await http.get(url, headers={"If-None-Match": f'"{version}"'})
            assert r.status_code == 200 and r.json()["version"] == version + 1
    finally:
        await client.delete(version_key(pid))
        await client.aclose()


async def test_polls_read_the_database_while_redis_fails(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    # A port nothing listens on: every Redis read fails at once.
    stack = await make_stack(sqlite_url, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    p = await make_project(stack)
    async with stack.client(p["tokens"]["owner"]) as http:
        answers = await asyncio.gather(
            *(http.get(f"/api/projects/{p['pid']}/events?since=0") for _ in range(5))
        )
    assert {r.status_code for r in answers} == {200}
    assert {r.json()["version"] for r in answers} == {4}
    errors = stack.services.metrics.broker_errors.labels("get_version")._value.get()
    assert errors == 1  # one failed batch, counted once; then Redis is skipped
