"""The event store: every command is one transaction that bumps the project's
version by exactly one, appends its event, and updates the read model's rows.

A command reads and writes only what it touches (store/readmodel.py): the
project row, the stories and members it names, and at most three board links;
so its cost does not grow with the project. The snapshot is assembled from the
rows, kept by version and brought forward by the events after it.

Versions stay gap-free under concurrency because the version bump happens
under the project row's write lock (``FOR UPDATE`` on PostgreSQL, ``BEGIN
IMMEDIATE`` on SQLite) and the ``(project_id, version)`` primary key rejects
anything else. Publishing happens after commit, in the caller (app/publisher.py).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import and_, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.domain import commands as c
from tidings.domain import project as domain
from tidings.domain import rows
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.domain.view import Needs, needs
from tidings.protocol.errors import Conflict, Invalid, NotFound
from tidings.store import readmodel, snapshots
from tidings.store import schema as t
from tidings.store.engine import Engines
from tidings.store.writes import CoreWrites, NewResult, Writes

#: Largest page of events one poll returns.
MAX_EVENTS_PER_PAGE = 500
#: Most events one history read looks at (newest first): a story's history is
#: filtered from them, so a request costs at most this many rows, found by the key.
HISTORY_SCAN = 1000


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
        self._snapshots = snapshots.SnapshotCache()

    # -- reads ---------------------------------------------------------------

    async def current_version(self, project_id: int) -> int | None:
        async with self._engines.reader.connect() as conn:
            row = await conn.execute(
                select(t.projects.c.version).where(t.projects.c.id == project_id)
            )
            version = row.scalar_one_or_none()
            return None if version is None else int(version)

    async def snapshot(self, project_id: int) -> tuple[int, bytes] | None:
        """The project's version and encoded snapshot."""
        kept = await self._kept_snapshot(project_id)
        if kept is None:
            return None
        found = (kept.version, kept.encoded())
        self._snapshots.recharge(kept)
        return found

    async def snapshot_gzipped(self, project_id: int, level: int) -> tuple[int, bytes] | None:
        """The project's version and its snapshot gzip-compressed, made once per
        version and process."""
        kept = await self._kept_snapshot(project_id)
        if kept is None:
            return None
        found = (kept.version, kept.gzipped(level))
        self._snapshots.recharge(kept)
        return found

    async def _kept_snapshot(self, project_id: int) -> snapshots.Kept | None:
        """The copy kept at the project's version, brought forward by the events
        after it (store/snapshots.py), or else read whole from the read model."""
        kept = self._snapshots.get(project_id)
        if kept is not None:
            since = kept.version
            page = await self.events_since(project_id, since, snapshots.CATCH_UP_EVENTS)
            if page is None:
                self._snapshots.drop(project_id)
                return None
            if page.version > since + len(page.events):
                page.events.clear()  # too far behind, or pruned past it: re-read
            # Another request may have brought the copy forward meanwhile: apply
            # only what follows it; a copy at or past the head is served as is.
            moved = False
            for body in page.events:
                event = orjson.loads(body)
                if event["version"] <= kept.version:
                    continue
                if not kept.advance(event):
                    break
                moved = True
            if kept.version >= page.version:
                if moved:
                    self._snapshots.keep(kept)
                return kept
            self._snapshots.drop(project_id)
        async with self._engines.reader.connect() as conn:
            found = await readmodel.read_snapshot(conn, project_id)
        if found is not None:
            self._snapshots.keep(found)
        return found

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

    async def history(self, project_id: int, before: int, scan: int) -> EventPage | None:
        """The project's head and up to ``scan`` events below ``before``, newest
        first: a read of the log's primary key backwards, in one statement."""
        scan = max(1, min(scan, HISTORY_SCAN))
        p, e = t.projects, t.events
        joined = p.outerjoin(e, and_(e.c.project_id == p.c.id, e.c.version < before))
        stmt = (
            select(p.c.version, p.c.pruned_through, e.c.body)
            .select_from(joined)
            .where(p.c.id == project_id)
            .order_by(e.c.version.desc())
            .limit(scan)
        )
        async with self._engines.reader.connect() as conn:
            rows = (await conn.execute(stmt)).all()
        if not rows:
            return None
        version, pruned = int(rows[0].version), int(rows[0].pruned_through)
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
                tx = CoreWrites(conn)
                if idempotency is not None:
                    stored = await _stored_result(tx, owner.user_id, idempotency)
                    if stored is not None:
                        return stored
                project_id = (
                    await conn.execute(
                        insert(t.projects)
                        .values(
                            name=name,
                            version=0,
                            pruned_through=0,
                            snapshot="{}",
                            base_version=0,
                            next_id=1,
                            story_count=0,
                            created_at=now,
                        )
                        .returning(t.projects.c.id)
                    )
                ).scalar_one()
                data = {"name": name, "owner": {"user_id": owner.user_id, "name": owner.name}}
                head = rows.Slice(project_id, 0, "", 1, 0)
                return await self._append(
                    tx, head, "project_created", data, owner.user_id, now, None, idempotency
                )
        except IntegrityError:
            if idempotency is None:
                raise
            return await self._replay(owner.user_id, idempotency)

    def _transaction(self) -> AbstractAsyncContextManager[Writes]:
        """One command transaction: on the database's own driver
        (store/pgwrites.py, store/sqlitewrites.py), else on the SQLAlchemy writer."""
        if self._engines.commands is not None:
            return self._engines.commands.transaction()
        return self._core_transaction()

    @asynccontextmanager
    async def _core_transaction(self) -> AsyncIterator[Writes]:
        async with self._engines.writer.begin() as conn:
            yield CoreWrites(conn)

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
            async with self._transaction() as tx:
                return await self._execute_in(
                    tx, project_id, user_id, command, expected_version, idempotency, target
                )
        except IntegrityError:
            if idempotency is None:
                raise
            return await self._replay(user_id, idempotency)

    async def execute_many(
        self, project_id: int, user_id: int, commands: list[c.Command]
    ) -> list[Committed]:
        """Run commands one after another in one transaction (imports, seeding a
        benchmark): each is decided and applied exactly as ``execute`` does, one
        version each; any refusal rolls them all back. Callers publish nothing."""
        async with self._transaction() as tx:
            return [
                await self._execute_in(tx, project_id, user_id, command, None, None, None)
                for command in commands
            ]

    async def _execute_in(
        self,
        tx: Writes,
        project_id: int,
        user_id: int,
        command: c.Command,
        expected_version: int | None,
        idempotency: tuple[str, bytes] | None,
        target: KnownUser | None,
    ) -> Committed:
        # The caller's role comes with the locked row: one round trip, not two.
        found = await tx.locked_head(project_id, user_id)
        if found is None or found.role is None:
            raise NotFound("project not found")
        role = c.Role(found.role)
        # Checked under the project lock: a committed retry is visible here.
        if idempotency is not None:
            stored = await _stored_result(tx, user_id, idempotency)
            if stored is not None:
                return stored
        version = found.version
        if expected_version is not None and expected_version != version:
            raise Conflict(
                f"project is at version {version}, not {expected_version}",
                version=version,
            )
        head = rows.Slice(project_id, version, found.name, found.next_id, found.story_count)
        state = await tx.load_slice(head, _needs(command, role))
        decision = decide(state, command, Actor(user_id, role), target=target)
        return await self._append(
            tx,
            state,
            decision.type,
            decision.data,
            user_id,
            self._clock(),
            decision.created_id,
            idempotency,
        )

    async def _append(
        self,
        tx: Writes,
        state: rows.Slice,
        kind: str,
        data: dict[str, Any],
        actor: int,
        now: float,
        created_id: int | None,
        idempotency: tuple[str, bytes] | None,
    ) -> Committed:
        project_id = state.project_id
        version = state.version + 1
        event = {"version": version, "type": kind, "data": data, "actor": actor, "ts": now}
        try:
            changes = rows.apply_to_slice(state, event)
        except rows.NoRoom:
            # No rank left between the new neighbours (rare): with every rank
            # loaded the board re-spaces a section around them.
            await tx.load_all_ranks(state)
            changes = rows.apply_to_slice(state, event)
        body = orjson.dumps(event)
        # The response carries the event as stored: spliced, not encoded twice.
        response = b"".join(
            (
                b'{"project":',
                str(project_id).encode(),
                b',"version":',
                str(version).encode(),
                b',"event":',
                body,
                b',"created_id":',
                b"null" if created_id is None else str(created_id).encode(),
                b"}",
            )
        )
        result = None
        if idempotency is not None:
            key, digest = idempotency
            result = NewResult(actor, key, digest, response.decode())
        if not await tx.append(state, body.decode(), now, changes, result):  # pragma: no cover
            # The row lock makes this impossible.
            raise Conflict("concurrent write", version=version - 1)
        return Committed(project_id, version, event, response)

    async def _replay(self, user_id: int, idempotency: tuple[str, bytes]) -> Committed:
        async with self._engines.reader.connect() as conn:
            stored = await _stored_result(CoreWrites(conn), user_id, idempotency)
        if stored is None:  # pragma: no cover - an IntegrityError not caused by the key
            raise Invalid("conflicting concurrent request; retry")
        return stored

    async def prune(self, project_id: int, keep: int) -> int:
        """Drop events older than the newest ``keep``; polls from before them must
        reload. The state at the new first kept version becomes the base a rebuild
        starts from (a read of the dropped events, once)."""
        async with self._engines.writer.begin() as conn:
            p = t.projects
            row = await _locked_base(conn, project_id)
            through = max(0, int(row.version) - keep)
            if through > int(row.base_version):
                state = await _replay_from_base(conn, project_id, row, through)
                await conn.execute(
                    update(p)
                    .where(p.c.id == project_id)
                    .values(base_version=through, snapshot=orjson.dumps(state).decode())
                )
            await conn.execute(
                delete(t.events).where(
                    and_(t.events.c.project_id == project_id, t.events.c.version <= through)
                )
            )
            await conn.execute(update(p).where(p.c.id == project_id).values(pruned_through=through))
            return through

    async def rebuild(self, project_id: int) -> int:
        """Rebuild the project's read model from its base and the event log, under
        the project's write lock (commands wait); its version."""
        async with self._engines.writer.begin() as conn:
            row = await _locked_base(conn, project_id)
            state = await _replay_from_base(conn, project_id, row, int(row.version))
            if state["version"] != int(row.version):
                raise RuntimeError(
                    f"project {project_id}: the log reaches version {state['version']}, "
                    f"the project is at {row.version}"
                )
            for stmt, params in readmodel.layout_statements(project_id, rows.rows_of(state)):
                await conn.execute(stmt, params)
        self._snapshots.drop(project_id)
        return int(row.version)

    async def project_ids(self) -> list[int]:
        async with self._engines.reader.connect() as conn:
            found = await conn.execute(select(t.projects.c.id).order_by(t.projects.c.id))
            return [int(pid) for pid in found.scalars()]


