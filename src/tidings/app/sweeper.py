"""The sweeper: pokes for commits whose own poke never reached the broker.

A poke queued in an app process that dies before publishing it (app/publisher.py
keeps its queue in memory) leaves the project's version key behind the store, and
its watchers would learn of the change only by polling. Every ``interval`` each
app process walks the projects changed since its last pass (``projects.updated_at``,
indexed), compares each with its version key, and for every key that is behind
(or missing) raises the key and publishes the usual poke, without events
(clients poll on the gap). It does not judge push servers' delivery: a key that
is right but whose poke a push server missed is their audit's job (push/server.py).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable

from tidings.app.metrics import Metrics
from tidings.broker.base import Publisher
from tidings.protocol.channels import project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.store.events import Change, EventStore
from tidings.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Seconds between passes (``TIDINGS_SWEEP_INTERVAL``; 0 turns the sweeper off).
DEFAULT_INTERVAL = 15.0

#: A commit younger than this is left to its own publisher, whose poke may still
#: be queued: a poke a few milliseconds late must not be sent twice. It is also
#: the slack for a transaction that commits after taking its timestamp and for
#: app processes' clocks disagreeing; a commit later than that by more (the
#: position has moved past it) waits for its project's next change or a poll.
DEFAULT_GRACE = 2.0

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
        #: Wall-clock time, like the commit times it is compared with.
        self._clock = clock
        self._rand = rand
        #: ``(commit time, project id)`` of the last change compared.
        self.position: tuple[float, int] = (clock() - window, 0)
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
        """One pass; returns how many changes were read. Never raises: a failure
        is logged and counted, and the next pass starts where this one stopped."""
        upto = self._clock() - self._grace
        try:
            async with asyncio.timeout(self._timeout):
                changes = await self._store.changed(self.position, upto, self._batch)
        except Exception as exc:
            self._failed("store", exc)
            return 0
        if not changes:
            return 0
        try:
            async with asyncio.timeout(self._timeout):
                keys = await self._publisher.get_versions([c.project_id for c in changes])
        except Exception as exc:
            self._failed("get_versions", exc)
            return 0
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
                        return 0
                    self._metrics.sweeper_healed.inc()
                    healed.append(f"{change.project_id}:{key}->{change.version}")
                self.position = (change.ts, change.project_id)
        finally:
            if healed:
                # One line a pass; after a restart a pass may heal hundreds.
                log.info("sweeper healed count=%d first=%s", len(healed), " ".join(healed[:10]))
        return len(changes)

    async def _heal(self, change: Change) -> None:
        """What the committing process would have done: the key first (a push server
        that recovers on this poke reads it), then the poke, stamped with the commit
        time so clients' freshness figures show the delay."""
        await self._publisher.set_version(change.project_id, change.version)
        poke = Poke(change.project_id, change.version, change.ts)
        await self._publisher.publish(project_channel(change.project_id), encode_poke(poke))

    def _failed(self, op: str, exc: Exception) -> None:
        self._metrics.sweeper_errors.labels(op).inc()
        log.warning("sweep failed op=%s error=%r (retried next pass)", op, exc)
