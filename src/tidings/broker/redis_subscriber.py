"""A push server's side of Redis: SUBSCRIBE (or SSUBSCRIBE) to project channels, read versions.

The set of channels is desired state: ``subscribe``/``unsubscribe`` only edit it,
and every (re)connect replays all of it. Reconnects use exponential backoff with
full jitter, so a fleet of push servers does not reconnect in step after a Redis
restart. A connection that stays silent is probed with PING and dropped when
the probe gets no answer (a half-open TCP link looks connected forever).
End-to-end deafness (publish -> receive) is judged by the server (push/link.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any

import redis.asyncio as redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from tidings.broker.base import LinkHandler, MessageHandler, Subscriber
from tidings.broker.redis_publisher import RedisPublisher, connect
from tidings.tasks import stop_tasks

log = logging.getLogger("tidings.broker.redis")

#: Channels per SUBSCRIBE command when replaying the desired set.
SUBSCRIBE_BATCH = 500

#: Message types that confirm a (sharded) subscription.
_CONFIRMATIONS = (b"subscribe", "subscribe", b"ssubscribe", "ssubscribe")


class RedisSubscriber(Subscriber):
    confirms_subscriptions = True

    def __init__(
        self,
        url: str,
        *,
        sharded: bool = False,
        connect_timeout: float = 2.0,
        command_timeout: float = 1.0,
        backoff_base: float = 0.1,
        backoff_max: float = 10.0,
        ping_after: float = 2.0,
        dead_after: float = 5.0,
        rand: Callable[[], float] = random.random,
        client_name: str = "tidings-push",
    ) -> None:
        """``ping_after``: seconds of silence before a PING; ``dead_after``: seconds of
        silence (PING unanswered) before the connection is dropped and redone.
        Reconnect ``n`` waits uniform(0, min(backoff_max, backoff_base * 2**n)) s."""
        self._url = url
        self._sharded = sharded
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._ping_after = ping_after
        self._dead_after = dead_after
        self._rand = rand
        self._client_name = client_name
        self._desired: set[str] = set()
        self._live: set[str] = set()
        self._pubsub: Any = None
        self._broken: BaseException | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._on_message: MessageHandler | None = None
        self._on_link: LinkHandler | None = None
        self._commands = RedisPublisher(connect(url), sharded=sharded)
        self._closed = False
        #: Reconnect attempts since start (a metric).
        self.reconnects = 0
        self.connected = False

    # -- Subscriber ------------------------------------------------------------

    def start(self, on_message: MessageHandler, on_link: LinkHandler) -> None:
        self._on_message = on_message
        self._on_link = on_link
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-subscriber")

    def subscribe(self, channel: str) -> None:
        if channel not in self._desired:
            self._desired.add(channel)
            self._kick()

    def unsubscribe(self, channel: str) -> None:
        if channel in self._desired:
            self._desired.discard(channel)
            self._kick()

    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        async with asyncio.timeout(self._command_timeout):
            return await self._commands.get_versions(project_ids)

    async def publish(self, channel: str, data: bytes) -> None:
        async with asyncio.timeout(self._command_timeout):
            await self._commands.publish(channel, data)

    async def recent_revocations(self, since: float) -> list[bytes]:
        async with asyncio.timeout(self._command_timeout):
            return await self._commands.recent_revocations(since)

    async def client_names(self) -> set[str] | None:
        async with asyncio.timeout(self._command_timeout):
            return await self._commands.client_names()

    async def close(self) -> None:
        self._closed = True
        await stop_tasks((self._sync_task, self._task), self._command_timeout)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._command_timeout):
                await self._commands.close()

    # -- the connection --------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        while not self._closed:
            client: redis.Redis | None = None
            try:
                async with asyncio.timeout(self._connect_timeout):
                    client = redis.Redis.from_url(
                        self._url,
                        socket_connect_timeout=self._connect_timeout,
                        socket_timeout=self._command_timeout,
                        retry=Retry(NoBackoff(), 0),
                        health_check_interval=0,
                        client_name=self._client_name,
                    )
                    pubsub: Any = client.pubsub()
                    await pubsub.connect()
                    self._live = set()
                    self._broken = None
                    await self._apply(pubsub)
                self._pubsub = pubsub
                self.connected = True
                attempt = 0
                self._link(True)
                await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("event=redis_link_error error=%r attempt=%d", exc, attempt)
            finally:
                self._pubsub = None
                if self.connected:
                    self.connected = False
                    self._link(False)
                if client is not None:
                    await self._dispose(client)
            if self._closed:
                return
            attempt += 1
            self.reconnects += 1
            delay = self._rand() * min(self._backoff_max, self._backoff_base * 2**attempt)
            await asyncio.sleep(delay)

    def _link(self, up: bool) -> None:
        if self._on_link is not None:
            self._on_link(up)

    async def _dispose(self, client: redis.Redis) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self._command_timeout):
                await client.aclose()

    async def _read(self, pubsub: Any) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        pinged = False
        poll = min(0.5, self._ping_after / 2)
        while True:
            if self._broken is not None:
                raise self._broken
            message = await pubsub.get_message(timeout=poll)
            now = loop.time()
            if message is None:
                silent = now - last
                if silent > self._dead_after:
                    raise ConnectionError(f"Redis silent for {silent:.1f} s")
                if silent > self._ping_after and not pinged:
                    pinged = True
                    async with asyncio.timeout(self._command_timeout):
                        await pubsub.ping()
                continue
            last, pinged = now, False
            kind = message.get("type")
            if kind in (b"message", "message", b"smessage", "smessage"):
                if self._on_message is not None:
                    self._on_message(_text(message["channel"]), message["data"])
            elif kind in _CONFIRMATIONS and self.on_subscribed is not None:
                # SUBSCRIBE is sent without waiting; this confirmation is when
                # the channel is live (it travels on this connection, in order).
                self.on_subscribed(_text(message["channel"]))

    def _kick(self) -> None:
        if self._pubsub is None or (self._sync_task is not None and not self._sync_task.done()):
            return
        self._sync_task = asyncio.get_running_loop().create_task(self._sync(self._pubsub))

    async def _sync(self, pubsub: Any) -> None:
        try:
            async with asyncio.timeout(self._command_timeout):
                await self._apply(pubsub)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Let the reader drop the connection; the reconnect replays everything.
            self._broken = exc

    async def _apply(self, pubsub: Any) -> None:
        """Bring the live subscription to the desired set (loops: it may change meanwhile)."""
        sub = pubsub.ssubscribe if self._sharded else pubsub.subscribe
        unsub = pubsub.sunsubscribe if self._sharded else pubsub.unsubscribe
        while self._live != self._desired:
            add = sorted(self._desired - self._live)[:SUBSCRIBE_BATCH]
            remove = sorted(self._live - self._desired)[:SUBSCRIBE_BATCH]
            if add:
                await sub(*add)
                self._live.update(add)
            if remove:
                await unsub(*remove)
                self._live.difference_update(remove)


def _text(channel: str | bytes) -> str:
    return channel.decode() if isinstance(channel, bytes) else channel
