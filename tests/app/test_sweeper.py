"""The sweeper pokes for commits whose own poke never reached the broker.

Commits are made on the store directly, with nothing published: what an app
process that died between commit and publish leaves behind. The store and the
sweeper share a fake wall clock, so the grace period and the start-up window are
exact; the database (SQLite and PostgreSQL) and Redis are real.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
import redis.asyncio as redis

from tests.app.conftest import StackFactory
from tests.commandgen import COMMAND
from tidings.app.metrics import Metrics
from tidings.app.settings import AppSettings
from tidings.app.sweeper import Sweeper
from tidings.broker.base import Publisher
from tidings.broker.memory import MemoryBroker
from tidings.broker.redis_publisher import RedisPublisher
from tidings.domain.decide import KnownUser
from tidings.protocol.channels import project_channel, version_key
from tidings.protocol.poke import Poke, decode_poke
from tidings.store.accounts import Accounts
from tidings.store.engine import Engines, create_engines
from tidings.store.events import EventStore
from tidings.store.migrate import upgrade
from tidings.testing.database import offset_project_ids

pytestmark = pytest.mark.redis

#: Nothing listens here: every command is refused at once.
DEAD_REDIS = "redis://127.0.0.1:1/0"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Switch(Publisher):
    """Redis as the app reaches it, which can be made unreachable and reachable again."""

    def __init__(self, live: Publisher, dead: Publisher) -> None:
        self.live, self.dead = live, dead
        self.down = False

    def _target(self) -> Publisher:
        return self.dead if self.down else self.live

    async def publish(self, channel: str, data: bytes) -> None:
        await self._target().publish(channel, data)

    async def set_version(self, project_id: int, version: int) -> int:
        return await self._target().set_version(project_id, version)

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        return await self._target().get_versions(project_ids)

    async def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        raise NotImplementedError

    async def recent_revocations(self, since: float) -> list[bytes]:
        raise NotImplementedError


@dataclass
class World:
    engines: Engines
    store: EventStore
    clock: Clock
    owner: KnownUser
    publisher: RedisPublisher
    redis: redis.Redis
    metrics: Metrics
    projects: list[int]

    async def project(self) -> int:
        """A project at version 1, its creation poke published as usual."""
        committed = await self.store.create_project("P", self.owner)
        self.projects.append(committed.project_id)
        await self.publisher.set_version(committed.project_id, 1)
        return committed.project_id

    async def commit_unpublished(self, pid: int) -> tuple[int, float]:
        """One change committed and never published: (version, commit time)."""
        command = COMMAND.validate_python({"type": "create_story", "title": "lost"})
        committed = await self.store.execute(pid, self.owner.user_id, command)
        return committed.version, committed.event["ts"]

    def sweeper(
        self, publisher: Publisher | None = None, store: EventStore | None = None, **kw: Any
    ) -> Sweeper:
        """A fresh sweeper, counting in ``metrics``: what an app process starts with."""
        return Sweeper(
            store or self.store, publisher or self.publisher, self.metrics, clock=self.clock, **kw
        )

    def count(self, name: str, *labels: str) -> float:
        counter = getattr(self.metrics, name)
        value: float = (counter.labels(*labels) if labels else counter)._value.get()
        return value

    async def key(self, pid: int) -> int | None:
        value = await self.redis.get(version_key(pid))
        return None if value is None else int(value)


@pytest.fixture
async def w(db_url: str, redis_url: str) -> AsyncIterator[World]:
    engines = create_engines(db_url)
    await upgrade(engines)
    await offset_project_ids(engines)  # project ids must not meet other tests' in Redis
    clock = Clock()
    user = await Accounts(engines).create_user("ada@x.io", "Ada", "password1")
    client = redis.Redis.from_url(redis_url)
    w = World(
        engines,
        EventStore(engines, clock=clock),
        clock,
        KnownUser(user.id, user.name),
        RedisPublisher.from_url(redis_url),
        client,
        Metrics(),
        [],
    )
    try:
        yield w
    finally:
        if w.projects:
            await client.delete(*[version_key(p) for p in w.projects])
        await w.publisher.close()
        await client.aclose()
        await engines.dispose()


class Pokes:
    """Pokes on some projects' channels, read with redis-py."""

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self._pubsub = pubsub

    async def next(self, within: float = 3.0) -> Poke:
        async def read() -> Poke:
            while True:
                message = await self._pubsub.get_message(
                    ignore_subscribe_messages=True, timeout=within
                )
                if message is not None:
                    return decode_poke(message["data"])

        return await asyncio.wait_for(read(), within)

    async def none(self, within: float = 0.3) -> None:
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=within)
        assert message is None, f"unexpected poke {message!r}"


