"""The command path on PostgreSQL, on asyncpg itself: fixed statements, prepared
once per connection, and the event, the project row, the story rows and the
idempotency record written by one statement.

Measured (bench/write_path.py, docs/PERFORMANCE.md): through SQLAlchemy's async
layer a command spent several times the bare driver's CPU, in the greenlet hop,
the cursor adapter and building statements; so commands, the hot write, skip
it, while the rare writes (accounts, projects, pruning, rebuilds) stay on Core
(store/writes.py's ``CoreWrites``). What each statement reads and writes is
the same as there; ``tests/store/test_readmodel.py`` holds the two to the same
rows for random command sequences.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
import orjson
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, OperationalError

from tidings.domain import rows
from tidings.domain.view import Needs
from tidings.store.writes import Head, NewResult, StoredResult

#: Connections the command path opens at most, per process (commands beyond
#: wait for one, up to ``ACQUIRE_TIMEOUT``, then fail with 503).
MAX_CONNECTIONS = 20

#: Seconds a command waits for a free connection.
ACQUIRE_TIMEOUT = 30.0

#: Called with each statement and its arguments before it is sent (tests).
Observer = Callable[[str, tuple[Any, ...]], None]

_HEAD = (
    "SELECT p.version, p.name, p.next_id, p.story_count, m.role FROM projects p "
    "LEFT OUTER JOIN memberships m ON m.project_id = p.id AND m.user_id = $2 "
    "WHERE p.id = $1 FOR UPDATE OF p"
)
_STORED = (
    "SELECT project_id, request_hash, response FROM command_results "
    "WHERE user_id = $1 AND idempotency_key = $2"
)
_ALL_MEMBERS = "SELECT user_id, role, name, seq FROM memberships WHERE project_id = $1"
_SOME_MEMBERS = _ALL_MEMBERS + " AND user_id = ANY($2::bigint[])"

# Everything a command writes, in one statement: the event, the project row
# (checked at the version before, so a lost lock would show), the stories it
# adds, changes (document, owner and/or rank: NULL body means "the rank
# only"), and deletes, and the idempotency record when there is a key.
# The sub-statements touch distinct rows (``append`` checks), as PostgreSQL
# requires of one statement.
_APPEND = """
WITH ev AS (
  INSERT INTO events (project_id, version, body) VALUES ($1, $2, $3)
), head AS (
  UPDATE projects SET version = $2, updated_at = $4, name = $5, next_id = $6, story_count = $7
  WHERE id = $1 AND version = $2 - 1 RETURNING 1
), added AS (
  INSERT INTO stories (project_id, id, rank, owner_id, body)
  SELECT $1, a.id, a.rank, a.owner_id, a.body
  FROM unnest($8::bigint[], $9::bigint[], $10::bigint[], $11::text[])
    AS a(id, rank, owner_id, body)
), changed AS (
  UPDATE stories s SET
    body = coalesce(u.body, s.body),
    owner_id = CASE WHEN u.body IS NULL THEN s.owner_id ELSE u.owner_id END,
    rank = CASE WHEN u.reranked THEN u.rank ELSE s.rank END
  FROM unnest($12::bigint[], $13::text[], $14::bigint[], $15::boolean[], $16::bigint[])
    AS u(id, body, owner_id, reranked, rank)
  WHERE s.project_id = $1 AND s.id = u.id
), gone AS (
  DELETE FROM stories WHERE project_id = $1 AND id = ANY($17::bigint[])
), kept AS (
  INSERT INTO command_results
    (user_id, idempotency_key, request_hash, project_id, response, created_at)
  SELECT $18, $19::varchar, $20, $1, $21, $4 WHERE $19::varchar IS NOT NULL
)
SELECT count(*) FROM head
"""
_DROP_MEMBERS = "DELETE FROM memberships WHERE project_id = $1 AND user_id = ANY($2::bigint[])"
_PUT_MEMBER = (
    "INSERT INTO memberships (project_id, user_id, role, name, seq) VALUES ($1, $2, $3, $4, $5) "
    "ON CONFLICT (project_id, user_id) "
    "DO UPDATE SET role = EXCLUDED.role, name = EXCLUDED.name, seq = EXCLUDED.seq"
)


def load_statement(ids: bool, board: bool, owner: bool) -> str:
    """The stories a command needs, as ``readmodel.load_slice`` reads them, in one
    statement: the named and owned stories (each alternative names the project,
    so each is an index search), and for a board change the ranks of the last
    two stories and of the two before each named one (index searches on
    ``ix_stories_rank``; no document). Parameters: $1 the project, then the ids
    (if any), then the owner (if any)."""
    n = 2
    ids_at = owner_at = 0
    if ids:
        ids_at, n = n, n + 1
    if owner:
        owner_at = n
    named = []
    if ids:
        named.append(f"(project_id = $1 AND id = ANY(${ids_at}::bigint[]))")
    if owner:
        named.append(f"(project_id = $1 AND owner_id = ${owner_at})")
    parts = []
    if named:
        parts.append("SELECT id, rank, owner_id, body FROM stories WHERE " + " OR ".join(named))
    if board:
        parts.append(
            "(SELECT id, rank, NULL::bigint, NULL::text FROM stories WHERE project_id = $1 "
            "ORDER BY rank DESC LIMIT 2)"
        )
        if ids:
            parts.append(
                f"SELECT b.id, b.rank, NULL::bigint, NULL::text FROM unnest(${ids_at}::bigint[]) "
                "AS n(id) CROSS JOIN LATERAL (SELECT s.id, s.rank FROM stories s "
                "WHERE s.project_id = $1 AND s.rank < "
                "(SELECT rank FROM stories WHERE project_id = $1 AND id = n.id) "
                "ORDER BY s.rank DESC LIMIT 2) b"
            )
    return " UNION ALL ".join(parts)


_ALL_RANKS = "SELECT id, rank FROM stories WHERE project_id = $1"


_LOADS = {
    (ids, board, owner): load_statement(ids, board, owner)
    for ids in (False, True)
    for board in (False, True)
    for owner in (False, True)
    if ids or board or owner
}


def asyncpg_dsn(url: str) -> str:
    """A SQLAlchemy ``postgresql+asyncpg://`` URL as asyncpg's DSN."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _reset(conn: asyncpg.Connection) -> None:
    """On release: only end a transaction left open (a cancelled command). The
    default reset (advisory locks, cursors, LISTEN, settings) costs a round trip
    per command, and these connections use none of them."""
    if conn.is_in_transaction():
        await conn.execute("ROLLBACK")


