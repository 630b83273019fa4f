"""The sweeper: pokes for commits whose own poke never reached the broker.

A poke queued in an app process that dies before publishing it (app/publisher.py
keeps its queue in memory) leaves the project's version key behind the store, and
its watchers would learn of the change only by polling. Every ``interval`` each
app process walks the projects changed since its last pass (``projects.updated_at``,
indexed), compares each with its version key, and for every key that is behind
(or missing) raises the key and publishes the usual poke, without events
(clients poll on the gap). A second cursor walks the same changes 30 s later,
for a commit that became visible only after the first had passed its
timestamp. It does not judge push servers' delivery: a key that is right but
whose poke a push server missed is their audit's job (push/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from tidings.app.metrics import Metrics
from tidings.broker.base import Publisher
from tidings.publish.aio import AsyncPushPublisher
from tidings.publish.outcome import Retry
from tidings.store.events import Change, EventStore
from tidings.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Seconds between passes (``TIDINGS_SWEEP_INTERVAL``; 0 turns the sweeper off).
DEFAULT_INTERVAL = 15.0

#: A commit younger than this is left to its own publisher, whose poke may still
#: be queued: a poke a few milliseconds late must not be sent twice. It is also
#: the slack for a transaction that commits after taking its timestamp and for
#: app processes' clocks disagreeing; a commit later than that by more (the
#: position has moved past it) is found by the trailing pass.
DEFAULT_GRACE = 2.0

#: A second cursor walks the same changes this much later, for commits that
#: became visible after the first had passed their timestamp (a transaction
#: slow to commit, app clocks apart by more than ``grace``). Under the version
#: keys' 60 s lifetime, so a key its publisher did write is still there to agree.
DEFAULT_TRAILING = 30.0

#: At start-up the walk begins this far back (seconds), so a process that replaces
#: one that crashed heals what that one left unpublished.
DEFAULT_WINDOW = 600.0

#: Projects read per pass (one indexed query and one MGET). A full page means more
#: are waiting: the next pass follows after ``BUSY_PAUSE`` rather than ``interval``,
#: so one process compares at most ``batch / BUSY_PAUSE`` projects a second.
DEFAULT_BATCH = 1000
BUSY_PAUSE = 1.0

#: Every database read and broker command of a pass is abandoned after this long
#: (seconds); the pass ends there and the next one retries from the same position.
STEP_TIMEOUT = 5.0


class Sweeper:
    def __init__(
        self,
        store: EventStore,
        publisher: Publisher,
        metrics: Metrics,
        *,
        interval: float = DEFAULT_INTERVAL,
        grace: float = DEFAULT_GRACE,
        window: float = DEFAULT_WINDOW,
        trailing: float = DEFAULT_TRAILING,
        batch: int = DEFAULT_BATCH,
        timeout: float = STEP_TIMEOUT,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._metrics = metrics
        self.interval = interval
        self._grace = grace
        self._batch = batch
        self._timeout = timeout
        #: One attempt a heal: a failed one is retried on the next pass.
        self._push = AsyncPushPublisher(publisher, retry=Retry(attempts=1), timeout=timeout)
        #: Wall-clock time, like the commit times it is compared with.
        self._clock = clock
        self._rand = rand
        self._trailing = trailing
        #: ``(commit time, project id)`` of the last change compared, by the
        #: first pass and by the trailing one.
        self.position: tuple[float, int] = (clock() - window, 0)
        self.trailing_position = self.position
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self.interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="tidings-sweeper")

    async def close(self) -> None:
        task, self._task = self._task, None
        await stop_tasks((task,), self._timeout)

    async def _run(self) -> None:
        # The first pass at a random point of the first interval: app processes
        # started together (``--workers N``, a deploy) do not sweep in step.
        await asyncio.sleep(self.interval * self._rand())
        while True:
            try:
                read = await self.sweep()
            except Exception:  # pragma: no cover - sweep() handles its own failures
                log.exception("sweep failed")
                read = 0
            await asyncio.sleep(BUSY_PAUSE if read >= self._batch else self.interval)

    async def sweep(self) -> int:
        """One pass of each cursor; returns the most changes either read. Never
        raises: a failure is logged and counted, and the next pass starts where
        this one stopped."""
        now = self._clock()
        read, self.position = await self._walk(self.position, now - self._grace)
        if read < 0:
            return 0  # the pass ends at the first failure
        late, self.trailing_position = await self._walk(
            self.trailing_position, now - self._trailing
        )
        return max(read, late)

    async def _walk(
        self, position: tuple[float, int], upto: float
    ) -> tuple[int, tuple[float, int]]:
        """Compare (and heal) the changes after ``position`` up to ``upto``, one
        batch; returns how many were read (-1 on a failure) and the position
        reached."""
        try:
            async with asyncio.timeout(self._timeout):
                changes = await self._store.changed(position, upto, self._batch)
        except Exception as exc:
            self._failed("store", exc)
            return -1, position
        if not changes:
            return 0, position
        try:
            async with asyncio.timeout(self._timeout):
                keys = await self._publisher.get_versions([c.project_id for c in changes])
        except Exception as exc:
            self._failed("get_versions", exc)
            return -1, position
        self._metrics.sweeper_checked.inc(len(changes))
        healed: list[str] = []
        try:
            for change in changes:
                key = keys.get(change.project_id)
                # A missing key is behind too: it expires a minute after its last
                # write, so an idle project's lost poke usually leaves none.
                if key is None or key < change.version:
                    try:
                        async with asyncio.timeout(self._timeout):
                            await self._heal(change)
                    except Exception as exc:
                        self._failed("heal", exc)
                        return -1, position
                    self._metrics.sweeper_healed.inc()
                    healed.append(f"{change.project_id}:{key}->{change.version}")
                position = (change.ts, change.project_id)
        finally:
            if healed:
                # One line a pass; after a restart a pass may heal hundreds.
                log.info("sweeper healed count=%d first=%s", len(healed), " ".join(healed[:10]))
        return len(changes), position

    async def _heal(self, change: Change) -> None:
        """What the committing process would have done: the key first (a push server
        that recovers on this poke reads it), then the poke, stamped with the commit
        time so clients' freshness figures show the delay."""
        await self._push.poke(change.project_id, change.version, ts=change.ts)

    def _failed(self, op: str, exc: Exception) -> None:
        self._metrics.sweeper_errors.labels(op).inc()
        log.warning("sweep failed op=%s error=%r (retried next pass)", op, exc)
