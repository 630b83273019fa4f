"""What a command's transaction does to the database, as one small interface
with three implementations: SQLAlchemy Core on either database (``CoreWrites``,
the rare writes), and each database's own driver, the command path there
(store/pgwrites.py on asyncpg, store/sqlitewrites.py on the stdlib sqlite3).

The rules (locking, idempotency, ``expected_version``, deciding) live once, in
store/events.py; an implementation only reads and writes rows, so they
cannot disagree on what a command means, only on how fast it gets there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import and_, bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.domain import rows
from tidings.domain.view import Needs
from tidings.store import readmodel
from tidings.store import schema as t


@dataclass(frozen=True, slots=True)
class Head:
    """The project row's fields a command starts from, and the caller's role."""

    version: int
    name: str
    next_id: int
    story_count: int
    role: str | None


@dataclass(frozen=True, slots=True)
class StoredResult:
    project_id: int
    request_hash: bytes
    response: str


@dataclass(frozen=True, slots=True)
class NewResult:
    """A command's result to keep under its idempotency key."""

    user_id: int
    key: str
    request_hash: bytes
    response: str


class Writes(Protocol):
    """One open transaction of the command path."""

    async def locked_head(self, project_id: int, user_id: int) -> Head | None:
        """The project row, locked until the end of the transaction (so versions
        stay gap-free), with ``user_id``'s role; None if there is no project."""
        ...

    async def stored_result(self, user_id: int, key: str) -> StoredResult | None: ...

    async def load_slice(self, head: rows.Slice, needs: Needs) -> rows.Slice:
        """Fill ``head`` with the rows ``needs`` names (store/readmodel.py)."""
        ...

    async def load_all_ranks(self, head: rows.Slice) -> None:
        """Fill ``head.ranks`` with every story's rank (a renumber, rare)."""
        ...

    async def append(
        self,
        state: rows.Slice,
        body: str,
        now: float,
        changes: rows.Changes,
        result: NewResult | None,
    ) -> bool:
        """Write the event ``body`` at ``state.version`` (already advanced), the
        project row, the rows in ``changes`` and ``result``; False if the project
        row was not at the version before (the lock makes that impossible)."""
        ...


# Statements built once: a Core construct is cached by SQLAlchemy's compiled
# cache, but building one per call (and its cache key) cost more than running it.
_p, _m, _e, _r = t.projects, t.memberships, t.events, t.command_results
_HEAD = (
    select(_p.c.version, _p.c.name, _p.c.next_id, _p.c.story_count, _m.c.role)
    .select_from(
        _p.outerjoin(_m, and_(_m.c.project_id == _p.c.id, _m.c.user_id == bindparam("user_id")))
    )
    .where(_p.c.id == bindparam("project_id"))
    .with_for_update(of=_p)
)
_STORED = select(_r.c.project_id, _r.c.request_hash, _r.c.response).where(
    and_(_r.c.user_id == bindparam("user_id"), _r.c.idempotency_key == bindparam("key"))
)
_EVENT = insert(_e)
_BUMP = (
    update(_p)
    .where(and_(_p.c.id == bindparam("pid"), _p.c.version == bindparam("before")))
    .values(
        version=bindparam("version"),
        updated_at=bindparam("now"),
        name=bindparam("name"),
        next_id=bindparam("next_id"),
        story_count=bindparam("story_count"),
    )
)
_RESULT = insert(_r)


class CoreWrites:
    """``Writes`` on a SQLAlchemy connection in a transaction (either database)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def locked_head(self, project_id: int, user_id: int) -> Head | None:
        found = await self.conn.execute(_HEAD, {"project_id": project_id, "user_id": user_id})
        row = found.first()
        if row is None:
            return None
        return Head(int(row[0]), row[1], int(row[2]), int(row[3]), row[4])

    async def stored_result(self, user_id: int, key: str) -> StoredResult | None:
        row = (await self.conn.execute(_STORED, {"user_id": user_id, "key": key})).first()
        return None if row is None else StoredResult(int(row[0]), row[1], row[2])

    async def load_slice(self, head: rows.Slice, needs: Needs) -> rows.Slice:
        return await readmodel.load_slice(self.conn, head, needs)

    async def load_all_ranks(self, head: rows.Slice) -> None:
        await readmodel.load_all_ranks(self.conn, head)

    async def append(
        self,
        state: rows.Slice,
        body: str,
        now: float,
        changes: rows.Changes,
        result: NewResult | None,
    ) -> bool:
        pid, version = state.project_id, state.version
        await self.conn.execute(_EVENT, {"project_id": pid, "version": version, "body": body})
        bumped = await self.conn.execute(
            _BUMP,
            {
                "pid": pid,
                "before": version - 1,
                "version": version,
                "now": now,
                "name": state.name,
                "next_id": state.next_id,
                "story_count": state.story_count,
            },
        )
        if bumped.rowcount != 1:
            return False
        await readmodel.write_changes(self.conn, pid, changes)
        if result is not None:
            await self.conn.execute(_RESULT, _result_values(pid, result, now))
        return True


def _result_values(pid: int, result: NewResult, now: float) -> dict[str, Any]:
    return {
        "user_id": result.user_id,
        "idempotency_key": result.key,
        "request_hash": result.request_hash,
        "project_id": pid,
        "response": result.response,
        "created_at": now,
    }
