"""Database engines for SQLite (embedded default) and PostgreSQL.

SQLite gets two engines: writers open with ``BEGIN IMMEDIATE`` (take the write
lock up front, so two commands never both read version N and both try N+1),
readers run each statement on its own, with no ``BEGIN`` (WAL lets them run
beside a writer). On PostgreSQL writers serialize per project on ``SELECT ...
FOR UPDATE`` of the project row; readers use autocommit connections. Every
read the app makes is a single statement, so readers need no transaction, and
skipping BEGIN/ROLLBACK halves the round trips of the poll path (measured:
docs/PERFORMANCE.md). Commands run on each database's bare driver:
asyncpg in a pool of their own on PostgreSQL (store/pgwrites.py), one stdlib
``sqlite3`` connection on the event loop on SQLite (store/sqlitewrites.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tidings.store.pgwrites import PgCommands
from tidings.store.sqlitewrites import SqliteCommands

#: How long a SQLite writer waits for the lock before failing (ms): in SQLite's
#: busy handler on SQLAlchemy's connections (their threads), in ``asyncio.sleep``
#: on the command path's (store/sqlitewrites.py).
SQLITE_BUSY_TIMEOUT_MS = 15_000


def normalize_url(url: str) -> str:
    """Accept plain ``sqlite:///file`` and ``postgresql://`` URLs; pick the async drivers."""
    parsed = make_url(url)
    if parsed.drivername in ("sqlite", "sqlite+pysqlite"):
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg2"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    return parsed.render_as_string(hide_password=False)


@dataclass(frozen=True, slots=True)
class Engines:
    writer: AsyncEngine
    reader: AsyncEngine
    is_sqlite: bool
    #: The command path's own connections (store/pgwrites.py,
    #: store/sqlitewrites.py); None where commands run on ``writer`` (an
    #: in-memory SQLite database, or ``sqlite_commands=False``).
    commands: PgCommands | SqliteCommands | None = None

    @contextmanager
    def watching_writes(self, observe: Callable[[str, Any], None]) -> Iterator[None]:
        """Call ``observe(statement, parameters)`` for each statement the writers
        send, on either path, while in the block (tests look at what a command
        issues)."""

        def on_core(_c: Any, _cur: Any, statement: str, params: Any, *_: Any) -> None:
            observe(statement, params)

        event.listen(self.writer.sync_engine, "before_cursor_execute", on_core)
        if self.commands is not None:
            self.commands.observers.append(observe)
        try:
            yield
        finally:
            event.remove(self.writer.sync_engine, "before_cursor_execute", on_core)
            if self.commands is not None:
                self.commands.observers.remove(observe)

    async def dispose(self) -> None:
        if self.commands is not None:
            await self.commands.dispose()
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _sqlite_engine(url: str, *, writer: bool, echo: bool) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        pool_size=5,
        max_overflow=5,
        # Readers never open a transaction, so there is nothing to roll back on return.
        pool_reset_on_return="rollback" if writer else None,
    )

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event emit BEGIN itself (pysqlite's own is deferred).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    if writer:

        @event.listens_for(engine.sync_engine, "begin")
        def _on_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_engines(url: str, *, echo: bool = False, sqlite_commands: bool = True) -> Engines:
    """The engines for ``url``. ``sqlite_commands=False`` runs SQLite's commands
    on SQLAlchemy's writer, as the rare writes do (the tests hold the two paths
    to the same results)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        parsed = make_url(url)
        path = parsed.database
        direct = sqlite_commands and path not in (None, "", ":memory:") and not parsed.query
        return Engines(
            writer=_sqlite_engine(url, writer=True, echo=echo),
            reader=_sqlite_engine(url, writer=False, echo=echo),
            is_sqlite=True,
            commands=SqliteCommands(str(path), SQLITE_BUSY_TIMEOUT_MS) if direct else None,
        )
    # Commands have their own pool (``PgCommands``, up to 20); the writer keeps the
    # rare writes (accounts, projects, flags, pruning, rebuilds).
    writer = create_async_engine(url, echo=echo, pool_size=5, max_overflow=5)
    reader = create_async_engine(
        url,
        echo=echo,
        pool_size=10,
        max_overflow=10,
        isolation_level="AUTOCOMMIT",
        pool_reset_on_return=None,
    )
    return Engines(writer=writer, reader=reader, is_sqlite=False, commands=PgCommands(url))
