"""The event store on real SQLite and real PostgreSQL: versions, idempotency,
concurrency, history."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from hypothesis import HealthCheck, given, settings
from sqlalchemy import event

from tests.commandgen import COMMAND, resolve, steps
from tidings.domain import project
from tidings.domain.decide import KnownUser
from tidings.protocol.errors import Conflict, Invalid, NotFound
from tidings.store.accounts import Accounts, User
from tidings.store.engine import Engines, create_engines
from tidings.store.events import EventStore, request_hash
from tidings.store.migrate import upgrade
from tidings.store.schema import metadata


class Db:
    def __init__(self, engines: Engines) -> None:
        self.engines = engines
        self.store = EventStore(engines)
        self.accounts = Accounts(engines)

    async def project(self, owner: User) -> int:
        return (await self.store.create_project("P", KnownUser(owner.id, owner.name))).project_id


@pytest.fixture
async def db(db_url: str, sqlite_commands: bool) -> AsyncIterator[Db]:
    engines = create_engines(db_url, sqlite_commands=sqlite_commands)
    await upgrade(engines)
    yield Db(engines)
    await engines.dispose()


def story(title: str = "S") -> Any:
    return COMMAND.validate_python({"type": "create_story", "title": title})


async def test_each_command_adds_exactly_one_version(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    for n in range(2, 7):
        committed = await db.store.execute(pid, owner.id, story(f"s{n}"))
        assert committed.version == n
    page = await db.store.events_since(pid, 3, 100)
    assert page is not None
    assert [orjson.loads(e)["version"] for e in page.events] == [4, 5, 6]
    assert page.version == 6


async def test_stale_expected_version_is_refused_with_the_current_one(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    await db.store.execute(pid, owner.id, story(), expected_version=1)
    with pytest.raises(Conflict) as err:
        await db.store.execute(pid, owner.id, story(), expected_version=1)
    assert err.value.extra["version"] == 2
    assert await db.store.current_version(pid) == 2


async def test_refused_command_leaves_no_trace(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    bad = COMMAND.validate_python({"type": "delete_story", "story_id": 5})
    with pytest.raises(NotFound):
        await db.store.execute(pid, owner.id, bad)
    assert await db.store.current_version(pid) == 1
    assert len(await db.store.all_events(pid)) == 1


async def test_outsiders_cannot_tell_a_project_exists(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    stranger = await db.accounts.create_user("s@x.io", "S", "password1")
    pid = await db.project(owner)
    with pytest.raises(NotFound) as foreign:
        await db.store.execute(pid, stranger.id, story())
    with pytest.raises(NotFound) as missing:
        await db.store.execute(pid + 1000, stranger.id, story())
    assert foreign.value.body() == missing.value.body()


async def test_a_retried_command_is_applied_once_and_answers_the_same(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    key = ("k-1", request_hash(pid, b"same"))
    first = await db.store.execute(pid, owner.id, story(), idempotency=key)
    again = await db.store.execute(pid, owner.id, story(), idempotency=key)
    assert again.replayed and again.response == first.response
    assert await db.store.current_version(pid) == 2
    with pytest.raises(Invalid):
        await db.store.execute(pid, owner.id, story(), idempotency=("k-1", request_hash(pid, b"x")))


async def test_concurrent_writers_get_gap_free_versions(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    writers = 40
    results = await asyncio.gather(
        *(db.store.execute(pid, owner.id, story(f"s{n}")) for n in range(writers))
    )
    versions = sorted(r.version for r in results)
    assert versions == list(range(2, writers + 2))
    events = await db.store.all_events(pid)
    assert [e["version"] for e in events] == list(range(1, writers + 2))
    snap = await db.store.snapshot(pid)
    assert snap is not None
    assert orjson.loads(snap[1]) == project.replay(pid, events)


async def test_concurrent_retries_of_one_command_apply_it_once(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    key = ("retry-me", request_hash(pid, b"body"))
    results = await asyncio.gather(
        *(db.store.execute(pid, owner.id, story(), idempotency=key) for _ in range(12))
    )
    assert {r.version for r in results} == {2}
    assert sum(not r.replayed for r in results) == 1
    assert await db.store.current_version(pid) == 2


async def test_pruned_history_is_reported(db: Db) -> None:
    owner = await db.accounts.create_user("o@x.io", "O", "password1")
    pid = await db.project(owner)
    for _ in range(5):
        await db.store.execute(pid, owner.id, story())
    assert await db.store.prune(pid, keep=2) == 4
    page = await db.store.events_since(pid, 2, 100)
    assert page is not None and page.pruned_through == 4 and page.events == []
    page = await db.store.events_since(pid, 4, 100)
    assert page is not None and [orjson.loads(e)["version"] for e in page.events] == [5, 6]


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw_steps=steps)
async def test_any_sequence_versions_rise_by_one_and_replay_matches(
    db: Db, raw_steps: list[Any]
) -> None:
    owner = await db.accounts.by_email("prop@x.io") or await db.accounts.create_user(
        "prop@x.io", "P", "password1"
    )
    pid = await db.project(owner)
    for raw in raw_steps:
        snap = await db.store.snapshot(pid)
        assert snap is not None
        state = orjson.loads(snap[1])
        command = resolve(state, raw)
        if command is None:
            continue
        try:
            committed = await db.store.execute(pid, owner.id, command)
        except Invalid:
            assert await db.store.current_version(pid) == state["version"]
            continue
        assert committed.version == state["version"] + 1
    events = await db.store.all_events(pid)
    versions = [e["version"] for e in events]
    assert versions == list(range(1, len(versions) + 1))
    snap = await db.store.snapshot(pid)
    assert snap is not None
    assert project.replay(pid, events) == orjson.loads(snap[1])
    for since in {0, len(versions) // 2, len(versions)}:
        page = await db.store.events_since(pid, since, 500)
        assert page is not None
        assert [orjson.loads(e) for e in page.events] == events[since:]


async def test_changed_projects_are_read_from_a_position_in_commit_order(
    db_url: str, sqlite_commands: bool
) -> None:
    engines = create_engines(db_url, sqlite_commands=sqlite_commands)
    await upgrade(engines)
    now = [100.0]
    store = EventStore(engines, clock=lambda: now[0])
    owner = await Accounts(engines).create_user("o@x.io", "O", "password1")
    known = KnownUser(owner.id, owner.name)
    pids = []
    for _ in range(3):
        now[0] += 1
        pids.append((await store.create_project("P", known)).project_id)
    now[0] = 110.0
    await store.execute(pids[0], owner.id, story())  # it moves past the others
    try:
        seen = await store.changed((0.0, 0), 200.0, 10)
        assert [(c.project_id, c.version, c.ts) for c in seen] == [
            (pids[1], 1, 102.0),
            (pids[2], 1, 103.0),
            (pids[0], 2, 110.0),
        ]
        assert [c.project_id for c in await store.changed((102.0, pids[1]), 200.0, 10)] == [
            pids[2],
            pids[0],
        ]
        assert [c.project_id for c in await store.changed((0.0, 0), 109.0, 10)] == pids[1:]
        assert [c.project_id for c in await store.changed((0.0, 0), 200.0, 1)] == [pids[1]]
    finally:
        await engines.dispose()


async def test_the_changed_projects_query_is_an_index_range_scan(db: Db) -> None:
    """Every sweeper pass of every app process runs it: it must never scan the table."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, params: Any, *_: Any) -> None:
        seen.append((statement, params))

    event.listen(db.engines.reader.sync_engine, "before_cursor_execute", capture)
    await db.store.changed((5.0, 3), 10.0, 100)
    ((statement, params),) = seen
    async with db.engines.writer.connect() as conn:
        if db.engines.is_sqlite:
            rows = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
            plan = " ".join(str(r[-1]) for r in rows)
            assert "USING INDEX ix_projects_updated_at" in plan, plan
        else:
            # The table is empty: forbid the sequential scan a planner would prefer.
            await conn.exec_driver_sql("SET enable_seqscan = off")
            rows = await conn.exec_driver_sql("EXPLAIN " + statement, params)
            plan = " ".join(str(r[0]) for r in rows)
            assert "ix_projects_updated_at" in plan and "Seq Scan" not in plan, plan


async def test_migrations_build_exactly_the_declared_schema(db: Db) -> None:
    async with db.engines.writer.connect() as conn:
        diff = await conn.run_sync(
            lambda sync: compare_metadata(MigrationContext.configure(sync), metadata)
        )
    assert diff == []
