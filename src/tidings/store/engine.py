"""Database engines for SQLite (embedded default) and PostgreSQL.

SQLite gets two engines: writers open with ``BEGIN IMMEDIATE`` (take the write
lock up front, so two commands never both read version N and both try N+1),
readers with a plain deferred ``BEGIN`` (WAL lets them run beside a writer).
PostgreSQL uses one engine; writers serialize per project on ``SELECT ... FOR
UPDATE`` of the project row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

#: How long a SQLite writer waits for the lock before failing (ms).
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

    async def dispose(self) -> None:
        await self.writer.dispose()
        if self.reader is not self.writer:
            await self.reader.dispose()


def _sqlite_engine(url: str, *, immediate: bool, echo: bool) -> AsyncEngine:
    engine = create_async_engine(url, echo=echo, pool_size=5, max_overflow=5)

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

    begin = "BEGIN IMMEDIATE" if immediate else "BEGIN"

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)

    return engine


def create_engines(url: str, *, echo: bool = False) -> Engines:
    url = normalize_url(url)
    if url.startswith("sqlite"):
        return Engines(
            writer=_sqlite_engine(url, immediate=True, echo=echo),
            reader=_sqlite_engine(url, immediate=False, echo=echo),
            is_sqlite=True,
        )
    engine = create_async_engine(url, echo=echo, pool_size=10, max_overflow=10)
    return Engines(writer=engine, reader=engine, is_sqlite=False)