class PgCommands:
    """The command path's connections (a pool, opened on first use in the
    running loop) and its transactions."""

    def __init__(self, url: str) -> None:
        self._dsn = asyncpg_dsn(url)
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self.observers: list[Observer] = []

    async def _ready(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=1,
                        max_size=MAX_CONNECTIONS,
                        reset=_reset,
                        timeout=ACQUIRE_TIMEOUT,
                    )
        return self._pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PgWrites]:
        """A transaction on a pooled connection; asyncpg's errors come out as
        SQLAlchemy's (IntegrityError for a duplicate key, else OperationalError:
        503), as they do from the rest of the store."""
        try:
            pool = await self._ready()
            async with pool.acquire(timeout=ACQUIRE_TIMEOUT) as conn, conn.transaction():
                yield PgWrites(conn, self.observers)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(None, None, exc) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise OperationalError(None, None, exc) from exc

    async def dispose(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None


class PgWrites:
    """``Writes`` (store/writes.py) on an asyncpg connection in a transaction."""

    def __init__(self, conn: asyncpg.Connection, observers: list[Observer]) -> None:
        self.conn = conn
        self._observers = observers

    def _seen(self, statement: str, args: tuple[Any, ...]) -> None:
        for observe in self._observers:
            observe(statement, args)

    async def locked_head(self, project_id: int, user_id: int) -> Head | None:
        if self._observers:
            self._seen(_HEAD, (project_id, user_id))
        row = await self.conn.fetchrow(_HEAD, project_id, user_id)
        if row is None:
            return None
        return Head(row[0], row[1], row[2], row[3], row[4])

    async def stored_result(self, user_id: int, key: str) -> StoredResult | None:
        if self._observers:
            self._seen(_STORED, (user_id, key))
        row = await self.conn.fetchrow(_STORED, user_id, key)
        return None if row is None else StoredResult(row[0], bytes(row[1]), row[2])

    async def load_slice(self, head: rows.Slice, needs: Needs) -> rows.Slice:
        ids = sorted(needs.stories)
        if ids or needs.board or needs.owned_by is not None:
            args: list[Any] = [head.project_id]
            if ids:
                args.append(ids)
            if needs.owned_by is not None:
                args.append(needs.owned_by)
            statement = _LOADS[(bool(ids), needs.board, needs.owned_by is not None)]
            if self._observers:
                self._seen(statement, tuple(args))
            for sid, rank, owner, body in await self.conn.fetch(statement, *args):
                if needs.board:
                    head.ranks[sid] = rank
                if body is not None and (
                    sid in needs.stories or (needs.owned_by is not None and owner == needs.owned_by)
                ):
                    head.stories[sid] = orjson.loads(body)
        if needs.all_members or needs.members:
            if needs.all_members:
                statement, args = _ALL_MEMBERS, [head.project_id]
            else:
                statement, args = _SOME_MEMBERS, [head.project_id, sorted(needs.members)]
            if self._observers:
                self._seen(statement, tuple(args))
            for uid, role, name, seq in await self.conn.fetch(statement, *args):
                head.loaded_members[uid] = {"user_id": uid, "role": role, "name": name, "seq": seq}
            head.all_members = needs.all_members
        return head

    async def load_all_ranks(self, head: rows.Slice) -> None:
        if self._observers:
            self._seen(_ALL_RANKS, (head.project_id,))
        for sid, rank in await self.conn.fetch(_ALL_RANKS, head.project_id):
            head.ranks[sid] = rank
        head.all_ranks = True

    async def append(
        self,
        state: rows.Slice,
        body: str,
        now: float,
        changes: rows.Changes,
        result: NewResult | None,
    ) -> bool:
        pid = state.project_id
        added = changes.inserted
        changed_ids: list[int] = []
        changed_bodies: list[str | None] = []
        changed_owners: list[int | None] = []
        reranked: list[bool] = []
        ranks: list[int | None] = []
        for sid, story in changes.updated.items():
            changed_ids.append(sid)
            changed_bodies.append(_dumps(story))
            changed_owners.append(story["owner_id"])
            reranked.append(sid in changes.ranks)
            ranks.append(changes.ranks.get(sid))
        for sid, rank in changes.ranks.items():
            if sid not in added and sid not in changes.updated:
                changed_ids.append(sid)
                changed_bodies.append(None)
                changed_owners.append(None)
                reranked.append(True)
                ranks.append(rank)
        deleted = sorted(changes.deleted)
        # One statement may not touch a row twice.
        if changes.deleted.intersection(changed_ids) or changes.deleted.intersection(added):
            raise ValueError("an event both deletes and writes a story")
        args = (
            pid,
            state.version,
            body,
            now,
            state.name,
            state.next_id,
            state.story_count,
            list(added),
            [changes.ranks[sid] for sid in added],
            [story["owner_id"] for story in added.values()],
            [_dumps(story) for story in added.values()],
            changed_ids,
            changed_bodies,
            changed_owners,
            reranked,
            ranks,
            deleted,
            None if result is None else result.user_id,
            None if result is None else result.key,
            None if result is None else result.request_hash,
            None if result is None else result.response,
        )
        if self._observers:
            self._seen(_APPEND, args)
        if await self.conn.fetchval(_APPEND, *args) != 1:
            return False
        if changes.removed_members:
            drop = (pid, sorted(changes.removed_members))
            if self._observers:
                self._seen(_DROP_MEMBERS, drop)
            await self.conn.execute(_DROP_MEMBERS, *drop)
        for uid, (role, name, seq) in changes.members.items():
            put = (pid, uid, role, name, seq)
            if self._observers:
                self._seen(_PUT_MEMBER, put)
            await self.conn.execute(_PUT_MEMBER, *put)
        return True


def _dumps(story: dict[str, Any]) -> str:
    return orjson.dumps(story).decode()
