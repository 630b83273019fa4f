"""Publishing after commit: one queue and one worker per app process.

The command's response never waits for the broker, and a broker failure never
fails a command: the poll path covers anything lost (that is the design). The
queue keeps pokes in commit order and is bounded; when it is full the oldest
poke is dropped and counted (a later poke for the same project supersedes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tidings.app.metrics import Metrics
from tidings.app.versions import VersionCache
from tidings.broker.base import Publisher
from tidings.protocol.channels import project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.store.events import Committed

log = logging.getLogger(__name__)

#: Pokes waiting to be published, at most.
MAX_PENDING = 10_000

#: One publish may take this long before it is abandoned (seconds).
PUBLISH_TIMEOUT = 2.0


class PokePublisher:
    def __init__(
        self,
        publisher: Publisher,
        versions: VersionCache,
        metrics: Metrics,
        *,
        full_push: bool = False,
    ) -> None:
        self._publisher = publisher
        self._versions = versions
        self._metrics = metrics
        self._full_push = full_push
        self._queue: asyncio.Queue[Committed] = asyncio.Queue(MAX_PENDING)
        self._worker: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="tidings-publisher")

    async def close(self) -> None:
        """Publish what is queued (bounded by the timeout), then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), PUBLISH_TIMEOUT)
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker

    def committed(self, committed: Committed) -> None:
        """Called after the transaction committed; never raises, never waits."""
        self._versions.remember(committed.project_id, committed.version)
        if self._queue.full():
            self._queue.get_nowait()
            self._queue.task_done()
            self._metrics.publish_dropped.inc()
        self._queue.put_nowait(committed)

    async def _run(self) -> None:
        while True:
            committed = await self._queue.get()
            try:
                await asyncio.wait_for(self._publish(committed), PUBLISH_TIMEOUT)
                self._metrics.published.inc()
            except Exception as exc:
                self._metrics.publish_failures.inc()
                log.warning(
                    "publish failed project=%s version=%s error=%r",
                    committed.project_id,
                    committed.version,
                    exc,
                )
            finally:
                self._queue.task_done()

    async def _publish(self, committed: Committed) -> None:
        events = (committed.event,) if self._full_push else None
        poke = Poke(committed.project_id, committed.version, committed.event["ts"], events)
        # The version key first: a push server that recovers on this poke reads it.
        await self._publisher.set_version(committed.project_id, committed.version)
        await self._publisher.publish(project_channel(committed.project_id), encode_poke(poke))
