"""The app's side of Redis for a synchronous app (WSGI, scripts, the CLI): the
same commands as broker/redis_publisher.py, on redis-py's blocking clients.

Only the writes an app makes: the version key's compare-and-set (the same Lua
script), PUBLISH or SPUBLISH, and a kept revocation (the same MULTI). A
cluster is reached through ``redis.cluster.RedisCluster``, routed by slot.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import ResponseError
from redis.retry import Retry

from tidings.broker.redis_config import RedisConfig
from tidings.broker.redis_publisher import (
    CLUSTER_ATTEMPTS,
    SET_MAX_SCRIPT,
    VERSION_TTL_SECONDS,
    client_options,
    cluster_backoff,
    explained,
    queue_revocation,
)
from tidings.protocol.channels import version_key


def connect_sync(config: RedisConfig | str, client_name: str | None = None) -> Any:
    """A ``redis.Redis`` for one Redis, a ``redis.cluster.RedisCluster`` for a
    cluster; every command times out after ``SOCKET_TIMEOUT`` seconds."""
    if isinstance(config, str):
        config = RedisConfig.parse(config)
    options = client_options(config, client_name)
    if config.cluster:
        nodes = [ClusterNode(host, port) for host, port in config.seeds]  # type: ignore[no-untyped-call]
        return RedisCluster(
            startup_nodes=nodes, retry=Retry(cluster_backoff(), CLUSTER_ATTEMPTS), **options
        )
    return redis.Redis.from_url(config.url, **options)


class SyncRedisPublisher:
    """Blocking twin of the write half of ``RedisPublisher``."""

    def __init__(self, client: Any, *, sharded: bool = False) -> None:
        """``client``: a ``redis.Redis`` or a ``RedisCluster`` (from :func:`connect_sync`)."""
        self._redis = client
        self._sharded = sharded
        self._set_max = client.register_script(SET_MAX_SCRIPT)

    @classmethod
    def from_config(
        cls, config: RedisConfig, *, client_name: str | None = None
    ) -> SyncRedisPublisher:
        return cls(connect_sync(config, client_name), sharded=config.sharded)

    def publish(self, channel: str, data: bytes) -> None:
        if self._sharded:
            self._redis.execute_command("SPUBLISH", channel, data)
        else:
            self._redis.publish(channel, data)

    def set_version(self, project_id: int, version: int) -> int:
        """Raise the key to ``version`` if it is lower; the version stored now."""
        try:
            stored = self._set_max(
                keys=[version_key(project_id)], args=[version, VERSION_TTL_SECONDS]
            )
        except ResponseError as exc:
            raise explained(exc) from exc
        return int(stored)

    def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        with self._redis.pipeline(transaction=True) as pipe:
            queue_revocation(pipe, message, at, keep_seconds)
            pipe.execute()

    def close(self) -> None:
        self._redis.close()
