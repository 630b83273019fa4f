"""The app's side of Redis: PUBLISH (or SPUBLISH) pokes and keep version keys.

On a Redis Cluster every command goes through redis-py's ``RedisCluster``,
routed by slot: each key is one slot (a project's key carries its hash tag),
reads of many keys are grouped by slot (``mget_nonatomic``: one MGET per slot,
pipelined per node), and CLIENT LIST asks every primary.

Version keys only ever rise (a Lua compare-and-set), so a slow writer or a
poll that refills the cache from the database can never move one backwards.
They expire after ``VERSION_TTL_SECONDS``: if a write after commit was lost,
the key can lag for at most that long before the next reader refills it from
the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Hashable, Iterable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import AskError, ClusterCrossSlotError, ResponseError

from tidings.broker.base import MAX_KEPT_REVOCATIONS, Publisher
from tidings.broker.redis_config import RedisConfig
from tidings.protocol.channels import REVOCATIONS_KEY, version_key
from tidings.protocol.poke import parse_version_key

VERSION_TTL_SECONDS = 60

# KEYS[1] = version key; ARGV[1] = version; ARGV[2] = ttl. Returns the stored version.
# A value that is not a version (a decimal up to 2^53, compared as text: a Lua
# number cannot tell 2^53 + 1 from 2^53) is overwritten.
SET_MAX_SCRIPT = """
local raw = redis.call('GET', KEYS[1])
local current = -1
if raw and string.match(raw, '^%d+$')
   and (#raw < 16 or (#raw == 16 and raw <= '9007199254740992')) then
  current = tonumber(raw)
end
local proposed = tonumber(ARGV[1])
if proposed > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
  return proposed
end
return current
"""

log = logging.getLogger("tidings.broker")

#: Seconds between two log lines about version keys that hold no version.
INVALID_LOG_INTERVAL = 60.0

#: Commands may not hang a request: every Redis call has this timeout (seconds).
SOCKET_TIMEOUT = 1.0


#: Redirections (MOVED, ASK) and connection errors a cluster command follows
#: before it fails; each connection error refreshes the slot map, so a command
#: made during a failover reaches the promoted replica once it is known.
CLUSTER_ATTEMPTS = 3


def client_options(config: RedisConfig, client_name: str | None) -> dict[str, Any]:
    """What every connection of the app's side is opened with, blocking or
    asyncio, one Redis or a cluster: ``SOCKET_TIMEOUT`` on each command and
    connect, ``client_name`` (CLIENT SETNAME) on each connection."""
    options: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "client_name": client_name,
    }
    if config.cluster:
        options.update(
            ssl=config.scheme == "rediss", username=config.username, password=config.password
        )
    else:
        options["health_check_interval"] = 30
    return options


def cluster_backoff() -> ExponentialWithJitterBackoff:
    """Between a cluster command's ``CLUSTER_ATTEMPTS``: 50 ms doubling to 250 ms, jittered."""
    return ExponentialWithJitterBackoff(base=0.05, cap=0.25)


def connect(config: RedisConfig | str, client_name: str | None = None) -> Any:
    """A ``redis.asyncio.Redis`` for one Redis, a ``RedisCluster`` for a cluster.
    ``client_name``: set on every connection (CLIENT SETNAME), so that others
    can tell from CLIENT LIST whether this process still holds one."""
    if isinstance(config, str):
        config = RedisConfig.parse(config)
    options = client_options(config, client_name)
    if config.cluster:
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in config.seeds],
            retry=Retry(cluster_backoff(), CLUSTER_ATTEMPTS),
            **options,
        )
    return redis.Redis.from_url(config.url, **options)


def queue_revocation(pipe: Any, message: bytes, at: float, keep_seconds: float) -> None:
    """Queue on a MULTI pipeline (sync or asyncio): add the ``revoke`` message,
    forget what no token can outlive, cap the count, and let the whole set expire
    if no revocation comes for a token lifetime."""
    pipe.zadd(REVOCATIONS_KEY, {message: at})
    pipe.zremrangebyscore(REVOCATIONS_KEY, "-inf", at - keep_seconds)
    pipe.zremrangebyrank(REVOCATIONS_KEY, 0, -MAX_KEPT_REVOCATIONS - 1)
    pipe.expire(REVOCATIONS_KEY, int(keep_seconds) + 1)


