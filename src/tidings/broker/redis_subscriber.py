"""A push server's side of Redis: SUBSCRIBE (or SSUBSCRIBE) to channels, read versions.

The set of channels is desired state: ``subscribe``/``unsubscribe`` only edit it,
and every (re)connect replays all of it. Reconnects use exponential backoff with
full jitter, so a fleet of push servers does not reconnect in step after a Redis
restart; the backoff is reset only once a connection has proved itself (a
subscription confirmed, or on a cluster a probe heard), never by a connect that
then fails. A connection that stays silent is probed with PING and dropped when
the probe gets no answer (a half-open TCP link looks connected forever).

On a Redis Cluster there is one pub/sub connection per link (``_Link``):

- sharded (SSUBSCRIBE): one per primary, carrying the channels whose slots that
  primary serves, one SSUBSCRIBE per slot (a command naming two slots fails
  with CROSSSLOT). A MOVED reply, a server-side SUNSUBSCRIBE (the slot moved) or
  a lost connection makes the subscriber read the slot map again (CLUSTER
  SLOTS through redis-py's ``RedisCluster``) and move channels to their owner.
- classic (SUBSCRIBE): one connection to any node; the cluster bus carries
  every PUBLISH to every node. A failed node is replaced by another.

Each cluster link proves its path end to end: every ``probe_interval`` it
publishes a probe on a channel of its own whose hash tag lands on that link's
shard, and it counts as up only while its probes come back. The subscriber
reports the link up (``on_link(True)``) only while every link is up: a push
server is degraded while any shard it listens on is deaf (docs/ARCHITECTURE.md).
End-to-end deafness of the path that matters to clients (the server's own link
heartbeat) is still judged by the server (push/link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from tidings.broker.base import LinkHandler, MessageHandler, Subscriber
from tidings.broker.redis_config import RedisConfig
from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import probe_channel
from tidings.tasks import stop_tasks, supervise

log = logging.getLogger("tidings.broker.redis")

#: Channels per SUBSCRIBE command when replaying the desired set (classic mode;
#: sharded mode sends one SSUBSCRIBE per slot, each at most this many channels).
SUBSCRIBE_BATCH = 500

#: The backoff exponent stops growing here: ``base * 2**n`` would overflow a
#: float after ~1,024 failed attempts and end the loop with OverflowError.
MAX_BACKOFF_EXPONENT = 16

#: On a cluster, the slot map is read again at least this often (seconds), and
#: at most every ``TOPOLOGY_MIN_INTERVAL`` when a link asks for it. While a link
#: is down (a failover under way) it is read every ``TOPOLOGY_OUTAGE_INTERVAL``,
#: so a promoted replica is found within that of its promotion, whatever the
#: failing link's backoff: one CLUSTER SLOTS per interval, only during outages.
TOPOLOGY_INTERVAL = 5.0
TOPOLOGY_MIN_INTERVAL = 0.2
TOPOLOGY_OUTAGE_INTERVAL = 0.5

#: Message types that confirm a (sharded) subscription.
_CONFIRMATIONS = (b"subscribe", "subscribe", b"ssubscribe", "ssubscribe")
_MESSAGES = (b"message", "message", b"smessage", "smessage")
#: A cluster node drops sharded subscriptions of a slot it stopped serving.
_DROPPED = (b"sunsubscribe", "sunsubscribe")


def backoff_delay(attempt: int, base: float, cap: float, rand: Callable[[], float]) -> float:
    """Full jitter: uniform(0, min(cap, base * 2**attempt)); the exponent is capped."""
    return rand() * min(cap, base * float(2 ** min(attempt, MAX_BACKOFF_EXPONENT)))


class _Link:
    """One pub/sub connection and the channels it carries (its own desired set).

    ``address`` is called before each connect: a fixed node for a shard, the
    next candidate for a classic cluster link, ``None`` for the URL of one Redis.
    """

    def __init__(
        self,
        owner: RedisSubscriber,
        name: str,
        address: Callable[[], tuple[str, int] | None],
        probe: str | None,
    ) -> None:
        self.owner = owner
        self.name = name
        self._address = address
        #: This link's probe channel (cluster only): heard back = the path works.
        self.probe = probe
        self.desired: set[str] = set()
        self.live: set[str] = set()
        self.up = False
        self.closed = False
        self.pubsub: Any = None
        self.broken: BaseException | None = None
        self.sync_task: asyncio.Task[None] | None = None
        self.task: asyncio.Task[None] | None = None
        self.probe_task: asyncio.Task[None] | None = None
        self.probe_heard: float | None = None

    def start(self) -> None:
        name = f"redis-link-{self.name}"
        self.task = asyncio.get_running_loop().create_task(
            supervise(self._run, name, logger=log), name=name
        )

    async def stop(self, within: float) -> None:
        self.closed = True
        await stop_tasks((self.sync_task, self.probe_task, self.task), within)

    def wanted(self) -> set[str]:
        return self.desired | ({self.probe} if self.probe else set())

    def kick(self) -> None:
        if self.pubsub is None or (self.sync_task is not None and not self.sync_task.done()):
            return
        self.sync_task = asyncio.get_running_loop().create_task(self._sync(self.pubsub))

    async def _run(self) -> None:
        owner = self.owner
        attempt = 0
        while not self.closed:
            client: redis.Redis | None = None
            proven = False
            try:
                async with asyncio.timeout(owner.connect_timeout):
                    client = owner.open_connection(self._address())
                    pubsub: Any = client.pubsub()
                    await pubsub.connect()
                    self.live = set()
                    self.broken = None
                    self.probe_heard = None
                    await owner.apply(self, pubsub)
                self.pubsub = pubsub
                if self.probe is None:
                    self._set_up(True)
                else:
                    self.probe_task = asyncio.get_running_loop().create_task(self._probe())
                async for _ in self._read(pubsub):
                    if not proven:
                        proven, attempt = True, 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "event=redis_link_error link=%s error=%r attempt=%d", self.name, exc, attempt
                )
                owner.suspect()
            finally:
                self.pubsub = None
                if self.probe_task is not None:
                    self.probe_task.cancel()
                    self.probe_task = None
                self._set_up(False)
                if client is not None:
                    await owner.dispose(client)
            if self.closed:
                return
            attempt += 1
            owner.reconnects += 1
            await asyncio.sleep(
                backoff_delay(attempt, owner.backoff_base, owner.backoff_max, owner.rand)
            )

    def _set_up(self, up: bool) -> None:
        if up != self.up:
            self.up = up
            self.owner.links_changed()

    async def _probe(self) -> None:
        """Publish this link's probe every ``probe_interval`` through the command
        client (so routed by slot to the shard's primary as the cluster knows it)."""
        assert self.probe is not None
        owner = self.owner
        while True:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(owner.command_timeout):
                    await owner.commands.publish(self.probe, b"probe")
            await asyncio.sleep(owner.probe_interval)

    async def _read(self, pubsub: Any) -> Any:
        """Deliver what arrives, giving the event loop a turn after each message;
        yields once per confirmation or probe heard (each proves the connection
        does what it is for)."""
        owner = self.owner
        loop = asyncio.get_running_loop()
        last = connected = loop.time()
        pinged = False
        poll = min(0.5, owner.ping_after / 2)
        while True:
            if self.broken is not None:
                raise self.broken
            message = await pubsub.get_message(timeout=poll)
            now = loop.time()
            if self.probe is not None:
                # Connected but deaf (the node lost its slots, the bus is cut):
                # only our own probe coming back proves this shard's path.
                heard = self.probe_heard if self.probe_heard is not None else connected
                if now - heard > owner.dead_after:
                    raise ConnectionError(f"probe not heard for {now - heard:.1f} s")
            if message is None:
                silent = now - last
                if silent > owner.dead_after:
                    raise ConnectionError(f"Redis silent for {silent:.1f} s")
                if silent > owner.ping_after and not pinged:
                    pinged = True
                    async with asyncio.timeout(owner.command_timeout):
                        await pubsub.ping()
                continue
            last, pinged = now, False
            kind = message.get("type")
            channel = _text(message.get("channel") or "")
            if kind in _MESSAGES:
                if channel == self.probe:
                    self.probe_heard = now
                    self._set_up(True)
                    yield
                else:
                    owner.deliver(channel, message["data"])
                    # A turn for the loop after each message: while Redis has a
                    # backlog, get_message returns buffered messages without ever
                    # suspending, and a fan-out per message would starve accepts,
                    # request reads and timers (a survivor of a reconnect storm
                    # left 1,491 sockets unaccepted for minutes).
                    await asyncio.sleep(0)
            elif kind in _CONFIRMATIONS:
                yield
                if channel != self.probe:
                    owner.confirmed(channel)
            elif kind in _DROPPED and channel in self.wanted():
                # The node no longer serves this slot (failover, resharding).
                raise ConnectionError(f"{channel} unsubscribed by the node")

    async def _sync(self, pubsub: Any) -> None:
        try:
            async with asyncio.timeout(self.owner.command_timeout):
                await self.owner.apply(self, pubsub)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Let the reader drop the connection; the reconnect replays everything.
            self.broken = exc


class RedisSubscriber(Subscriber):
    confirms_subscriptions = True

    def __init__(
        self,
        config: RedisConfig | str,
        *,
        sharded: bool | None = None,
        connect_timeout: float = 2.0,
        command_timeout: float = 1.0,
        backoff_base: float = 0.1,
        backoff_max: float | None = None,
        ping_after: float = 2.0,
        dead_after: float = 5.0,
        probe_interval: float = 1.0,
        rand: Callable[[], float] = random.random,
        client_name: str = "tidings-push",
    ) -> None:
        """``config``: a :class:`RedisConfig` or a URL; ``sharded`` overrides its mode.
        ``ping_after``: seconds of silence before a PING; ``dead_after``: seconds of
        silence (PING unanswered, or on a cluster no probe back) before the
        connection is dropped and redone. Reconnect ``n`` waits
        uniform(0, min(backoff_max, backoff_base * 2**n)) s; ``backoff_max``
        defaults to 10 s on one Redis and 1 s on a cluster, where a failover
        moves a shard within seconds and waiting longer only delays its pokes."""
        if isinstance(config, str):
            config = RedisConfig.parse(config)
        if sharded is not None and sharded != config.sharded:
            config = RedisConfig.parse(config.url, cluster=config.cluster, sharded=sharded)
        self.config = config
        self.sharded = config.sharded
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.backoff_base = backoff_base
        self.backoff_max = (
            backoff_max if backoff_max is not None else (1.0 if config.cluster else 10.0)
        )
        self.ping_after = ping_after
        self.dead_after = dead_after
        self.probe_interval = probe_interval
        self.rand = rand
        self._client_name = client_name
        self._desired: set[str] = set()
        self._on_message: MessageHandler | None = None
        self._on_link: LinkHandler | None = None
        self.commands = RedisPublisher.from_config(config)
        self._links: dict[str, _Link] = {}
        #: Cluster only: the primary serving each slot, and where each link is.
        self._owners: list[str] = []
        self._nodes: dict[str, tuple[str, int]] = {}
        self._next_node = 0
        self._topology_task: asyncio.Task[None] | None = None
        self._suspect = asyncio.Event()
        self._probe_id = secrets.token_hex(6)
        self._closed = False
        self._reported: bool | None = None
        #: Reconnect attempts since start, over all links (a metric).
        self.reconnects = 0
        self.connected = False

    # -- Subscriber ------------------------------------------------------------

    def start(self, on_message: MessageHandler, on_link: LinkHandler) -> None:
        self._on_message = on_message
        self._on_link = on_link
        loop = asyncio.get_running_loop()
        if not self.config.cluster:
            self._add_link("", lambda: None, None).desired = set(self._desired)
        else:
            self._topology_task = loop.create_task(
                supervise(self._topology, "redis-topology", logger=log), name="redis-topology"
            )

    def subscribe(self, channel: str) -> None:
        if channel not in self._desired:
            self._desired.add(channel)
            link = self._link_for(channel)
            if link is not None:
                link.desired.add(channel)
                link.kick()

    def unsubscribe(self, channel: str) -> None:
        if channel in self._desired:
            self._desired.discard(channel)
            link = self._link_for(channel)
            if link is not None:
                link.desired.discard(channel)
                link.kick()

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        async with asyncio.timeout(self.command_timeout):
            return await self.commands.get_versions(project_ids)

    async def publish(self, channel: str, data: bytes) -> None:
        async with asyncio.timeout(self.command_timeout):
            await self.commands.publish(channel, data)

    async def recent_revocations(self, since: float) -> list[bytes]:
        async with asyncio.timeout(self.command_timeout):
            return await self.commands.recent_revocations(since)

    async def client_names(self) -> set[str] | None:
        async with asyncio.timeout(self.command_timeout):
            return await self.commands.client_names()

    async def close(self) -> None:
        self._closed = True
        await stop_tasks((self._topology_task,), self.command_timeout)
        for link in list(self._links.values()):
            await link.stop(self.command_timeout)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.command_timeout):
                await self.commands.close()

    # -- called by the links -----------------------------------------------------

    def open_connection(self, address: tuple[str, int] | None) -> redis.Redis:
        options: dict[str, Any] = {
            "socket_connect_timeout": self.connect_timeout,
            "socket_timeout": self.command_timeout,
            "retry": Retry(NoBackoff(), 0),
            "health_check_interval": 0,
            "client_name": self._client_name,
        }
        if address is None:
            return redis.Redis.from_url(self.config.url, **options)
        config = self.config
        return redis.Redis(
            host=address[0],
            port=address[1],
            ssl=config.scheme == "rediss",
            username=config.username,
            password=config.password,
            **options,
        )

    async def dispose(self, client: redis.Redis) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.command_timeout):
                await client.aclose()

    async def apply(self, link: _Link, pubsub: Any) -> None:
        """Bring ``link``'s live subscription to its desired set (loops: it may
        change meanwhile). Sharded: one command per slot, never two slots in one."""
        sub = pubsub.ssubscribe if self.sharded else pubsub.subscribe
        unsub = pubsub.sunsubscribe if self.sharded else pubsub.unsubscribe
        while link.live != (wanted := link.wanted()):
            add = sorted(wanted - link.live)[:SUBSCRIBE_BATCH]
            remove = sorted(link.live - wanted)[:SUBSCRIBE_BATCH]
            for group in self._by_slot(add):
                await sub(*group)
                link.live.update(group)
            for group in self._by_slot(remove):
                await unsub(*group)
                link.live.difference_update(group)

    def deliver(self, channel: str, data: bytes) -> None:
        if self._on_message is not None and channel in self._desired:
            self._on_message(channel, data)

    def confirmed(self, channel: str) -> None:
        # SUBSCRIBE is sent without waiting; this confirmation is when the
        # channel is live (it travels on this connection, in order).
        if self.on_subscribed is not None and channel in self._desired:
            self.on_subscribed(channel)

    def links_changed(self) -> None:
        """Up only while every link is up (and, on a cluster, the map is known)."""
        up = bool(self._links) and all(link.up for link in self._links.values())
        self.connected = up
        if up != self._reported and not (self._reported is None and not up):
            self._reported = up
            if self._on_link is not None:
                self._on_link(up)

    def suspect(self) -> None:
        """A link failed or was redirected: read the slot map again soon."""
        self._suspect.set()

    # -- links and the cluster's slot map -----------------------------------------

    def _by_slot(self, channels: list[str]) -> list[list[str]]:
        if not (self.sharded and self.config.cluster):
            return [channels] if channels else []
        groups: dict[int, list[str]] = defaultdict(list)
        for channel in channels:
            groups[key_slot(channel.encode())].append(channel)
        return list(groups.values())

    def _add_link(
        self, name: str, address: Callable[[], tuple[str, int] | None], probe: str | None
    ) -> _Link:
        link = _Link(self, name, address, probe)
        self._links[name] = link
        link.start()
        return link

    def _link_for(self, channel: str) -> _Link | None:
        if not (self.config.cluster and self.sharded):
            return self._links.get("")
        if not self._owners:
            return None
        return self._links.get(self._owners[key_slot(channel.encode())])

    def _classic_address(self) -> tuple[str, int] | None:
        """The next known node, in turn: a classic cluster link can use any."""
        nodes = sorted(self._nodes.values()) or list(self.config.seeds)
        self._next_node += 1
        return nodes[self._next_node % len(nodes)]

    async def _topology(self) -> None:
        loop = asyncio.get_running_loop()
        attempt = 0
        while not self._closed:
            started = loop.time()
            try:
                async with asyncio.timeout(self.connect_timeout + self.command_timeout):
                    await self._read_slot_map()
                attempt = 0
                await self._place_links()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                log.warning("event=redis_topology_error error=%r attempt=%d", exc, attempt)
            if attempt:
                wait = backoff_delay(attempt, self.backoff_base, self.backoff_max, self.rand)
            elif all(link.up for link in self._links.values()):
                wait = TOPOLOGY_INTERVAL
            else:
                wait = TOPOLOGY_OUTAGE_INTERVAL
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._suspect.wait(), wait)
            self._suspect.clear()
            await asyncio.sleep(max(0.0, started + TOPOLOGY_MIN_INTERVAL - loop.time()))

    async def _read_slot_map(self) -> None:
        cluster = self.commands.cluster
        assert cluster is not None
        if cluster._initialize:
            await cluster.initialize()  # the first time: its command parser too
        else:
            await cluster.nodes_manager.initialize()
        owners = [""] * REDIS_CLUSTER_HASH_SLOTS
        nodes: dict[str, tuple[str, int]] = {}
        for slot, slot_nodes in cluster.nodes_manager.slots_cache.items():
            if slot_nodes:
                primary = slot_nodes[0]
                owners[slot] = primary.name
                nodes[primary.name] = (primary.host, int(primary.port))
        if "" in owners:
            raise ConnectionError("the cluster does not serve every slot")
        self._owners, self._nodes = owners, nodes

    async def _place_links(self) -> None:
        """One link per primary (sharded) or one in all (classic); channels go to
        the link of their slot's primary, links of former primaries are closed."""
        if not self.sharded:
            if "" not in self._links:
                link = self._add_link("", self._classic_address, probe_channel(self._probe_id, "0"))
                link.desired = set(self._desired)
            return
        by_node: dict[str, set[str]] = {name: set() for name in self._nodes}
        for channel in self._desired:
            by_node[self._owners[key_slot(channel.encode())]].add(channel)
        for name, link in list(self._links.items()):
            if name not in self._nodes:
                del self._links[name]
                await link.stop(self.command_timeout)
        for name, channels in by_node.items():
            found = self._links.get(name)
            if found is None:
                link = self._add_link(name, _fixed(self._nodes[name]), self._probe_for(name))
            else:
                link = found
            if link.probe is not None and self._owners[key_slot(link.probe.encode())] != name:
                # The probe's slot moved to another primary: a new one for this link.
                link.probe = self._probe_for(name)
                link.kick()
            if channels != link.desired:
                link.desired = channels
                link.kick()
        self.links_changed()

    def _probe_for(self, node: str) -> str:
        """A probe channel whose hash tag is a slot that ``node`` serves."""
        for tag in range(REDIS_CLUSTER_HASH_SLOTS * 8):
            channel = probe_channel(self._probe_id, str(tag))
            if self._owners[key_slot(channel.encode())] == node:
                return channel
        raise ValueError(f"no slot of {node} found")  # pragma: no cover - any slot is found


def _fixed(address: tuple[str, int]) -> Callable[[], tuple[str, int] | None]:
    return lambda: address


def _text(channel: str | bytes) -> str:
    return channel.decode() if isinstance(channel, bytes) else channel
