"""The app's side of Redis: PUBLISH (or SPUBLISH) pokes and keep version keys.

Version keys only ever rise (a Lua compare-and-set), so a slow writer or a
poll that refills the cache from the database can never move one backwards.
They expire after ``VERSION_TTL_SECONDS``: if a write after commit was lost,
the key can lag for at most that long before the next reader refills it from
the database.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis.asyncio as redis

from tidings.broker.base import MAX_KEPT_REVOCATIONS, Publisher
from tidings.protocol.channels import REVOCATIONS_KEY, version_key

VERSION_TTL_SECONDS = 60

# KEYS[1] = version key; ARGV[1] = version; ARGV[2] = ttl. Returns the stored version.
_SET_MAX = """
local current = tonumber(redis.call('GET', KEYS[1]) or '-1')
local proposed = tonumber(ARGV[1])
if proposed > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return proposed
end
return current
"""

#: Commands may not hang a request: every Redis call has this timeout (seconds).
SOCKET_TIMEOUT = 1.0


def connect(url: str, client_name: str | None = None) -> redis.Redis:
    """``client_name``: set on every connection (CLIENT SETNAME), so that others
    can tell from CLIENT LIST whether this process still holds one."""
    return redis.Redis.from_url(
        url,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        health_check_interval=30,
        client_name=client_name,
    )


class RedisPublisher(Publisher):
    def __init__(self, client: redis.Redis, *, sharded: bool = False) -> None:
        self._redis = client
        self._sharded = sharded
        self._set_max = client.register_script(_SET_MAX)

    @classmethod
    def from_url(
        cls, url: str, *, sharded: bool = False, client_name: str | None = None
    ) -> RedisPublisher:
        return cls(connect(url, client_name), sharded=sharded)

    async def publish(self, channel: str, data: bytes) -> None:
        if self._sharded:
            await self._redis.execute_command("SPUBLISH", channel, data)  # type: ignore[no-untyped-call]
        else:
            await self._redis.publish(channel, data)

    async def set_version(self, project_id: int, version: int) -> None:
        await self._set_max(keys=[version_key(project_id)], args=[version, VERSION_TTL_SECONDS])

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        ids = list(project_ids)
        if not ids:
            return {}
        values = await self._redis.mget([version_key(p) for p in ids])
        return {p: int(v) for p, v in zip(ids, values, strict=True) if v is not None}

    async def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        # One MULTI: add, forget what no token can outlive, cap the count, and let
        # the whole set expire if no revocation comes for a token lifetime.
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.zadd(REVOCATIONS_KEY, {message: at})
            pipe.zremrangebyscore(REVOCATIONS_KEY, "-inf", at - keep_seconds)
            pipe.zremrangebyrank(REVOCATIONS_KEY, 0, -MAX_KEPT_REVOCATIONS - 1)
            pipe.expire(REVOCATIONS_KEY, int(keep_seconds) + 1)
            await pipe.execute()

    async def recent_revocations(self, since: float) -> list[bytes]:
        found = await self._redis.zrangebyscore(REVOCATIONS_KEY, f"({since}", "+inf")
        return [m for m in found if isinstance(m, bytes)]

    async def client_names(self) -> set[str]:
        """The names of the connections Redis holds now (CLIENT LIST)."""
        clients = await self._redis.client_list()
        return {str(c["name"]) for c in clients if c.get("name")}

    async def close(self) -> None:
        await self._redis.aclose()