async def pokes_on(w: World, *pids: int) -> Pokes:
    pubsub = w.redis.pubsub()
    await pubsub.subscribe(*[project_channel(p) for p in pids])
    for _ in pids:
        await pubsub.get_message(timeout=1.0)  # the confirmations
    return Pokes(pubsub)


async def test_a_commit_whose_poke_was_lost_is_poked_and_its_key_raised(w: World) -> None:
    pid = await w.project()
    version, ts = await w.commit_unpublished(pid)
    assert (version, await w.key(pid)) == (2, 1)
    pokes = await pokes_on(w, pid)
    sweeper = w.sweeper()
    w.clock.advance(3)

    assert await sweeper.sweep() == 1
    assert await pokes.next() == Poke(pid, 2, ts)
    assert await w.key(pid) == 2
    assert (w.count("sweeper_healed"), w.count("sweeper_checked")) == (1, 1)
    # Done once: the next pass reads nothing new.
    assert await sweeper.sweep() == 0
    await pokes.none()


async def test_a_project_whose_key_matches_the_store_is_not_poked(w: World) -> None:
    pid = await w.project()
    await w.commit_unpublished(pid)
    await w.publisher.set_version(pid, 2)  # its publisher did its job
    pokes = await pokes_on(w, pid)
    sweeper = w.sweeper()
    w.clock.advance(3)

    assert await sweeper.sweep() == 1
    await pokes.none()
    assert (w.count("sweeper_healed"), w.count("sweeper_checked")) == (0, 1)


async def test_a_commit_younger_than_the_grace_period_is_left_to_its_publisher(w: World) -> None:
    pid = await w.project()
    await w.commit_unpublished(pid)
    pokes = await pokes_on(w, pid)
    sweeper = w.sweeper(grace=2.0)

    w.clock.advance(1.9)  # its poke may still be queued in the committing process
    assert await sweeper.sweep() == 0
    await pokes.none()
    assert await w.key(pid) == 1

    w.clock.advance(0.2)
    assert await sweeper.sweep() == 1
    assert (await pokes.next()).version == 2


async def test_a_restarted_sweeper_heals_what_its_predecessor_left_in_the_window(
    w: World,
) -> None:
    old, recent = await w.project(), await w.project()
    await w.commit_unpublished(old)
    w.clock.advance(400)
    _, ts = await w.commit_unpublished(recent)
    # The process died; its keys expired meanwhile (a minute after their last write).
    await w.redis.delete(version_key(old), version_key(recent))
    w.clock.advance(300)
    pokes = await pokes_on(w, old, recent)

    # Started now, it looks back 600 s: the older commit (700 s ago) is out of reach
    # (its watchers poll for it), the recent one (300 s ago) is healed.
    assert await w.sweeper(window=600.0).sweep() == 1
    assert await pokes.next() == Poke(recent, 2, ts)
    await pokes.none()
    assert (await w.key(old), await w.key(recent)) == (None, 2)


