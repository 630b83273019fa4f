"""Reconnect backoff: bounded for any number of attempts, and not reset by a
connection that opens and then fails to subscribe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as redis

from tidings.broker.redis_subscriber import RedisSubscriber, backoff_delay

pytestmark = pytest.mark.redis


def test_the_delay_is_capped_after_any_number_of_attempts() -> None:
    for attempt in (0, 1, 10, 1_024, 10**6):
        assert 0 <= backoff_delay(attempt, 0.1, 10.0, lambda: 1.0) <= 10.0
    assert backoff_delay(10**6, 0.1, 10.0, lambda: 1.0) == 10.0


@pytest.fixture
async def no_subscribe_user(redis_url: str) -> AsyncIterator[str]:
    """A Redis user that may connect but not SUBSCRIBE."""
    name = f"tidings-nosub-{uuid.uuid4().hex[:8]}"
    admin = redis.Redis.from_url(redis_url)
    await admin.execute_command(  # type: ignore[no-untyped-call]
        "ACL", "SETUSER", name, "on", ">pw", "~*", "&*", "+@all", "-subscribe", "-ssubscribe"
    )
    try:
        yield redis_url.replace("redis://", f"redis://{name}:pw@")
    finally:
        await admin.execute_command("ACL", "DELUSER", name)  # type: ignore[no-untyped-call]
        await admin.aclose()


async def test_a_connect_that_then_fails_to_subscribe_does_not_reset_the_backoff(
    no_subscribe_user: str,
) -> None:
    # Full delays (rand = 1): 0.1, 0.2, 0.4, 0.8, 0.8, ... s. Reset after each
    # connect, they would stay at 0.1 s: 15 or more attempts in 3 s, not 6.
    sub = RedisSubscriber(no_subscribe_user, backoff_base=0.05, backoff_max=0.8, rand=lambda: 1.0)
    links: list[bool] = []
    sub.subscribe("tidings:test:nosub")
    sub.start(lambda c, d: None, links.append)
    try:
        await asyncio.sleep(3.0)
        assert 2 <= sub.reconnects <= 8, sub.reconnects
    finally:
        await asyncio.wait_for(sub.close(), 5)
