"""Current project versions without touching the events table: the hot path.

Most polls find nothing new, so "what version is project P at?" must be cheap.
With Redis, the answer is the shared version key, read together with the keys
of every other poll that arrived in the same pass of the event loop (one MGET:
app/readbatch.py); a miss is refilled from ``projects.version`` with
compare-and-set, and a key behind a version this process committed or read
(its write was lost to a Redis outage) is raised. Without Redis (one process),
a local map updated on every commit, re-checked against the database every
``local_ttl`` seconds in case another process wrote.

Memberships are cached per (user, project) tagged with the version they were
read at: membership changes are themselves commands that bump the version, so
an entry is valid exactly while the project is still at that version.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from tidings.app.metrics import Metrics
from tidings.app.readbatch import ReadBatcher
from tidings.broker.base import Publisher
from tidings.domain.commands import Role
from tidings.store.events import EventStore
from tidings.store.singleflight import SingleFlight

log = logging.getLogger(__name__)

#: After a Redis error, skip Redis for this long (seconds) and read the database.
REDIS_BACKOFF_SECONDS = 5.0

#: Entries kept in the membership cache (least recently used dropped first).
MAX_MEMBERSHIP_ENTRIES = 100_000


class VersionCache:
    def __init__(
        self,
        store: EventStore,
        publisher: Publisher,
        metrics: Metrics,
        *,
        shared: bool,
        local_ttl: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._publisher = publisher
        self._metrics = metrics
        self._shared = shared
        self._local_ttl = local_ttl
        self._clock = clock
        self._local: dict[int, tuple[int, float]] = {}
        self._reads: SingleFlight[int | None] = SingleFlight()
        self._redis_skip_until = 0.0
        self._batches = ReadBatcher(self._read_shared)

    async def get(self, project_id: int) -> int | None:
        return (await self.get_many([project_id])).get(project_id)

    async def get_many(self, project_ids: Iterable[int]) -> dict[int, int]:
        ids = list(dict.fromkeys(project_ids))
        found: dict[int, int] = {}
        now = self._clock()
        if self._shared:
            if now >= self._redis_skip_until:
                shared = await self._batches.get(ids)
                if shared is not None:
                    found = shared
                    await self._repair(found)
        else:
            for project_id in ids:
                entry = self._local.get(project_id)
                if entry is not None and now - entry[1] < self._local_ttl:
                    found[project_id] = entry[0]
        for project_id in ids:
            if project_id not in found:
                version = await self.refresh(project_id)
                if version is not None:
                    found[project_id] = version
        return found

    async def _read_shared(self, ids: list[int]) -> dict[int, int] | None:
        """One batch's read of the version keys; ``None`` if Redis failed."""
        try:
            return await self._publisher.get_versions(ids)
        except Exception as exc:  # the poll path must outlive Redis
            self._redis_skip_until = self._clock() + REDIS_BACKOFF_SECONDS
            self._metrics.broker_errors.labels("get_version").inc()
            log.warning("version cache: redis read failed: %r", exc)
            return None

    async def _repair(self, found: dict[int, int]) -> None:
        """Raise keys that trail a version this process committed or read.

        A key write lost while Redis was unreachable (a partition, a restart, a
        timeout) leaves the key at an older version, and every poll would be told
        "up to date" until it expires (``VERSION_TTL_SECONDS``). The newer version
        known here wins and is written back (compare-and-set: keys only rise).
        """
        for project_id, version in found.items():
            entry = self._local.get(project_id)
            if entry is not None and entry[0] > version:
                found[project_id] = entry[0]
                await self._share(project_id, entry[0])

    async def refresh(self, project_id: int) -> int | None:
        """Read the version from the database and put it back in the cache."""
        version = await self._reads.run(("version", project_id), lambda: self._load(project_id))
        return version

    async def _load(self, project_id: int) -> int | None:
        self._metrics.store_reads.labels("version").inc()
        version = await self._store.current_version(project_id)
        if version is not None:
            self.remember(project_id, version)
            await self._share(project_id, version)
        return version

    def remember(self, project_id: int, version: int) -> None:
        """Record locally a version this process knows (its own commit or a fresh read)."""
        entry = self._local.get(project_id)
        if entry is None or version >= entry[0]:
            self._local[project_id] = (version, self._clock())

    async def _share(self, project_id: int, version: int) -> None:
        if self._shared and self._clock() >= self._redis_skip_until:
            try:
                await self._publisher.set_version(project_id, version)
            except Exception as exc:
                self._redis_skip_until = self._clock() + REDIS_BACKOFF_SECONDS
                self._metrics.broker_errors.labels("set_version").inc()
                log.warning("version cache: redis write failed: %r", exc)


class MembershipCache:
    def __init__(self, store: EventStore, metrics: Metrics) -> None:
        self._store = store
        self._metrics = metrics
        self._entries: OrderedDict[tuple[int, int], tuple[Role | None, int]] = OrderedDict()
        self._reads: SingleFlight[Role | None] = SingleFlight()

    async def role(self, user_id: int, project_id: int, version: int) -> Role | None:
        key = (user_id, project_id)
        entry = self._entries.get(key)
        if entry is not None and entry[1] == version:
            self._entries.move_to_end(key)
            return entry[0]
        role = await self._reads.run(key, lambda: self._load(user_id, project_id))
        self._entries[key] = (role, version)
        self._entries.move_to_end(key)
        while len(self._entries) > MAX_MEMBERSHIP_ENTRIES:
            self._entries.popitem(last=False)
        return role

    async def _load(self, user_id: int, project_id: int) -> Role | None:
        self._metrics.store_reads.labels("membership").inc()
        return await self._store.role(project_id, user_id)
