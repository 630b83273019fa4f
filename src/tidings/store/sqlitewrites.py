"""The command path on SQLite, on the stdlib ``sqlite3`` module: one writer
connection, used synchronously on the event loop.

Measured (bench/write_path.py, docs/PERFORMANCE.md): through SQLAlchemy and
aiosqlite a command cost ~20x the bare driver's CPU, most of it in handing
each statement to aiosqlite's thread and back. A command's statements take
well under a millisecond here (WAL, ``synchronous=NORMAL``: a commit writes
the WAL and does not fsync), so they run on the loop itself, from ``BEGIN
IMMEDIATE`` to ``COMMIT`` without yielding; a ``Gate`` keeps a second
command off the connection while a transaction waits (a busy retry) or a
checkpoint runs.

Other writers (accounts, flags, new projects, pruning, rebuilds and
migrations on SQLAlchemy's writer; another process on the same file) take
the write lock on connections of their own. This connection never waits for
them inside SQLite (``busy_timeout=0``, which would block the loop): a busy
``BEGIN IMMEDIATE`` is retried after an ``asyncio.sleep`` (1 ms, doubling to
50 ms), for up to ``busy_timeout_ms`` in all, then fails as OperationalError
(503). Once ``BEGIN IMMEDIATE`` holds the lock, nothing later in the
transaction can be busy in WAL mode.

Checkpoints: SQLite's automatic checkpoint runs inside the ``COMMIT`` that
crosses 1,000 WAL pages, copying them into the database and syncing it, on
the loop (commits' p99 1.2-2.5 ms, max 10-18 ms, measured). This connection
turns it off (``wal_autocheckpoint=0``); every ``CHECKPOINT_EVERY`` commits a
RESTART checkpoint runs on a connection of its own in a worker thread, the
commands waiting on the lock meanwhile (~5-12 ms each). Not PASSIVE beside
running commands: with commits always arriving, it never finds the WAL fully
copied when a write starts, so the WAL never restarts and grows (500 MB after
20,000 commands, measured). The other connections keep the default, in their
threads.

What each statement reads and writes is what store/writes.py's ``CoreWrites``
does; the API and store tests run on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import orjson
from sqlalchemy.exc import IntegrityError, OperationalError

from tidings.domain import rows
from tidings.domain.view import Needs
from tidings.store.writes import Head, NewResult, StoredResult

#: Commits between two checkpoints off the loop (an ``update_story`` writes ~6
#: WAL pages: 200 commits are about SQLite's default of 1,000 pages).
CHECKPOINT_EVERY = 200

#: How long a checkpoint waits for other connections' writes and reads to end
#: (ms), commands held off meanwhile; past it, it does what it can.
CHECKPOINT_WAIT_MS = 1000

#: Seconds between two tries of a busy ``BEGIN IMMEDIATE``: the first, the most.
_FIRST_RETRY, _LONGEST_RETRY = 0.001, 0.05

#: Called with each statement and its arguments before it runs (tests).
Observer = Callable[[str, tuple[Any, ...]], None]

_HEAD = (
    "SELECT p.version, p.name, p.next_id, p.story_count, m.role FROM projects p "
    "LEFT OUTER JOIN memberships m ON m.project_id = p.id AND m.user_id = ? "
    "WHERE p.id = ?"
)
_STORED = (
    "SELECT project_id, request_hash, response FROM command_results "
    "WHERE user_id = ? AND idempotency_key = ?"
)
_LAST_TWO = "SELECT id, rank FROM stories WHERE project_id = ? ORDER BY rank DESC LIMIT 2"
_TWO_BEFORE = (
    "SELECT id, rank FROM stories WHERE project_id = ? AND rank < "
    "(SELECT rank FROM stories WHERE project_id = ? AND id = ?) ORDER BY rank DESC LIMIT 2"
)
_ALL_MEMBERS = "SELECT user_id, role, name, seq FROM memberships WHERE project_id = ?"
_ALL_RANKS = "SELECT id, rank FROM stories WHERE project_id = ?"
_EVENT = "INSERT INTO events (project_id, version, body) VALUES (?, ?, ?)"
_BUMP = (
    "UPDATE projects SET version = ?, updated_at = ?, name = ?, next_id = ?, story_count = ? "
    "WHERE id = ? AND version = ?"
)
_ADD_STORY = "INSERT INTO stories (project_id, id, rank, owner_id, body) VALUES (?, ?, ?, ?, ?)"
_CHANGE_STORY = "UPDATE stories SET owner_id = ?, body = ? WHERE project_id = ? AND id = ?"
_CHANGE_PLACED_STORY = (
    "UPDATE stories SET owner_id = ?, body = ?, rank = ? WHERE project_id = ? AND id = ?"
)
_RERANK = "UPDATE stories SET rank = ? WHERE project_id = ? AND id = ?"
_DROP_STORY = "DELETE FROM stories WHERE project_id = ? AND id = ?"
_DROP_MEMBER = "DELETE FROM memberships WHERE project_id = ? AND user_id = ?"
_PUT_MEMBER = (
    "INSERT INTO memberships (project_id, user_id, role, name, seq) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (project_id, user_id) "
    "DO UPDATE SET role = excluded.role, name = excluded.name, seq = excluded.seq"
)
_RESULT = (
    "INSERT INTO command_results "
    "(user_id, idempotency_key, request_hash, project_id, response, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?)"
)


def _marks(n: int) -> str:
    return ", ".join("?" * n)


@lru_cache(maxsize=64)
def named_statement(ids: int, owner: bool) -> str:
    """The named stories (``ids`` of them) and/or the owner's: each alternative
    names the project, so SQLite searches one index per alternative."""
    named = []
    if ids:
        named.append(f"(project_id = ? AND id IN ({_marks(ids)}))")
    if owner:
        named.append("(project_id = ? AND owner_id = ?)")
    return "SELECT id, rank, owner_id, body FROM stories WHERE " + " OR ".join(named)


class Gate:
    """The command connection's turn: a command that finds it open takes it and,
    running its transaction without yielding, leaves before anyone else runs.
    Only a busy retry or a checkpoint holds it across an await; when it opens,
    every command waiting goes on in the same pass of the loop.

    Not ``asyncio.Lock``: a lock wakes one waiter per release and makes a
    newcomer queue behind any waiter, so once commands queued behind a
    checkpoint, under a steady load they kept queuing, each taking a pass of
    the loop of its own (one ``epoll_wait`` per command instead of one per ~25,
    measured with ``perf stat``) for as long as the load lasted."""

    __slots__ = ("_held", "_waiters")

    def __init__(self) -> None:
        self._held = False
        self._waiters: list[asyncio.Future[None]] = []

    def try_enter(self) -> bool:
        if self._held:
            return False
        self._held = True
        return True

    async def enter(self) -> None:
        while self._held:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._held = True

    def leave(self) -> None:
        self._held = False
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.enter()

    async def __aexit__(self, *_: object) -> None:
        self.leave()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    for pragma in (
        "journal_mode=WAL",
        "synchronous=NORMAL",
        "foreign_keys=ON",
        "busy_timeout=0",
        "wal_autocheckpoint=0",
    ):
        conn.execute("PRAGMA " + pragma)
    return conn


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", 0) & 0xFF == sqlite3.SQLITE_BUSY


class SqliteCommands:
    """The command path's connection (opened on first use) and its transactions."""

    def __init__(self, path: str, busy_timeout_ms: int) -> None:
        self._path = path
        self._busy_timeout = busy_timeout_ms / 1000
        self._writes: SqliteWrites | None = None
        self._gate = Gate()
        self._commits = 0
        self._checkpointer: sqlite3.Connection | None = None
        self._checkpoint: asyncio.Task[None] | None = None
        self.observers: list[Observer] = []

    async def _wait_to_begin(self, conn: sqlite3.Connection, busy: sqlite3.Error) -> None:
        """``BEGIN IMMEDIATE`` again until another connection's write lock is
        released, waiting off the loop, up to the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout
        delay = _FIRST_RETRY
        while loop.time() + delay <= deadline:
            await asyncio.sleep(delay)
            try:
                conn.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                busy = exc
            delay = min(delay * 2, _LONGEST_RETRY)
        raise busy

    def transaction(self) -> SqliteTransaction:
        """One transaction; sqlite3's errors come out as SQLAlchemy's
        (IntegrityError for a duplicate key, else OperationalError: 503), as
        they do from the rest of the store."""
        return SqliteTransaction(self)

    async def _enter(self) -> SqliteWrites:
        gate = self._gate
        if not gate.try_enter():
            await gate.enter()
        try:
            if self._writes is None:
                self._writes = SqliteWrites(_connect(self._path), self.observers)
            conn = self._writes.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                await self._wait_to_begin(conn, exc)
        except sqlite3.Error as exc:
            gate.leave()
            raise _translated(exc) from exc
        except BaseException:
            gate.leave()
            raise
        return self._writes

    def _exit(self, failed: BaseException | None) -> None:
        assert self._writes is not None
        conn = self._writes.conn
        try:
            try:
                if failed is None:
                    conn.execute("COMMIT")
            finally:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
        except sqlite3.Error as exc:
            raise _translated(exc) from exc
        finally:
            self._gate.leave()
        if failed is not None:
            if isinstance(failed, sqlite3.Error):
                raise _translated(failed) from failed
            return
        self._commits += 1
        if self._commits >= CHECKPOINT_EVERY and self._checkpoint is None:
            self._commits = 0
            self._checkpoint = asyncio.get_running_loop().create_task(self._checkpointed())

    async def _checkpointed(self) -> None:
        """A RESTART checkpoint in a worker thread, commands held off meanwhile."""
        try:
            async with self._gate:
                await asyncio.get_running_loop().run_in_executor(None, self._restart)
        except sqlite3.Error:
            pass  # the WAL stays longer; the next checkpoint tries again
        finally:
            self._checkpoint = None

    def _restart(self) -> None:
        if self._checkpointer is None:
            self._checkpointer = sqlite3.connect(
                self._path, isolation_level=None, check_same_thread=False
            )
            self._checkpointer.execute("PRAGMA synchronous=NORMAL")
            self._checkpointer.execute(f"PRAGMA busy_timeout={CHECKPOINT_WAIT_MS}")
        self._checkpointer.execute("PRAGMA wal_checkpoint(RESTART)").fetchall()

    async def dispose(self) -> None:
        if self._checkpoint is not None:
            await asyncio.wait([self._checkpoint])
        async with self._gate:
            if self._writes is not None:
                self._writes.conn.close()
            if self._checkpointer is not None:
                self._checkpointer.close()
            self._writes, self._checkpointer = None, None


class SqliteTransaction:
    """``async with``: the command connection's ``SqliteWrites`` in a write
    transaction, committed at the end, rolled back on an error."""

    __slots__ = ("_commands",)

    def __init__(self, commands: SqliteCommands) -> None:
        self._commands = commands

    async def __aenter__(self) -> SqliteWrites:
        return await self._commands._enter()

    async def __aexit__(self, _type: object, failed: BaseException | None, _tb: object) -> None:
        self._commands._exit(failed)


def _translated(exc: sqlite3.Error) -> IntegrityError | OperationalError:
    """sqlite3's errors as SQLAlchemy's."""
    if isinstance(exc, sqlite3.IntegrityError):
        return IntegrityError(None, None, exc)
    return OperationalError(None, None, exc)


class SqliteWrites:
    """``Writes`` (store/writes.py) on the sqlite3 connection in a transaction."""

    def __init__(self, conn: sqlite3.Connection, observers: list[Observer]) -> None:
        self.conn = conn
        self._cursor = conn.cursor()
        self._observers = observers

    def _run(self, statement: str, args: tuple[Any, ...]) -> list[Any]:
        if self._observers:
            for observe in self._observers:
                observe(statement, args)
        return self._cursor.execute(statement, args).fetchall()

    def _write(self, statement: str, args: tuple[Any, ...]) -> int:
        if self._observers:
            for observe in self._observers:
                observe(statement, args)
        return self._cursor.execute(statement, args).rowcount

    async def locked_head(self, project_id: int, user_id: int) -> Head | None:
        # BEGIN IMMEDIATE holds the database's write lock: the row is as locked
        # as FOR UPDATE makes it on PostgreSQL.
        found = self._run(_HEAD, (user_id, project_id))
        if not found:
            return None
        row = found[0]
        return Head(row[0], row[1], row[2], row[3], row[4])

    async def stored_result(self, user_id: int, key: str) -> StoredResult | None:
        found = self._run(_STORED, (user_id, key))
        if not found:
            return None
        row = found[0]
        return StoredResult(row[0], bytes(row[1]), row[2])

    async def load_slice(self, head: rows.Slice, needs: Needs) -> rows.Slice:
        pid = head.project_id
        ids = sorted(needs.stories)
        owner = needs.owned_by
        if ids or owner is not None:
            args: tuple[Any, ...] = ()
            if ids:
                args = (pid, *ids)
            if owner is not None:
                args = (*args, pid, owner)
            statement = named_statement(len(ids), owner is not None)
            for sid, rank, owned_by, body in self._run(statement, args):
                if needs.board:
                    head.ranks[sid] = rank
                if sid in needs.stories or (owner is not None and owned_by == owner):
                    head.stories[sid] = orjson.loads(body)
        if needs.board:
            # The last two stories and the two before each named one: enough to
            # put a story at the end or before any of them.
            for sid, rank in self._run(_LAST_TWO, (pid,)):
                head.ranks[sid] = rank
            for named in ids:
                for sid, rank in self._run(_TWO_BEFORE, (pid, pid, named)):
                    head.ranks[sid] = rank
        if needs.all_members or needs.members:
            if needs.all_members:
                statement, args = _ALL_MEMBERS, (pid,)
            else:
                some = sorted(needs.members)
                statement = f"{_ALL_MEMBERS} AND user_id IN ({_marks(len(some))})"
                args = (pid, *some)
            for uid, role, name, seq in self._run(statement, args):
                head.loaded_members[uid] = {"user_id": uid, "role": role, "name": name, "seq": seq}
            head.all_members = needs.all_members
        return head

    async def load_all_ranks(self, head: rows.Slice) -> None:
        for sid, rank in self._run(_ALL_RANKS, (head.project_id,)):
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
        pid, version = state.project_id, state.version
        self._write(_EVENT, (pid, version, body))
        bump = (version, now, state.name, state.next_id, state.story_count, pid, version - 1)
        if self._write(_BUMP, bump) != 1:
            return False
        for sid, story in changes.inserted.items():
            added = (pid, sid, changes.ranks[sid], story["owner_id"], _dumps(story))
            self._write(_ADD_STORY, added)
        for sid, story in changes.updated.items():
            if sid in changes.ranks:
                placed = (story["owner_id"], _dumps(story), changes.ranks[sid], pid, sid)
                self._write(_CHANGE_PLACED_STORY, placed)
            else:
                self._write(_CHANGE_STORY, (story["owner_id"], _dumps(story), pid, sid))
        for sid, rank in changes.ranks.items():
            if sid not in changes.inserted and sid not in changes.updated:
                self._write(_RERANK, (rank, pid, sid))
        for sid in sorted(changes.deleted):
            self._write(_DROP_STORY, (pid, sid))
        for uid in sorted(changes.removed_members):
            self._write(_DROP_MEMBER, (pid, uid))
        for uid, (role, name, seq) in changes.members.items():
            self._write(_PUT_MEMBER, (pid, uid, role, name, seq))
        if result is not None:
            kept = (result.user_id, result.key, result.request_hash, pid, result.response, now)
            self._write(_RESULT, kept)
        return True


def _dumps(story: dict[str, Any]) -> str:
    return orjson.dumps(story).decode()
