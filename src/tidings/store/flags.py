"""Push feature flags, stored in the database so every app process agrees.

Three settings: the global kill switch, a rollout percentage (users are in the
rollout by a stable hash of their id), and per-project overrides. ``FlagCache``
rereads them at most every ``ttl`` seconds, so a change reaches every app
process, and through the poll advice every client, within ttl + one poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import orjson
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tidings.publish.advice import PushFlags
from tidings.store import schema as t
from tidings.store.engine import Engines
from tidings.store.singleflight import SingleFlight

PUSH_ENABLED = "push.enabled"
PUSH_ROLLOUT = "push.rollout_percent"
PROJECT_PREFIX = "push.project."


class FlagStore:
    def __init__(self, engines: Engines, *, clock: Callable[[], float] = time.time) -> None:
        self._engines = engines
        self._clock = clock

    async def load(self) -> PushFlags:
        async with self._engines.reader.connect() as conn:
            rows = (await conn.execute(select(t.flags.c.name, t.flags.c.value))).all()
        values = {row.name: orjson.loads(row.value) for row in rows}
        projects = {
            int(name[len(PROJECT_PREFIX) :]): bool(value)
            for name, value in values.items()
            if name.startswith(PROJECT_PREFIX) and value is not None
        }
        return PushFlags(
            enabled=bool(values.get(PUSH_ENABLED, True)),
            rollout_percent=int(values.get(PUSH_ROLLOUT, 100)),
            projects=projects,
        )

    async def set(self, name: str, value: Any) -> None:
        """Upsert one flag; ``None`` for a project override removes it."""
        now = self._clock()
        encoded = orjson.dumps(value).decode()
        async with self._engines.writer.begin() as conn:
            if name.startswith(PROJECT_PREFIX) and value is None:
                await conn.execute(t.flags.delete().where(t.flags.c.name == name))
                return
            dialect_insert = sqlite_insert if self._engines.is_sqlite else pg_insert
            stmt = dialect_insert(t.flags).values(name=name, value=encoded, updated_at=now)
            await conn.execute(
                stmt.on_conflict_do_update(
                    index_elements=[t.flags.c.name],
                    set_={"value": encoded, "updated_at": now},
                )
            )


class FlagCache:
    """Flags as of at most ``ttl`` seconds ago; one database read per ttl per process."""

    def __init__(
        self, store: FlagStore, *, ttl: float = 2.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._flags: PushFlags | None = None
        self._loaded_at = float("-inf")
        self._reads: SingleFlight[PushFlags] = SingleFlight()

    async def get(self) -> PushFlags:
        now = self._clock()
        if self._flags is None or now - self._loaded_at >= self._ttl:
            # One read for all the requests that find the cache stale at once.
            self._flags = await self._reads.run("flags", self._store.load)
            self._loaded_at = now
        return self._flags

    def invalidate(self) -> None:
        self._flags = None
