"""The event store: every command is one transaction that bumps the project's
version by exactly one, appends its event, and updates the projections.

Versions stay gap-free under concurrency because the version bump happens
under the project row's write lock (``FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and the ``(project_id, version)`` primary key rejects
anything else. Publishing happens after commit, in the caller (app/publisher.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.domain import commands as c
from tidings.domain import project as domain
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.protocol.errors import Conflict, Invalid, NotFound
from tidings.store import schema as t
from tidings.store.engine import Engines

#: Largest page of events one poll returns.
MAX_EVENTS_PER_PAGE = 500


@dataclass(frozen=True, slots=True)
class Committed:
    project_id: int
    version: int
    event: dict[str, Any]
    #: The JSON response returned to the caller (and replayed to a retry).
    response: bytes
    #: True when this is a stored result replayed for a retried idempotency key.
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Change:
    """A project's current version and that version's commit time."""

    project_id: int
    version: int
    ts: float


@dataclass(frozen=True, slots=True)
class EventPage:
    version: int
    pruned_through: int
    #: Encoded event bodies, in version order.
    events: list[str]


def request_hash(project_id: int | None, body: bytes) -> bytes:
    return hashlib.sha256(str(project_id).encode() + b"\0" + body).digest()


class EventStore:
    def __init__(self, engines: Engines, *, clock: Callable[[], float] = time.time) -> None:
        self._engines = engines
        self._clock = clock

    # -- reads ---------------------------------------------------------------

    async def current_version(self, project_id: int) -> int | None:
        async with self._engines.reader.connect() as conn:
            row = await conn.execute(
                select(t.projects.c.version).where(t.projects.c.id == project_id)
            )
            version = row.scalar_one_or_none()
            return None if version is None else int(version)

    async def snapshot(self, project_id: int) -> tuple[int, str] | None:
        async with self._engines.reader.connect() as conn:
            row = (
                await conn.execute(
                    select(t.projects.c.version, t.projects.c.snapshot).where(
                        t.projects.c.id == project_id
                    )
                )
            ).first()
            return None if row is None else (int(row.version), row.snapshot)

    async def events_since(self, project_id: int, since: int, limit: int) -> EventPage | None:
        """The project's head and up to ``limit`` events after ``since``, in one
        statement (atomic without a transaction: one round trip on the hot path)."""
        limit = max(1, min(limit, MAX_EVENTS_PER_PAGE))
        p, e = t.projects, t.events
        joined = p.outerjoin(e, and_(e.c.project_id == p.c.id, e.c.version > since))
        stmt = (
            select(p.c.version, p.c.pruned_through, e.c.body)
            .select_from(joined)
            .where(p.c.id == project_id)
            .order_by(e.c.version)
            .limit(limit)
        )
        async with self._engines.reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return None
        version, pruned = int(rows[0].version), int(rows[0].pruned_through)
        if not pruned <= since < version:
            return EventPage(version, pruned, [])
        return EventPage(version, pruned, [row.body for row in rows if row.body is not None])

    async def all_events(self, project_id: int) -> list[dict[str, Any]]:
        async with self._engines.reader.connect() as conn:
            rows = await conn.execute(
                select(t.events.c.body)
                .where(t.events.c.project_id == project_id)
                .order_by(t.events.c.version)
            )
            return [orjson.loads(body) for body in rows.scalars()]

    async def role(self, project_id: int, user_id: int) -> c.Role | None:
        async with self._engines.reader.connect() as conn:
            return await _role(conn, project_id, user_id)

    async def changed(self, after: tuple[float, int], upto: float, limit: int) -> list[Change]:
        """Projects whose current version was committed after ``after`` (a
        ``(ts, project id)`` position) and at or before ``upto``, in that order, at
        most ``limit``: a range scan of ``ix_projects_updated_at``. A project
        changed again moves past the position, so it is seen again."""
        p = t.projects
        stmt = (
            select(p.c.id, p.c.version, p.c.updated_at)
            .where(tuple_(p.c.updated_at, p.c.id) > tuple_(float(after[0]), int(after[1])))
            .where(p.c.updated_at <= float(upto))
            .order_by(p.c.updated_at, p.c.id)
            .limit(limit)
        )
        async with self._engines.reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        return [Change(int(r.id), int(r.version), float(r.updated_at)) for r in rows]

    async def projects_of(self, user_id: int) -> list[tuple[int, str, str, int]]:
        """(project id, name, role, version) for every project the user belongs to."""
        async with self._engines.reader.connect() as conn:
            rows = await conn.execute(
                select(
                    t.memberships.c.project_id,
                    t.projects.c.name,
                    t.memberships.c.role,
                    t.projects.c.version,
                )
                .join(t.projects, t.projects.c.id == t.memberships.c.project_id)
                .where(t.memberships.c.user_id == user_id)
                .order_by(t.memberships.c.project_id)
            )
            return [(int(r.project_id), r.name, r.role, int(r.version)) for r in rows]

    # -- writes --------------------------------------------------------------

    async def create_project(
        self,
        name: str,
        owner: KnownUser,
        *,
        idempotency: tuple[str, bytes] | None = None,
    ) -> Committed:
        now = self._clock()
        try:
            async with self._engines.writer.begin() as conn:
                if idempotency is not None:
                    stored = await _stored_result(conn, owner.user_id, idempotency)
                    if stored is not None:
                        return stored
                project_id = (
                    await conn.execute(
                        insert(t.projects)
                        .values(
                            name=name, version=0, pruned_through=0, snapshot="{}", created_at=now
                        )
                        .returning(t.projects.c.id)
                    )
                ).scalar_one()
                data = {"name": name, "owner": {"user_id": owner.user_id, "name": owner.name}}
                committed = await self._append(
                    conn,
                    project_id,
                    domain.empty(project_id),
                    "project_created",
                    data,
                    owner.user_id,
                    now,
                    None,
                )
                await _apply_membership(conn, project_id, committed.event)
                if idempotency is not None:
                    await _store_result(conn, owner.user_id, idempotency, committed, now)
                return committed
        except IntegrityError:
            if idempotency is None:
                raise
            return await self._replay(owner.user_id, idempotency)

    async def execute(
        self,
        project_id: int,
        user_id: int,
        command: c.Command,
        *,
        expected_version: int | None = None,
        idempotency: tuple[str, bytes] | None = None,
        target: KnownUser | None = None,
    ) -> Committed:
        """Run one command in one transaction; raise NotFound/Forbidden/Conflict/Invalid."""
        try:
            async with self._engines.writer.begin() as conn:
                # The caller's role comes with the locked row: one round trip, not two.
                m = t.memberships
                mine = t.projects.outerjoin(
                    m, and_(m.c.project_id == t.projects.c.id, m.c.user_id == user_id)
                )
                row = (
                    await conn.execute(
                        select(t.projects.c.version, t.projects.c.snapshot, m.c.role)
                        .select_from(mine)
                        .where(t.projects.c.id == project_id)
                        .with_for_update(of=t.projects)
                    )
                ).first()
                if row is None or row.role is None:
                    raise NotFound("project not found")
                role = c.Role(row.role)
                # Checked under the project lock: a committed retry is visible here.
                if idempotency is not None:
                    stored = await _stored_result(conn, user_id, idempotency)
                    if stored is not None:
                        return stored
                version = int(row.version)
                if expected_version is not None and expected_version != version:
                    raise Conflict(
                        f"project is at version {version}, not {expected_version}",
                        version=version,
                    )
                state = orjson.loads(row.snapshot)
                decision = decide(state, command, Actor(user_id, role), target=target)
                now = self._clock()
                committed = await self._append(
                    conn,
                    project_id,
                    state,
                    decision.type,
                    decision.data,
                    user_id,
                    now,
                    decision.created_id,
                )
                await _apply_membership(conn, project_id, committed.event)
                if idempotency is not None:
                    await _store_result(conn, user_id, idempotency, committed, now)
                return committed
        except IntegrityError:
            if idempotency is None:
                raise
            return await self._replay(user_id, idempotency)

    async def _append(
        self,
        conn: AsyncConnection,
        project_id: int,
        state: domain.Snapshot,
        kind: str,
        data: dict[str, Any],
        actor: int,
        now: float,
        created_id: int | None,
    ) -> Committed:
        version = state["version"] + 1
        event = {"version": version, "type": kind, "data": data, "actor": actor, "ts": now}
        domain.apply_in_place(state, event)
        await conn.execute(
            insert(t.events).values(
                project_id=project_id, version=version, body=orjson.dumps(event).decode()
            )
        )
        result = await conn.execute(
            update(t.projects)
            .where(and_(t.projects.c.id == project_id, t.projects.c.version == version - 1))
            .values(
                version=version,
                name=state["name"],
                snapshot=orjson.dumps(state).decode(),
                updated_at=now,
            )
        )
        if result.rowcount != 1:  # pragma: no cover - the row lock makes this impossible
            raise Conflict("concurrent write", version=version - 1)
        response = orjson.dumps(
            {"project": project_id, "version": version, "event": event, "created_id": created_id}
        )
        return Committed(project_id, version, event, response)

    async def _replay(self, user_id: int, idempotency: tuple[str, bytes]) -> Committed:
        async with self._engines.reader.connect() as conn:
            stored = await _stored_result(conn, user_id, idempotency)
        if stored is None:  # pragma: no cover - an IntegrityError not caused by the key
            raise Invalid("conflicting concurrent request; retry")
        return stored

    async def prune(self, project_id: int, keep: int) -> int:
        """Drop events older than the newest ``keep``; polls from before them must reload."""
        async with self._engines.writer.begin() as conn:
            version = (
                await conn.execute(
                    select(t.projects.c.version)
                    .where(t.projects.c.id == project_id)
                    .with_for_update()
                )
            ).scalar_one_or_none()
            if version is None:
                raise NotFound("project not found")
            through = max(0, int(version) - keep)
            await conn.execute(
                delete(t.events).where(
                    and_(t.events.c.project_id == project_id, t.events.c.version <= through)
                )
            )
            await conn.execute(
                update(t.projects)
                .where(t.projects.c.id == project_id)
                .values(pruned_through=through)
            )
            return through


async def _role(conn: AsyncConnection, project_id: int, user_id: int) -> c.Role | None:
    role = (
        await conn.execute(
            select(t.memberships.c.role).where(
                and_(t.memberships.c.project_id == project_id, t.memberships.c.user_id == user_id)
            )
        )
    ).scalar_one_or_none()
    return None if role is None else c.Role(role)


async def _apply_membership(conn: AsyncConnection, project_id: int, event: dict[str, Any]) -> None:
    """Keep the memberships projection in step with member events."""
    kind, data = event["type"], event["data"]
    if kind == "project_created":
        user_id, role = data["owner"]["user_id"], c.Role.OWNER.value
    elif kind == "member_added":
        user_id, role = data["user_id"], data["role"]
    elif kind == "member_removed":
        await conn.execute(
            delete(t.memberships).where(
                and_(
                    t.memberships.c.project_id == project_id,
                    t.memberships.c.user_id == data["user_id"],
                )
            )
        )
        return
    else:
        return
    updated = await conn.execute(
        update(t.memberships)
        .where(and_(t.memberships.c.project_id == project_id, t.memberships.c.user_id == user_id))
        .values(role=role)
    )
    if updated.rowcount == 0:
        await conn.execute(
            insert(t.memberships).values(project_id=project_id, user_id=user_id, role=role)
        )


async def _stored_result(
    conn: AsyncConnection, user_id: int, idempotency: tuple[str, bytes]
) -> Committed | None:
    key, digest = idempotency
    row = (
        await conn.execute(
            select(t.command_results).where(
                and_(
                    t.command_results.c.user_id == user_id,
                    t.command_results.c.idempotency_key == key,
                )
            )
        )
    ).first()
    if row is None:
        return None
    if row.request_hash != digest:
        raise Invalid(
            "Idempotency-Key was already used for a different request", field="Idempotency-Key"
        )
    body = orjson.loads(row.response)
    return Committed(
        int(row.project_id), body["version"], body["event"], row.response.encode(), replayed=True
    )


async def _store_result(
    conn: AsyncConnection,
    user_id: int,
    idempotency: tuple[str, bytes],
    committed: Committed,
    now: float,
) -> None:
    key, digest = idempotency
    await conn.execute(
        insert(t.command_results).values(
            user_id=user_id,
            idempotency_key=key,
            request_hash=digest,
            project_id=committed.project_id,
            response=committed.response.decode(),
            created_at=now,
        )
    )
