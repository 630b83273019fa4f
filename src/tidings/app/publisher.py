"""Publishing after commit: one queue and one worker per app process.

The command's response never waits for the broker, and a broker failure never
fails a command: the poll path covers anything lost (that is the design). The
queue keeps pokes in commit order and is bounded; when it is full the oldest
poke is dropped and counted (a later poke for the same project supersedes it).
A change that takes a user's access away (``member_removed``) is also published
as a ``revoke`` on the control channel, before its poke (protocol/control.py).

Every second the process also publishes an ``app_heartbeat`` through the same
``Publisher`` (the same connection pool, so the same network path) as its
pokes: when this process's path to the broker breaks, push servers stop hearing
it and report ``degraded``, so clients poll at the short interval instead of
waiting a long interval for a poke that was lost (push/apps.py). The heartbeat
runs beside the queue, not in it: it measures the path, and must not wait
behind (or be dropped with) a backlog of pokes. Pokes that failed are kept (the
latest per project) and published again, version key first, just before the
first heartbeat that gets through, so a push server that re-checks its projects
on hearing us again reads version keys that are already right. On shutdown an
``app_bye`` tells push servers this silence is on purpose. The heartbeat also
carries the kill switch (``push: "off"``), so that push servers send their
clients to the poll, and so to the poll's advice, within seconds rather than at
the clients' long interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from tidings.app.metrics import Metrics
from tidings.app.versions import VersionCache
from tidings.broker.base import Publisher
from tidings.protocol import control
from tidings.protocol.channels import CONTROL_CHANNEL, project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS, LEEWAY_SECONDS
from tidings.store.events import Committed
from tidings.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Pokes waiting to be published, at most.
MAX_PENDING = 10_000

#: One publish may take this long before it is abandoned (seconds).
PUBLISH_TIMEOUT = 2.0

#: Longest wait for the worker and the heartbeat to end after cancel (seconds).
STOP_TIMEOUT = 5.0

#: Seconds between app heartbeats (push servers call an app silent after 3 s).
HEARTBEAT_INTERVAL = 1.0


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
        self._client_name = client_name
        #: Whether the kill switch has push off for everyone (read per heartbeat).
        self._push_off = push_off
        self._last_push_off = False
        self._flags_read: asyncio.Task[None] | None = None
        self._versions = versions
        self._metrics = metrics
        self._full_push = full_push
        #: A revocation matters while a token issued before it may still be valid.
        self._keep_revocations = token_lifetime + 2 * LEEWAY_SECONDS
        self._queue: asyncio.Queue[Committed] = asyncio.Queue(MAX_PENDING)
        self._worker: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        #: Names this process on the control channel (app_heartbeat, app_bye).
        self.app_id = app_id or secrets.token_hex(8)
        self._seq = 0
        #: The latest poke per project whose publish failed, to be sent again once
        #: the path works; at most ``MAX_PENDING`` projects (oldest dropped first).
        self._unsent: dict[int, Committed] = {}
        #: ``revoke`` messages (with their ``at``) whose publish failed, sent again
        #: with the pokes: a poke kept above may be a later change of the project,
        #: which would not carry the revocation. At most ``MAX_PENDING``.
        self._unsent_revokes: dict[bytes, float] = {}

    def start(self) -> None:
        self._worker = asyncio.create_task(self._run(), name="tidings-publisher")
        self._heartbeat = asyncio.create_task(self._beat(), name="tidings-app-heartbeat")

    async def close(self) -> None:
        """Publish what is queued (bounded by the timeout), then stop."""
        if self._worker is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), PUBLISH_TIMEOUT)
        await stop_tasks((self._heartbeat, self._worker, self._flags_read), STOP_TIMEOUT)
        self._worker = self._heartbeat = None
        try:
            await asyncio.wait_for(
                self._publisher.publish(CONTROL_CHANNEL, control.app_bye(self.app_id)),
                PUBLISH_TIMEOUT,
            )
        except Exception as exc:
            # Push servers forget this process after app_forget_after instead.
            log.warning("app_bye publish failed app=%s error=%r", self.app_id, exc)

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
                self._sent(committed)
            except Exception as exc:
                self._metrics.publish_failures.inc()
                self._keep_unsent(committed)
                log.warning(
                    "publish failed project=%s version=%s error=%r",
                    committed.project_id,
                    committed.version,
                    exc,
                )
            finally:
                self._queue.task_done()

    async def _publish(self, committed: Committed) -> None:
        revoked = revoked_user(committed.event)
        if revoked is not None:
            await self._revoke(committed, revoked)
        await self._poke(committed)

    async def _poke(self, committed: Committed) -> None:
        events = (committed.event,) if self._full_push else None
        poke = Poke(committed.project_id, committed.version, committed.event["ts"], events)
        # The version key first: a push server that recovers on this poke reads it.
        await self._publisher.set_version(committed.project_id, committed.version)
        await self._publisher.publish(project_channel(committed.project_id), encode_poke(poke))

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
        """One heartbeat a second, each after re-sending the pokes that failed;
        bounded by ``PUBLISH_TIMEOUT``, so at most one is in flight."""
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            self._seq += 1
            try:
                await asyncio.wait_for(self._resend_and_beat(self._seq), PUBLISH_TIMEOUT)
            except Exception as exc:
                log.debug("app heartbeat failed app=%s error=%r", self.app_id, exc)
            await asyncio.sleep(max(0.0, started + HEARTBEAT_INTERVAL - loop.time()))

    async def _resend_and_beat(self, seq: int) -> None:
        for message, at in list(self._unsent_revokes.items()):
            await self._send_revoke(message, at)
            del self._unsent_revokes[message]
            self._metrics.revocations.labels("published").inc()
        if self._unsent:
            resend = list(self._unsent.values())
            for committed in resend:
                await self._poke(committed)
                self._sent(committed)
                self._metrics.published.inc()
            log.info(
                "pokes published again after failures app=%s count=%d", self.app_id, len(resend)
            )
        beat = control.app_heartbeat(
            self.app_id, seq, push_off=self._switched_off(), client=self._client_name
        )
        await self._publisher.publish(CONTROL_CHANNEL, beat)

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
        message = control.revoke(user, committed.project_id, at)
        try:
            await self._send_revoke(message, at)
        except Exception as exc:
            self._metrics.revocations.labels("failed").inc()
            self._unsent_revokes[message] = at
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

    async def _send_revoke(self, message: bytes, at: float) -> None:
        await self._publisher.record_revocation(message, at, self._keep_revocations)
        await self._publisher.publish(CONTROL_CHANNEL, message)


def revoked_user(event: dict[str, Any]) -> int | None:
    """The user whose access this event takes away, if any."""
    if event.get("type") == "member_removed":
        user = event.get("data", {}).get("user_id")
        if type(user) is int:
            return user
    return None
