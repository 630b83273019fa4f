"""The asyncio publisher: pokes after commit and revocations, with bounded
retries, and the app's heartbeat.

Over any ``broker.base.Publisher`` (Redis, one node or a cluster; the in-process
broker of ``tidings demo``). It keeps no queue: a caller that must never wait
on the broker (our tracker, app/publisher.py) queues in front of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from tidings.broker.base import Publisher
from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import CONTROL_CHANNEL
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS
from tidings.publish.outcome import (
    ATTEMPT_TIMEOUT,
    DEFAULT_RETRY,
    HEARTBEAT_INTERVAL,
    AppBeats,
    AppIdentity,
    Attempts,
    Outcome,
    PokeJob,
    Retry,
    RevokeJob,
    broker_config,
    keep_revocations,
)

T = TypeVar("T")

log = logging.getLogger(__name__)


class AsyncPushPublisher(AppIdentity):
    """``await pub.poke(project, version)`` after the commit;
    ``await pub.revoke(user, project)`` when a user loses access."""

    def __init__(
        self,
        broker: Publisher,
        *,
        retry: Retry = DEFAULT_RETRY,
        timeout: float = ATTEMPT_TIMEOUT,
        token_ttl: float = DEFAULT_TTL_SECONDS,
        app_id: str | None = None,
        client_name: str | None = None,
    ) -> None:
        """``timeout``: seconds per attempt; ``token_ttl``: the lifetime of the push
        tokens the app signs (a revocation is kept that long for late push servers);
        ``app_id``: names this process in its heartbeats (random by default);
        ``client_name``: the Redis client name of ``broker``'s connections, if it
        sets one (push servers then tell a dead app from a cut-off one)."""
        self.broker = broker
        self._retry = retry
        self._timeout = timeout
        self._keep_revocations = keep_revocations(token_ttl)
        self._beats = AppBeats(app_id, client_name)

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        sharded: bool | None = None,
        env: Mapping[str, str] | None = None,
        retry: Retry = DEFAULT_RETRY,
        timeout: float = ATTEMPT_TIMEOUT,
        token_ttl: float = DEFAULT_TTL_SECONDS,
        app_id: str | None = None,
    ) -> AsyncPushPublisher:
        """To Redis at ``url`` or ``REDIS_URL`` (``redis+cluster://`` for a cluster);
        see :func:`tidings.publish.outcome.broker_config`. Connects lazily; every
        connection is named for ``app_id`` (CLIENT SETNAME ``tidings-app:<id>``)."""
        named = AppBeats.named(app_id)
        broker = RedisPublisher.from_config(
            broker_config(url, sharded=sharded, env=env), client_name=named.client_name
        )
        return cls(
            broker,
            retry=retry,
            timeout=timeout,
            token_ttl=token_ttl,
            app_id=named.app_id,
            client_name=named.client_name,
        )

    async def poke(
        self,
        project: int,
        version: int,
        *,
        ts: float | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> Outcome:
        """Publish that ``project`` is at ``version``: the version key's
        compare-and-set, then the poke unless the key held a later version.
        ``events``: full push (the events after the previous version, ending at
        ``version``). Raises :class:`PublishFailed` after the last attempt."""
        job = PokeJob.of(project, version, ts=ts, events=events)
        return await self._attempt(job, lambda: self.poke_once(job))

    async def poke_once(self, job: PokeJob) -> Outcome:
        """One try of ``job``, with no time bound of its own: for a caller that
        bounds its tries itself (the tracker's publisher watches its workers
        rather than starting a timer per poke)."""
        outcome = job.outcome(await self.broker.set_version(job.project, job.version))
        if outcome.published:
            await self.broker.publish(job.channel, job.data)
        return outcome

    async def revoke(self, user: int, project: int, *, at: float | None = None) -> None:
        """Tell every push server that ``user`` lost ``project`` at ``at`` (epoch
        seconds, default now; the commit's time is best): they close the user's
        subscriptions to it whose token was issued before ``at``. Kept in Redis
        for push servers that start or reconnect later."""
        job = RevokeJob.of(user, project, at)

        async def once() -> None:
            await self.broker.record_revocation(job.data, job.at, self._keep_revocations)
            await self.broker.publish(CONTROL_CHANNEL, job.data)

        await self._attempt(job, once)

    async def beat(self, *, push_off: bool = False, failing: int = 0) -> None:
        """Publish one ``app_heartbeat`` (docs/PROTOCOL.md §3.2), one attempt
        bounded by the timeout: the next beat is the retry. ``push_off``: the
        kill switch is on, so push servers send their clients to the poll (and
        so to its advice) within seconds; ``failing``: pokes not out yet."""
        message = self._beats.beat(push_off=push_off, failing=failing)
        async with asyncio.timeout(self._timeout):
            await self.broker.publish(CONTROL_CHANNEL, message)

    async def heartbeat(
        self,
        *,
        push_off: Callable[[], bool] = lambda: False,
        failing: Callable[[], int] = lambda: 0,
        interval: float = HEARTBEAT_INTERVAL,
    ) -> None:
        """Beat every ``interval`` seconds until cancelled (run it as a task, and
        :meth:`bye` on shutdown). Once push servers have heard this app, its
        silence means its path to Redis broke: they report ``degraded`` and
        clients poll at the short interval. ``push_off`` and ``failing`` are read
        at every beat and must not block: a beat measures the path to Redis."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self.beat(push_off=push_off(), failing=failing())
            except Exception as exc:
                log.debug("app heartbeat failed app=%s error=%r", self.app_id, exc)
            await asyncio.sleep(max(0.0, started + interval - loop.time()))

    async def bye(self) -> None:
        """``app_bye``: this app's silence from now on is on purpose (shutdown)."""
        async with asyncio.timeout(self._timeout):
            await self.broker.publish(CONTROL_CHANNEL, self._beats.bye())

    async def _attempt(self, job: PokeJob | RevokeJob, once: Callable[[], Awaitable[T]]) -> T:
        attempts = None
        while True:
            try:
                async with asyncio.timeout(self._timeout):
                    return await once()
            except Exception as exc:
                attempts = attempts or Attempts(job.what, self._retry)
                await asyncio.sleep(attempts.failed(exc))

    async def close(self) -> None:
        await self.broker.close()

    async def __aenter__(self) -> AsyncPushPublisher:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