def _needs(command: c.Command, role: c.Role) -> Needs:
    """What to load for ``command``: nothing for a viewer, whom ``decide`` refuses."""
    return Needs() if role == c.Role.VIEWER else needs(command)


async def _locked_base(conn: AsyncConnection, project_id: int) -> Any:
    """The project's version, base version and base snapshot, its row locked for
    the rest of the transaction; NotFound if there is no such project."""
    p = t.projects
    row = (
        await conn.execute(
            select(p.c.version, p.c.base_version, p.c.snapshot)
            .where(p.c.id == project_id)
            .with_for_update()
        )
    ).first()
    if row is None:
        raise NotFound("project not found")
    return row


async def _replay_from_base(
    conn: AsyncConnection, project_id: int, row: Any, through: int
) -> domain.Snapshot:
    """The state at ``through``: the stored base plus the events after it."""
    base_version = int(row.base_version)
    state = orjson.loads(row.snapshot) if base_version else domain.empty(project_id)
    bodies = await conn.execute(
        select(t.events.c.body)
        .where(
            and_(
                t.events.c.project_id == project_id,
                t.events.c.version > base_version,
                t.events.c.version <= through,
            )
        )
        .order_by(t.events.c.version)
    )
    for body in bodies.scalars():
        domain.apply_in_place(state, orjson.loads(body))
    return state


async def _role(conn: AsyncConnection, project_id: int, user_id: int) -> c.Role | None:
    role = (
        await conn.execute(
            select(t.memberships.c.role).where(
                and_(t.memberships.c.project_id == project_id, t.memberships.c.user_id == user_id)
            )
        )
    ).scalar_one_or_none()
    return None if role is None else c.Role(role)


async def _stored_result(
    tx: Writes, user_id: int, idempotency: tuple[str, bytes]
) -> Committed | None:
    key, digest = idempotency
    row = await tx.stored_result(user_id, key)
    if row is None:
        return None
    if row.request_hash != digest:
        raise Invalid(
            "Idempotency-Key was already used for a different request", field="Idempotency-Key"
        )
    body = orjson.loads(row.response)
    return Committed(
        row.project_id, body["version"], body["event"], row.response.encode(), replayed=True
    )
