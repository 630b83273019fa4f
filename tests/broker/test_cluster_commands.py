"""RedisPublisher and RedisSubscriber on the shared Redis Cluster: every command
is routed by slot, and subscriptions follow the shard of each channel."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from tests.broker.cluster import require_cluster
from tidings.broker.redis_publisher import NotInClusterMode, RedisPublisher
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.protocol.channels import project_channel

pytestmark = pytest.mark.redis


@pytest.fixture
def cluster_url() -> str:
    return require_cluster()


@pytest.fixture
async def publisher(cluster_url: str) -> AsyncIterator[RedisPublisher]:
    pub = RedisPublisher.from_url(cluster_url, client_name=f"tidings-test-{uuid.uuid4().hex[:6]}")
    yield pub
    await pub.close()


def fresh_ids(count: int) -> list[int]:
    base = int(time.time() * 1000) % 10**9 * 100
    return [base + n for n in range(count)]


async def test_versions_are_written_and_read_across_every_slot(publisher: RedisPublisher) -> None:
    ids = fresh_ids(40)
    for n, p in enumerate(ids):
        await publisher.set_version(p, n + 1)
    await publisher.set_version(ids[0], 0)  # never moves a key back
    never_set = ids[-1] + 1
    assert await publisher.get_versions([*ids, never_set]) == {p: n + 1 for n, p in enumerate(ids)}


async def test_client_list_covers_every_primary(publisher: RedisPublisher) -> None:
    await publisher.get_versions(fresh_ids(40))  # a connection to each primary
    other = RedisPublisher.from_url(require_cluster())
    try:
        names = await other.client_names()
    finally:
        await other.close()
    assert any(name.startswith("tidings-test-") for name in names)


async def test_revocations_are_kept_and_read_back(publisher: RedisPublisher) -> None:
    at = time.time()
    message = f"revoke-{uuid.uuid4().hex}".encode()
    await publisher.record_revocation(message, at, 60)
    assert message in await publisher.recent_revocations(at - 1)


@pytest.mark.parametrize("sharded", [False, True], ids=["subscribe", "ssubscribe"])
async def test_a_subscriber_hears_channels_of_every_shard(cluster_url: str, sharded: bool) -> None:
    pub = RedisPublisher.from_url(cluster_url, sharded=sharded)
    sub = RedisSubscriber(cluster_url, sharded=sharded, client_name="tidings-test-sub")
    heard: dict[str, bytes] = {}
    links: list[bool] = []
    confirmed: set[str] = set()
    sub.on_subscribed = confirmed.add
    channels = [project_channel(p) for p in fresh_ids(30)]
    try:
        for channel in channels:
            sub.subscribe(channel)
        sub.start(lambda c, d: heard.__setitem__(c, d), links.append)
        deadline = time.monotonic() + 10
        while not (links == [True] and confirmed == set(channels)):
            assert time.monotonic() < deadline, f"links={links} confirmed={len(confirmed)}"
            await asyncio.sleep(0.05)
        for channel in channels:
            await pub.publish(channel, channel.encode())
        while len(heard) < len(channels):
            assert time.monotonic() < deadline, f"heard {len(heard)} of {len(channels)}"
            await asyncio.sleep(0.05)
        assert heard == {c: c.encode() for c in channels}
        if sharded:
            assert len(sub._links) == 3  # one connection per primary
    finally:
        await sub.close()
        await pub.close()


async def test_a_plain_url_naming_a_cluster_node_fails_with_the_way_out() -> None:
    seed = require_cluster().split("//", 1)[1].split(",", 1)[0]
    plain = RedisPublisher.from_url(f"redis://{seed}/0")
    try:
        ids = fresh_ids(40)  # some of their slots are on other nodes
        with pytest.raises(NotInClusterMode, match="redis\\+cluster://"):
            for p in ids:
                await plain.set_version(p, 1)
        with pytest.raises(NotInClusterMode, match="TIDINGS_REDIS_CLUSTER=1"):
            await plain.get_versions(ids)
    finally:
        await plain.close()
