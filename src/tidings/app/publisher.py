"""Publishing after commit: a queue and a worker per broker shard, in each app process.

Each poke and revocation goes out through the publisher library
(tidings.publish: the version key's compare-and-set, then the poke), one
attempt at a time: retries are this module's, from its own loop.

The command's response never waits for the broker, and a broker failure never
fails a command: the poll path covers anything lost (that is the design). Each
queue keeps pokes in commit order and is bounded; when it is full the oldest
poke is dropped and counted (a later poke for the same project supersedes it).
On a Redis Cluster with sharded pub/sub each shard (the primary serving the
project's slot) has its own queue ("lane"), so a failing shard delays only its
own pokes. A change that takes a user's access away (``member_removed``) is
also published as a ``revoke`` on the control channel, before its poke
(protocol/control.py).

Every second the process also publishes an ``app_heartbeat`` through the same
``Publisher`` (the same connection pool, so the same network path) as its
pokes: when this process's path to the broker breaks, push servers stop hearing
it and report ``degraded``, so clients poll at the short interval instead of
waiting a long interval for a poke that was lost (push/apps.py). The heartbeat
runs beside the queues, not in them: it measures the path, and must not wait
behind (or be dropped with) a backlog of pokes, nor behind their retries. Pokes
that failed are kept (the latest per project) and published again, version key
first, once a second by their own loop, each shard's on its own and stopping at
its first failure; until all are out, every heartbeat says how many are pending
(``publish_failing``), and push servers stay ``degraded``: an app that is alive
but cannot publish (a shard down, ``OOM command not allowed``, an ACL) is never
taken for a healthy one. When the count falls to zero the version keys are
already right, so the push servers' re-check on recovery finds every change.
On shutdown an ``app_bye`` tells push servers this silence is on purpose. The
heartbeat also carries the kill switch (``push: "off"``), so that push servers
send their clients to the poll, and so to the poll's advice, within seconds
rather than at the clients' long interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Hashable
from typing import Any

from tidings.app.metrics import Metrics
from tidings.app.versions import VersionCache
from tidings.broker.base import Publisher
from tidings.protocol.channels import project_channel
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS
from tidings.publish.aio import AsyncPushPublisher
from tidings.publish.outcome import HEARTBEAT_INTERVAL, PokeJob, Retry
from tidings.store.events import Committed
from tidings.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Pokes waiting to be published, at most, per lane (shard).
MAX_PENDING = 10_000

#: Lanes at most: one per primary a poke was routed to (a cluster's primaries
#: and the replicas promoted since start). Past it, pokes share the last lane.
MAX_LANES = 64

#: One publish may take this long before it is abandoned (seconds).
PUBLISH_TIMEOUT = 2.0

#: How often the watchdog looks for a publish past ``PUBLISH_TIMEOUT`` (seconds):
#: a stalled publish is abandoned after 2.0 to 2.25 s.
WATCH_INTERVAL = 0.25

#: Longest wait for the worker and the heartbeat to end after cancel (seconds).
STOP_TIMEOUT = 5.0


class Lane:
    """One shard's queue and worker, and when the worker's publish in progress
    began (None between publishes), for the watchdog."""

    __slots__ = ("abandoned", "began", "queue", "worker")

    def __init__(self) -> None:
        self.queue: asyncio.Queue[Committed] = asyncio.Queue(MAX_PENDING)
        self.worker: asyncio.Task[None] | None = None
        self.began: float | None = None
        #: Set by the watchdog when it cancels the publish in progress.
        self.abandoned = False

    def overdue(self, now: float) -> bool:
        return self.began is not None and not self.abandoned and now - self.began > PUBLISH_TIMEOUT


class PokePublisher:
    def __init__(
        self,
        publisher: Publisher,
        versions: VersionCache,
        metrics: Metrics,
        *,
        full_push: bool = False,
        token_lifetime: float = DEFAULT_TTL_SECONDS,
        push_off: Callable[[], Awaitable[bool]] | None = None,
        app_id: str | None = None,
        client_name: str | None = None,
    ) -> None:
        """``client_name``: the Redis client name of ``publisher``'s connections,
        if it names them; the heartbeat carries it (protocol/control.py)."""
        self._publisher = publisher
        #: Whether the kill switch has push off for everyone (read per heartbeat).
        self._push_off = push_off
        self._last_push_off = False
        self._flags_read: asyncio.Task[None] | None = None
        self._versions = versions
        self._metrics = metrics
        self._full_push = full_push
        #: One attempt per call, bounded by PUBLISH_TIMEOUT: failures are kept and
        #: retried by ``_retry_loop``, which must never stall a lane's worker.
        #: Its ``app_id`` names this process on the control channel (heartbeat, bye).
        self._push = AsyncPushPublisher(
            publisher,
            retry=Retry(attempts=1),
            timeout=PUBLISH_TIMEOUT,
            token_ttl=token_lifetime,
            app_id=app_id,
            client_name=client_name,
        )
        self.app_id = self._push.app_id
        #: lane -> its queue and worker (broker.base.Publisher.lane).
        self._lanes: dict[Hashable, Lane] = {}
        self._started = False
        self._retry: asyncio.Task[None] | None = None
        self._watchdog: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        #: The latest poke per project whose publish failed, to be sent again once
        #: the path works; at most ``MAX_PENDING`` projects (oldest dropped first).
        self._unsent: dict[int, Committed] = {}
        #: Revocations (user, project, at) whose publish failed, sent again with
        #: the pokes: a poke kept above may be a later change of the project,
        #: which would not carry the revocation. At most ``MAX_PENDING``.
        self._unsent_revokes: dict[tuple[int, int, float], None] = {}

    def start(self) -> None:
        self._started = True
        self._heartbeat = asyncio.create_task(self._beat(), name="tidings-app-heartbeat")
        self._retry = asyncio.create_task(self._retry_loop(), name="tidings-publish-retry")
        self._watchdog = asyncio.create_task(self._watch(), name="tidings-publish-watchdog")

    async def close(self) -> None:
        """Publish what is queued (bounded by the timeout), then stop."""
        if not self._started:
            return
        self._started = False
        queues = [lane.queue.join() for lane in self._lanes.values()]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.gather(*queues), PUBLISH_TIMEOUT)
        workers = [lane.worker for lane in self._lanes.values()]
        tasks = (self._heartbeat, self._retry, self._watchdog, self._flags_read, *workers)
        await stop_tasks(tasks, STOP_TIMEOUT)
        self._lanes.clear()
        self._heartbeat = self._retry = self._watchdog = None
        try:
            await self._push.bye()
        except Exception as exc:
            # Push servers forget this process after app_forget_after instead.
            log.warning("app_bye publish failed app=%s error=%r", self.app_id, exc)

    def committed(self, committed: Committed) -> None:
        """Called after the transaction committed; never raises, never waits."""
        self._versions.remember(committed.project_id, committed.version)
        queue = self._queue_for(committed.project_id)
        if queue.full():
            queue.get_nowait()
            queue.task_done()
            self._metrics.publish_dropped.inc()
        queue.put_nowait(committed)

    @property
    def failing(self) -> int:
        """Pokes and revocations whose publish failed and that are not out yet."""
        return len(self._unsent) + len(self._unsent_revokes)

    def _lane(self, project_id: int) -> Hashable:
        lane = self._publisher.lane(project_channel(project_id))
        if lane not in self._lanes and len(self._lanes) >= MAX_LANES:
            return next(reversed(self._lanes))
        return lane

    def _queue_for(self, project_id: int) -> asyncio.Queue[Committed]:
        key = self._lane(project_id)
        lane = self._lanes.get(key)
        if lane is None:
            lane = self._lanes[key] = Lane()
            lane.worker = asyncio.get_running_loop().create_task(
                self._run(lane), name=f"tidings-publisher-{key}"
            )
        return lane.queue

    async def _run(self, lane: Lane) -> None:
        """Publish the lane's pokes in order, each within ``PUBLISH_TIMEOUT``: not
        a timer each (``asyncio.timeout`` schedules and cancels a loop timer, ~3.8
        us on uvloop, measured), but ``_watch``, which cancels a publish that
        has run too long; that cancellation is taken here as the timeout."""
        queue, loop = lane.queue, asyncio.get_running_loop()
        this = asyncio.current_task()
        assert this is not None
        while True:
            committed = await queue.get()
            lane.began = loop.time()
            try:
                await self._publish(committed)
            except asyncio.CancelledError:
                if not lane.abandoned:
                    raise
                lane.abandoned = False
                this.uncancel()
                self._failed(committed, TimeoutError(f"publish over {PUBLISH_TIMEOUT} s"))
            except Exception as exc:
                self._failed(committed, exc)
            else:
                self._metrics.published.inc()
                self._sent(committed)
            finally:
                lane.began = None
                queue.task_done()

    async def _watch(self) -> None:
        """Cancel any lane's publish that has run past ``PUBLISH_TIMEOUT``."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            now = loop.time()
            for lane in self._lanes.values():
                if lane.overdue(now) and lane.worker is not None:
                    lane.abandoned = True
                    lane.worker.cancel()

    def _failed(self, committed: Committed, exc: BaseException) -> None:
        self._metrics.publish_failures.inc()
        self._keep_unsent(committed)
        log.warning(
            "publish failed project=%s version=%s error=%r",
            committed.project_id,
            committed.version,
            exc,
        )

    async def _publish(self, committed: Committed) -> None:
        """One try, bounded by the caller: the worker's watchdog, or the retry
        loop's timeout."""
        revoked = revoked_user(committed.event)
        if revoked is not None:
            await self._revoke(committed, revoked)
        await self._poke(committed)

    async def _poke(self, committed: Committed) -> None:
        events = (committed.event,) if self._full_push else None
        job = PokeJob.of(
            committed.project_id, committed.version, ts=committed.event["ts"], events=events
        )
        await self._push.poke_once(job)

    def _keep_unsent(self, committed: Committed) -> None:
        kept = self._unsent.pop(committed.project_id, None)
        self._unsent[committed.project_id] = (
            committed if kept is None or committed.version >= kept.version else kept
        )
        while len(self._unsent) > MAX_PENDING:
            del self._unsent[next(iter(self._unsent))]

    def _sent(self, committed: Committed) -> None:
        kept = self._unsent.get(committed.project_id)
        if kept is not None and kept.version <= committed.version:
            del self._unsent[committed.project_id]

    async def _beat(self) -> None:
        """One heartbeat a second, bounded by ``PUBLISH_TIMEOUT`` (so at most one
        is in flight), carrying how many publishes are failing. Nothing else waits
        in this loop: a retry that hangs on a dead shard must not silence us."""
        await self._push.heartbeat(push_off=self._switched_off, failing=lambda: self.failing)

    async def _retry_loop(self) -> None:
        """Once a second, publish again what failed: revocations first, then the
        pokes of each lane concurrently, each lane bounded by ``PUBLISH_TIMEOUT``
        and stopping at its first failure (the next pass tries again)."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if self.failing:
                try:
                    await self._resend()
                except Exception as exc:
                    log.warning("publish retry failed app=%s error=%r", self.app_id, exc)
            await asyncio.sleep(max(0.0, started + HEARTBEAT_INTERVAL - loop.time()))

    async def _resend(self) -> None:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for revocation in list(self._unsent_revokes):
                    await self._push.revoke(*revocation[:2], at=revocation[2])
                    del self._unsent_revokes[revocation]
                    self._metrics.revocations.labels("published").inc()
        lanes: dict[Hashable, list[Committed]] = {}
        for committed in self._unsent.values():
            lanes.setdefault(self._lane(committed.project_id), []).append(committed)
        sent = await asyncio.gather(*(self._resend_lane(pokes) for pokes in lanes.values()))
        if sum(sent):
            log.info("pokes published again after failures app=%s count=%d", self.app_id, sum(sent))

    async def _resend_lane(self, pokes: list[Committed]) -> int:
        sent = 0
        with contextlib.suppress(Exception):
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                for committed in pokes:
                    await self._poke(committed)
                    self._sent(committed)
                    self._metrics.published.inc()
                    sent += 1
        return sent

    def _switched_off(self) -> bool:
        """The kill switch as last read, and a new read started beside the heartbeat:
        the heartbeat measures the path to the broker and must not wait on the
        database (a slow read would make push servers call this app silent)."""
        if self._push_off is not None and (self._flags_read is None or self._flags_read.done()):
            self._flags_read = asyncio.create_task(self._read_flags(self._push_off))
        return self._last_push_off

    async def _read_flags(self, push_off: Callable[[], Awaitable[bool]]) -> None:
        """A failed or slow read keeps the previous answer."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                self._last_push_off = await push_off()
        except Exception as exc:
            log.warning("app heartbeat: flags read failed app=%s error=%r", self.app_id, exc)

    async def _revoke(self, committed: Committed, user: int) -> None:
        """Tell every push server at once, and keep it for those that start or
        reconnect later; if this fails, the user's push tokens still name the
        project until they expire (the poll path refuses at once)."""
        at = committed.event["ts"]
        try:
            await self._push.revoke(user, committed.project_id, at=at)
        except Exception as exc:
            self._metrics.revocations.labels("failed").inc()
            self._unsent_revokes[user, committed.project_id, at] = None
            while len(self._unsent_revokes) > MAX_PENDING:
                del self._unsent_revokes[next(iter(self._unsent_revokes))]
            log.warning(
                "revoke publish failed project=%s user=%s error=%r",
                committed.project_id,
                user,
                exc,
            )
            return
        self._metrics.revocations.labels("published").inc()


def revoked_user(event: dict[str, Any]) -> int | None:
    """The user whose access this event takes away, if any."""
    if event.get("type") == "member_removed":
        user = event.get("data", {}).get("user_id")
        if type(user) is int:
            return user
    return None