async def test_a_commit_visible_only_after_the_first_cursor_passed_it_is_healed_later(
    w: World,
) -> None:
    """A transaction that commits seconds after taking its timestamp (or an app
    whose clock is behind): by the time it is visible, the first cursor has moved
    past that timestamp. The trailing cursor, 30 s behind, still finds it."""
    pid, mover = await w.project(), await w.project()
    t0 = w.clock.now
    sweeper = w.sweeper(grace=2.0, trailing=30.0)
    w.clock.advance(10)
    await w.commit_unpublished(mover)
    w.clock.advance(3)
    assert await sweeper.sweep() == 2  # both projects; mover healed, position at t0 + 10
    pokes = await pokes_on(w, pid)

    # Committed now, stamped t0 + 5: behind the first cursor.
    w.clock.now = t0 + 5
    version, ts = await w.commit_unpublished(pid)
    w.clock.now = t0 + 13
    assert await sweeper.sweep() == 0
    await pokes.none()
    assert await w.key(pid) == 1

    w.clock.advance(30)
    await sweeper.sweep()
    assert await pokes.next() == Poke(pid, version, ts)
    assert await w.key(pid) == version
    await pokes.none()


async def test_a_pass_reads_at_most_a_batch_and_the_next_continues(w: World) -> None:
    pids = [await w.project() for _ in range(5)]
    for pid in pids:
        await w.commit_unpublished(pid)
        w.clock.advance(0.01)
    pokes = await pokes_on(w, *pids)
    sweeper = w.sweeper(batch=2)
    w.clock.advance(3)

    assert [await sweeper.sweep() for _ in range(4)] == [2, 2, 1, 0]
    poked = [await pokes.next() for _ in pids]
    assert [(p.project, p.version) for p in poked] == [(pid, 2) for pid in pids]
    await pokes.none()


async def test_redis_down_is_counted_and_the_next_pass_retries(w: World) -> None:
    pid = await w.project()
    version, _ = await w.commit_unpublished(pid)
    dead = RedisPublisher.from_url(DEAD_REDIS)
    path = Switch(w.publisher, dead)
    sweeper = w.sweeper(path)
    w.clock.advance(3)
    before = sweeper.position

    path.down = True
    assert await sweeper.sweep() == 0  # no exception
    assert w.count("sweeper_errors", "get_versions") == 1
    assert sweeper.position == before
    assert await w.key(pid) == 1

    path.down = False
    pokes = await pokes_on(w, pid)
    w.clock.advance(15)
    assert await sweeper.sweep() == 1
    assert (await pokes.next()).version == version
    assert await w.key(pid) == version
    await dead.close()


async def test_a_broken_store_is_counted_and_never_raises(w: World) -> None:
    broken = create_engines("postgresql://nobody@127.0.0.1:1/none")
    try:
        assert await w.sweeper(store=EventStore(broken)).sweep() == 0
    finally:
        await broken.dispose()
    assert w.count("sweeper_errors", "store") == 1


async def test_the_app_runs_the_sweeper_on_the_in_process_broker(
    make_stack: StackFactory, sqlite_url: str
) -> None:
    """Embedded mode (``tidings demo``): the same sweeper, on the in-process broker."""
    stack = await make_stack(sqlite_url, sweep_interval=0.1)
    broker = stack.services.broker
    assert isinstance(broker, MemoryBroker)
    owner, _ = await stack.user("ada@x.io")
    store = stack.services.store
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    await broker.set_version(pid, 1)
    heard: list[Poke] = []
    poked = asyncio.Event()

    def on_message(_channel: str, data: bytes) -> None:
        heard.append(decode_poke(data))
        poked.set()

    subscriber = broker.subscriber()
    subscriber.start(on_message, lambda _up: None)
    subscriber.subscribe(project_channel(pid))
    command = COMMAND.validate_python({"type": "create_story", "title": "lost"})
    ts = (await store.execute(pid, owner.id, command)).event["ts"]

    # Healed once the commit is older than the grace period (2 s), at the next pass.
    await asyncio.wait_for(poked.wait(), 5)
    assert heard == [Poke(pid, 2, ts)]
    assert await broker.get_versions([pid]) == {pid: 2}
    await subscriber.close()


def test_the_interval_comes_from_the_environment_and_zero_turns_the_sweeper_off() -> None:
    assert AppSettings.from_env({}).sweep_interval == 15.0
    assert AppSettings.from_env({"TIDINGS_SWEEP_INTERVAL": "0"}).sweep_interval == 0.0