class NotInClusterMode(ResponseError):
    """Redis answered MOVED, ASK or CROSSSLOT to a client configured for one
    Redis: ``REDIS_URL`` names a node of a Redis Cluster. Without this, the
    projects whose slots live on that node would work and the others silently
    not (their version writes redirected, their pokes never published)."""


def explained(exc: ResponseError) -> ResponseError:
    if isinstance(exc, AskError | ClusterCrossSlotError) or str(exc).startswith("CROSSSLOT"):
        return NotInClusterMode(
            f"{type(exc).__name__} {exc}: REDIS_URL names a node of a Redis Cluster; "
            "use redis+cluster://host:port[,host:port...] or TIDINGS_REDIS_CLUSTER=1 "
            "(docs/OPERATIONS.md, Redis Cluster)"
        )
    return exc


class RedisPublisher(Publisher):
    def __init__(self, client: Any, *, sharded: bool = False) -> None:
        """``client``: a ``redis.asyncio.Redis`` or a ``RedisCluster`` (from :func:`connect`)."""
        self._redis = client
        self._cluster = isinstance(client, RedisCluster)
        self._sharded = sharded
        self._set_max = client.register_script(SET_MAX_SCRIPT)
        self._quiet_until = 0.0

    @classmethod
    def from_url(
        cls, url: str, *, sharded: bool = False, client_name: str | None = None
    ) -> RedisPublisher:
        return cls.from_config(RedisConfig.parse(url, sharded=sharded), client_name=client_name)

    @classmethod
    def from_config(cls, config: RedisConfig, *, client_name: str | None = None) -> RedisPublisher:
        return cls(connect(config, client_name), sharded=config.sharded)

    @property
    def cluster(self) -> RedisCluster | None:
        """The cluster client, for the subscriber's slot map; ``None`` on one Redis."""
        return self._redis if self._cluster else None

    def lane(self, channel: str) -> Hashable:
        """The primary that serves ``channel``'s slot as last known, so that a
        failing shard holds up only its own pokes (app/publisher.py): the
        version key shares the channel's hash tag, so even a classic PUBLISH
        waits on that shard for the key write first. One lane on a single Redis."""
        if not self._cluster:
            return ""
        try:
            return str(self._redis.get_node_from_key(channel).name)
        except Exception:
            return ""  # the slot map is not known yet

    async def publish(self, channel: str, data: bytes) -> None:
        if self._sharded:
            # RedisCluster routes SPUBLISH by the channel's slot, like a key.
            await self._redis.execute_command("SPUBLISH", channel, data)
        else:
            await self._redis.publish(channel, data)

    async def set_version(self, project_id: int, version: int) -> int:
        try:
            stored = await self._set_max(
                keys=[version_key(project_id)], args=[version, VERSION_TTL_SECONDS]
            )
        except ResponseError as exc:
            raise explained(exc) from exc
        return int(stored)

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        ids = list(project_ids)
        if not ids:
            return {}
        keys = [version_key(p) for p in ids]
        if self._cluster:
            values = await self._redis.mget_nonatomic(keys)
        else:
            try:
                values = await self._redis.mget(keys)
            except ResponseError as exc:
                raise explained(exc) from exc
        # A value that is not a version (anyone who can SET the key can write
        # one) reads as absent: it must neither raise nor reach a reader.
        found = {p: parse_version_key(v) for p, v in zip(ids, values, strict=True) if v}
        bad = [p for p, v in found.items() if v is None]
        if bad and time.monotonic() >= self._quiet_until:
            self._quiet_until = time.monotonic() + INVALID_LOG_INTERVAL
            log.warning("event=version_key_invalid projects=%s", ",".join(map(str, bad[:20])))
        return {p: v for p, v in found.items() if v is not None}

    async def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            queue_revocation(pipe, message, at, keep_seconds)
            await pipe.execute()

    async def recent_revocations(self, since: float) -> list[bytes]:
        found = await self._redis.zrangebyscore(REVOCATIONS_KEY, f"({since}", "+inf")
        return [m for m in found if isinstance(m, bytes)]

    async def client_names(self) -> set[str]:
        """The names of the connections Redis holds now (CLIENT LIST; on a
        cluster, of every primary: an app's connections are to the primaries
        it published through)."""
        if self._cluster:
            found = await self._redis.client_list(target_nodes=RedisCluster.PRIMARIES)
            clients = [c for node in found.values() for c in node]
        else:
            clients = await self._redis.client_list()
        return {str(c["name"]) for c in clients if c.get("name")}

    async def close(self) -> None:
        await self._redis.aclose()
