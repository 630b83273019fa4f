"""The blocking publisher, for WSGI apps, workers and scripts: the same pokes,
revocations and heartbeat as :mod:`tidings.publish.aio`, on redis-py's blocking
clients (the heartbeat on a thread of its own).

Every Redis command times out after one second (broker/redis_sync.py), so one
attempt is bounded, and so are the attempts (:class:`Retry`). Safe to share
between threads: redis-py's clients hold a connection pool.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from tidings.broker.redis_sync import SyncRedisPublisher
from tidings.protocol.channels import CONTROL_CHANNEL
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS
from tidings.publish.outcome import (
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

#: Longest wait for the heartbeat thread to end on :meth:`Heartbeat.stop` (seconds).
STOP_TIMEOUT = 5.0


class PushPublisher(AppIdentity):
    """``pub.poke(project, version)`` after the commit;
    ``pub.revoke(user, project)`` when a user loses access."""

    def __init__(
        self,
        broker: SyncRedisPublisher,
        *,
        retry: Retry = DEFAULT_RETRY,
        token_ttl: float = DEFAULT_TTL_SECONDS,
        sleep: Callable[[float], None] = time.sleep,
        app_id: str | None = None,
        client_name: str | None = None,
    ) -> None:
        """``token_ttl``: the lifetime of the push tokens the app signs (a
        revocation is kept that long for late push servers); ``app_id`` and
        ``client_name``: as for :class:`~tidings.publish.aio.AsyncPushPublisher`."""
        self.broker = broker
        self._retry = retry
        self._keep_revocations = keep_revocations(token_ttl)
        self._sleep = sleep
        self._beats = AppBeats(app_id, client_name)

    @classmethod
    def connect(
        cls,
        url: str | None = None,
        *,
        sharded: bool | None = None,
        env: Mapping[str, str] | None = None,
        retry: Retry = DEFAULT_RETRY,
        token_ttl: float = DEFAULT_TTL_SECONDS,
        app_id: str | None = None,
    ) -> PushPublisher:
        """To Redis at ``url`` or ``REDIS_URL`` (``redis+cluster://`` for a cluster);
        see :func:`tidings.publish.outcome.broker_config`. Connects lazily; every
        connection is named for ``app_id`` (CLIENT SETNAME ``tidings-app:<id>``).
        In a pre-forking server (gunicorn), connect in each worker, after the fork."""
        named = AppBeats.named(app_id)
        broker = SyncRedisPublisher.from_config(
            broker_config(url, sharded=sharded, env=env), client_name=named.client_name
        )
        return cls(
            broker,
            retry=retry,
            token_ttl=token_ttl,
            app_id=named.app_id,
            client_name=named.client_name,
        )

    def poke(
        self,
        project: int,
        version: int,
        *,
        ts: float | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> Outcome:
        """As :meth:`AsyncPushPublisher.poke <tidings.publish.aio.AsyncPushPublisher.poke>`."""
        job = PokeJob.of(project, version, ts=ts, events=events)

        def once() -> Outcome:
            outcome = job.outcome(self.broker.set_version(project, version))
            if outcome.published:
                self.broker.publish(job.channel, job.data)
            return outcome

        return self._attempt(job, once)

    def revoke(self, user: int, project: int, *, at: float | None = None) -> None:
        """As :meth:`AsyncPushPublisher.revoke <tidings.publish.aio.AsyncPushPublisher.revoke>`."""
        job = RevokeJob.of(user, project, at)

        def once() -> None:
            self.broker.record_revocation(job.data, job.at, self._keep_revocations)
            self.broker.publish(CONTROL_CHANNEL, job.data)

        self._attempt(job, once)

    def beat(self, *, push_off: bool = False, failing: int = 0) -> None:
        """As :meth:`AsyncPushPublisher.beat <tidings.publish.aio.AsyncPushPublisher.beat>`."""
        self.broker.publish(CONTROL_CHANNEL, self._beats.beat(push_off=push_off, failing=failing))

    def start_heartbeat(
        self,
        *,
        push_off: Callable[[], bool] = lambda: False,
        interval: float = HEARTBEAT_INTERVAL,
    ) -> Heartbeat:
        """Beat every ``interval`` seconds on a daemon thread until
        :meth:`Heartbeat.stop`; see :meth:`AsyncPushPublisher.heartbeat
        <tidings.publish.aio.AsyncPushPublisher.heartbeat>`. ``push_off`` is called
        on that thread at every beat: return a cached flag, never wait on a database."""
        heartbeat = Heartbeat(self, push_off, interval)
        heartbeat.start()
        return heartbeat

    def bye(self) -> None:
        """``app_bye``: this app's silence from now on is on purpose (shutdown)."""
        self.broker.publish(CONTROL_CHANNEL, self._beats.bye())

    def _attempt(self, job: PokeJob | RevokeJob, once: Callable[[], T]) -> T:
        attempts = None
        while True:
            try:
                return once()
            except Exception as exc:
                attempts = attempts or Attempts(job.what, self._retry)
                self._sleep(attempts.failed(exc))

    def close(self) -> None:
        self.broker.close()

    def __enter__(self) -> PushPublisher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class Heartbeat:
    """The thread :meth:`PushPublisher.start_heartbeat` runs."""

    def __init__(
        self, publisher: PushPublisher, push_off: Callable[[], bool], interval: float
    ) -> None:
        self._publisher = publisher
        self._push_off = push_off
        self._interval = interval
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tidings-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stopping.is_set():
            started = time.monotonic()
            try:
                self._publisher.beat(push_off=self._push_off())
            except Exception as exc:
                log.debug("app heartbeat failed app=%s error=%r", self._publisher.app_id, exc)
            self._stopping.wait(max(0.0, started + self._interval - time.monotonic()))

    def stop(self, *, bye: bool = True) -> None:
        """End the thread (within ``STOP_TIMEOUT``), then say ``app_bye``."""
        self._stopping.set()
        self._thread.join(STOP_TIMEOUT)
        if bye:
            try:
                self._publisher.bye()
            except Exception as exc:
                # Push servers forget this app after their app_forget_after instead.
                log.warning("app_bye failed app=%s error=%r", self._publisher.app_id, exc)
