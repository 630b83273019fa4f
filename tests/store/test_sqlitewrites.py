"""SQLite's command path (store/sqlitewrites.py) beside other writers on the same
file: it waits for their lock without stalling the event loop, gives up after
its busy timeout, and checkpoints off the loop."""

from __future__ import annotations

import asyncio
import dataclasses
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from tidings.domain.commands import CreateStory
from tidings.domain.decide import KnownUser
from tidings.store import sqlitewrites
from tidings.store.accounts import Accounts
from tidings.store.engine import Engines, create_engines
from tidings.store.events import EventStore
from tidings.store.migrate import upgrade
from tidings.store.sqlitewrites import Gate, SqliteCommands


@dataclasses.dataclass
class Db:
    path: Path
    engines: Engines
    store: EventStore
    owner: int
    pid: int


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Db]:
    path = tmp_path / "tidings.sqlite3"
    engines = create_engines(f"sqlite:///{path}")
    assert isinstance(engines.commands, SqliteCommands)
    await upgrade(engines)
    owner = await Accounts(engines).create_user("o@x.io", "O", "password1")
    store = EventStore(engines)
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    yield Db(path, engines, store, owner.id, pid)
    await engines.dispose()


def story(n: int = 0) -> CreateStory:
    return CreateStory(type="create_story", title=f"s{n}")


def holding_the_lock(path: Path) -> sqlite3.Connection:
    """Another connection (another process, or SQLAlchemy's writer) in a write
    transaction."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    return other


async def test_a_held_write_lock_is_waited_for_off_the_loop(db: Db) -> None:
    other = holding_the_lock(db.path)
    command = asyncio.create_task(db.store.execute(db.pid, db.owner, story()))
    ticks = 0
    started = time.monotonic()
    while time.monotonic() - started < 0.3:
        await asyncio.sleep(0.005)
        ticks += 1
    # The loop kept turning (a wait in SQLite's busy handler would have held it).
    assert ticks > 20 and not command.done()
    other.execute("COMMIT")
    other.close()
    assert (await asyncio.wait_for(command, 5)).version == 2


async def test_a_lock_held_past_the_busy_timeout_is_an_operational_error(db: Db) -> None:
    engines = dataclasses.replace(db.engines, commands=SqliteCommands(str(db.path), 100))
    store = EventStore(engines)
    other = holding_the_lock(db.path)
    try:
        started = time.monotonic()
        with pytest.raises(OperationalError):
            await store.execute(db.pid, db.owner, story())
        assert 0.05 < time.monotonic() - started < 2
    finally:
        other.execute("ROLLBACK")
        other.close()
    # Nothing was left open: the next command goes through.
    assert (await store.execute(db.pid, db.owner, story())).version == 2
    assert engines.commands is not None
    await engines.commands.dispose()


async def test_commits_are_checkpointed_off_the_loop_every_so_many(
    db: Db, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The database file itself changes only through a checkpoint: not inside
    the commands' commits, and after ``CHECKPOINT_EVERY`` of them."""
    monkeypatch.setattr(sqlitewrites, "CHECKPOINT_EVERY", 5)
    await db.store.execute(db.pid, db.owner, story())  # the connection opened
    with sqlite3.connect(db.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    before = db.path.read_bytes()
    assert isinstance(db.engines.commands, SqliteCommands)
    db.engines.commands._commits = 0
    for n in range(4):
        await db.store.execute(db.pid, db.owner, story(n))
    assert db.path.read_bytes() == before
    await db.store.execute(db.pid, db.owner, story(5))
    deadline = time.monotonic() + 10
    while db.path.read_bytes() == before:
        assert time.monotonic() < deadline, "no checkpoint"
        await asyncio.sleep(0.01)
    assert await db.store.current_version(db.pid) == 7


async def test_commands_held_by_a_checkpoint_all_go_on_in_the_next_pass() -> None:
    """Once the turn opens, every command waiting runs in the next pass of the
    loop (asyncio.Lock would wake one per pass), and a newcomer never queues
    behind waiters at an open turn."""
    gate = Gate()
    await gate.enter()  # a checkpoint in progress
    ran: list[int] = []

    async def command(n: int) -> None:
        if not gate.try_enter():
            await gate.enter()
        ran.append(n)  # the transaction, without yielding
        gate.leave()

    waiting = [asyncio.create_task(command(n)) for n in range(5)]
    await asyncio.sleep(0)
    assert ran == []
    gate.leave()  # the checkpoint ends
    assert gate.try_enter()  # open, though five are about to wake
    ran.append(99)
    gate.leave()
    await asyncio.sleep(0)
    assert ran == [99, 0, 1, 2, 3, 4]
    await asyncio.gather(*waiting)


async def test_a_waiter_cancelled_at_the_turn_leaves_the_others_waiting() -> None:
    gate = Gate()
    await gate.enter()
    first = asyncio.create_task(gate.enter())
    second = asyncio.create_task(gate.enter())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    assert first.cancelled() and not second.done()
    gate.leave()
    await asyncio.wait_for(second, 1)
    assert not gate.try_enter()  # second holds it
    gate.leave()
