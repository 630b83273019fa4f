"""Where Redis is and how to use it: one object, built once from ``REDIS_URL``
and two switches, that the app and the push server both read the same way.

Forms of ``REDIS_URL``:

- ``redis://host:port/db``, ``rediss://...``, ``unix:///path``: one Redis;
- ``redis+cluster://host:port[,host:port...]`` (or ``rediss+cluster://``): a
  Redis Cluster, the listed nodes as seeds (list more than one: a dead seed is
  then skipped at start); the same as a plain URL with ``TIDINGS_REDIS_CLUSTER=1``.

``TIDINGS_REDIS_SHARDED=1`` switches pokes to sharded pub/sub (SPUBLISH and
SSUBSCRIBE); both the app and every push server must agree on it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from tidings.environment import flag

DEFAULT_URL = "redis://127.0.0.1:6379/0"
_CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
_PLAIN_SCHEMES = ("redis", "rediss", "unix")


@dataclass(frozen=True, slots=True)
class RedisConfig:
    #: The URL as given (for logs; it may hold a password: never log it whole).
    url: str = DEFAULT_URL
    #: A Redis Cluster: commands are routed by slot, subscriptions follow shards.
    cluster: bool = False
    #: Sharded pub/sub (SPUBLISH/SSUBSCRIBE) instead of PUBLISH/SUBSCRIBE.
    sharded: bool = False
    #: Cluster seeds (host, port); empty for a single Redis.
    seeds: tuple[tuple[str, int], ...] = ()
    #: ``redis`` or ``rediss`` (TLS) for cluster nodes.
    scheme: str = "redis"
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str, *, cluster: bool = False, sharded: bool = False) -> RedisConfig:
        """Raises ``ValueError`` with the reason for a URL it cannot use."""
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme in _CLUSTER_SCHEMES:
            cluster, node_scheme = True, _CLUSTER_SCHEMES[scheme]
        elif scheme in _PLAIN_SCHEMES:
            node_scheme = scheme
        else:
            raise ValueError(
                f"REDIS_URL scheme {parts.scheme!r}: expected redis, rediss, unix, "
                "redis+cluster or rediss+cluster"
            )
        if not cluster:
            return cls(url=url, sharded=sharded, scheme=node_scheme)
        if node_scheme == "unix":
            raise ValueError("a Redis Cluster is reached over TCP, not a unix socket")
        netloc = parts.netloc.rpartition("@")[2]
        seeds = tuple(_host_port(item) for item in netloc.split(",") if item.strip())
        if not seeds:
            raise ValueError("a cluster REDIS_URL names at least one host:port")
        return cls(
            url=url,
            cluster=True,
            sharded=sharded,
            seeds=seeds,
            scheme=node_scheme,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str], url: str | None = None) -> RedisConfig:
        """``url`` (a command-line flag) wins over ``REDIS_URL``."""
        return cls.parse(
            url or env.get("REDIS_URL") or DEFAULT_URL,
            cluster=flag(env, "TIDINGS_REDIS_CLUSTER", False),
            sharded=flag(env, "TIDINGS_REDIS_SHARDED", False),
        )

    def describe(self) -> str:
        """For logs: the nodes and mode, without credentials."""
        if self.cluster:
            nodes = ",".join(f"{h}:{p}" for h, p in self.seeds)
            return f"cluster {nodes} sharded={self.sharded}"
        parts = urlsplit(self.url)
        where = f"{parts.scheme}://{parts.hostname or ''}:{parts.port or ''}{parts.path}"
        return f"{where} sharded={self.sharded}"


def _host_port(item: str) -> tuple[str, int]:
    host, sep, port = item.strip().rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"cluster seed {item!r}: expected host:port")
    return host.strip("[]"), int(port)
