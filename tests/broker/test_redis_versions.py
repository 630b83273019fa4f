"""Version keys on real Redis that hold no version (anyone who can SET the key can
write one): the read path treats them as absent, and the app's next write heals them."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import version_key

pytestmark = pytest.mark.redis


@pytest.fixture
async def publisher(redis_url: str) -> AsyncIterator[tuple[RedisPublisher, redis.Redis, int]]:
    base = random.randint(10**9, 2 * 10**9)
    pub = RedisPublisher.from_url(redis_url)
    raw = redis.Redis.from_url(redis_url)
    try:
        yield pub, raw, base
    finally:
        await raw.delete(*[version_key(base + i) for i in range(8)])
        await raw.aclose()
        await pub.close()


GARBAGE = [str(2**64 + 1), str(2**53 + 1), "abc", "-5", "1e400", "9" * 5000, "\xff"]


async def test_garbage_version_keys_read_as_absent_and_the_good_ones_still_read(
    publisher: tuple[RedisPublisher, redis.Redis, int],
) -> None:
    pub, raw, base = publisher
    for i, value in enumerate(GARBAGE):
        await raw.set(version_key(base + i), value)
    await pub.set_version(base + 7, 12)
    ids = [base + i for i in range(8)]
    # Before: int() raised (ValueError) for the chunk, or let 2**64 + 1 through.
    assert await pub.get_versions(ids) == {base + 7: 12}


async def test_the_next_version_written_replaces_a_garbage_value(
    publisher: tuple[RedisPublisher, redis.Redis, int],
) -> None:
    pub, raw, base = publisher
    for i, value in enumerate(GARBAGE):
        await raw.set(version_key(base + i), value)
        # Before: the compare-and-set kept 2**64 + 1 for ever, and raised on "abc".
        await pub.set_version(base + i, 5)
    assert await pub.get_versions([base + i for i in range(len(GARBAGE))]) == {
        base + i: 5 for i in range(len(GARBAGE))
    }
