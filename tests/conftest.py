"""Shared fixtures: real services, never mocks.

PostgreSQL and Redis tests run against the servers on 127.0.0.1 (``.ci/run``
starts them). Without CI a missing service skips its tests with a reason; with
``CI`` set it fails them, so nothing skips silently in CI.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import free_port, require_service, unavailable
from tidings.testing.database import create_database, drop_database
from tidings.testing.redis import RedisServer

__all__ = ["POSTGRES_URL", "REDIS_URL", "free_port", "require_service"]

REDIS_URL = os.environ.get("TIDINGS_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
POSTGRES_URL = os.environ.get(
    "TIDINGS_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", "127.0.0.1", 6379)
    return REDIS_URL


@pytest.fixture
def postgres_admin_url() -> str:
    require_service("PostgreSQL", "127.0.0.1", 5432)
    return POSTGRES_URL


class ScratchDatabases:
    """Databases on the test server, emptied and reused from one test to the next.

    CREATE DATABASE and above all DROP DATABASE (a checkpoint each) take one to
    three seconds on a loaded machine, for each of the suite's PostgreSQL tests;
    emptying the public schema of a database takes milliseconds and leaves it as
    CREATE DATABASE did. The databases are dropped at the end of the session.
    """

    #: Bound on one statement (emptying may wait for a terminated session to end).
    TIMEOUT = 60.0

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.free: list[str] = []
        self.made: list[str] = []

    async def take(self) -> str:
        """The URL of an empty database."""
        if not self.free:
            self.made.append(await create_database(self.admin_url, prefix="tidings"))
            return self.made[-1]
        return self.free.pop()

    async def give_back(self, url: str) -> None:
        """Empty the database (its sessions ended, its public schema made anew) for
        the next test; drop it instead if a test left another schema in it."""
        import asyncpg

        conn = await asyncpg.connect(url, timeout=self.TIMEOUT)
        try:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()",
                timeout=self.TIMEOUT,
            )
            others = await conn.fetchval(
                "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%'"
                " AND nspname NOT IN ('public', 'information_schema')",
                timeout=self.TIMEOUT,
            )
            if not others:
                # The public schema as PostgreSQL 15's CREATE DATABASE leaves it.
                await conn.execute(
                    "DROP SCHEMA public CASCADE;"
                    " CREATE SCHEMA public AUTHORIZATION pg_database_owner;"
                    " GRANT USAGE ON SCHEMA public TO PUBLIC",
                    timeout=self.TIMEOUT,
                )
        finally:
            await conn.close()
        if others:
            self.made.remove(url)
            await drop_database(self.admin_url, url)
        else:
            self.free.append(url)

    async def drop_all(self) -> None:
        while self.made:
            await drop_database(self.admin_url, self.made.pop())


@pytest.fixture(scope="session")
def scratch_databases() -> Iterator[ScratchDatabases]:
    databases = ScratchDatabases(POSTGRES_URL)
    yield databases
    if databases.made:
        asyncio.run(databases.drop_all())


@pytest.fixture
async def postgres_url(
    postgres_admin_url: str, scratch_databases: ScratchDatabases
) -> AsyncIterator[str]:
    """An empty database on the test server, the test's alone while it runs."""
    url = await scratch_databases.take()
    yield url
    await scratch_databases.give_back(url)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[str]:
    """A Redis server of this test's own: the control channel is shared by every
    client of a Redis server, and a test that silences an app or flips the kill
    switch would degrade any other push server listening there."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server not installed", " (.ci/run installs it)")
    redis = RedisServer(tmp_path)
    try:
        yield redis.start()
    finally:
        redis.stop()


@pytest.fixture
def sqlite_url(tmp_path: object) -> Iterator[str]:
    yield f"sqlite:///{tmp_path}/tidings.sqlite3"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    """Each test using it runs on both stores."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/tidings.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url
