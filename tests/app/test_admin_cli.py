"""The admin commands, run as an operator would (a real process, a real database)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

from tidings.testing.processes import tidings_argv, tidings_cli


def tidings(db: str, *args: str) -> str:
    return tidings_cli(*args, env={**os.environ, "TIDINGS_DATABASE_URL": db}, timeout=60)


def test_users_tokens_flags_and_pruning(sqlite_url: str) -> None:
    tidings(sqlite_url, "db", "upgrade")
    user = json.loads(
        tidings(sqlite_url, "users", "add", "op@x.io", "Op", "--password", "password1", "--admin")
    )
    assert user["is_admin"] is True
    assert len(tidings(sqlite_url, "tokens", "create", "op@x.io")) >= 40
    assert json.loads(tidings(sqlite_url, "flags", "push", "off"))["enabled"] is False
    assert json.loads(tidings(sqlite_url, "flags", "rollout", "25"))["rollout_percent"] == 25
    flags = json.loads(tidings(sqlite_url, "flags", "project", "7", "on"))
    assert flags["projects"] == {"7": True}
    assert json.loads(tidings(sqlite_url, "flags", "project", "7", "default"))["projects"] == {}
    assert json.loads(tidings(sqlite_url, "flags", "show"))["enabled"] is False


@pytest.mark.parametrize("args", [["flags", "rollout", "101"], ["users", "add", "x@y.z"]])
def test_bad_arguments_are_refused(sqlite_url: str, args: list[str]) -> None:
    out = subprocess.run(
        tidings_argv(*args),
        env={**os.environ, "TIDINGS_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2 and "usage:" in out.stderr


async def _project_with_stories(db: str) -> tuple[int, tuple[int, bytes] | None]:
    from tests.commandgen import COMMAND
    from tidings.domain.decide import KnownUser
    from tidings.store.accounts import Accounts
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore
    from tidings.store.migrate import upgrade

    engines = create_engines(db)
    try:
        await upgrade(engines)
        owner = await Accounts(engines).create_user("rb@x.io", "O", "password1")
        store = EventStore(engines)
        pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
        for title in ("a", "b"):
            await store.execute(
                pid, owner.id, COMMAND.validate_python({"type": "create_story", "title": title})
            )
        return pid, await store.snapshot(pid)
    finally:
        await engines.dispose()


async def _snapshot(db: str, pid: int) -> tuple[int, bytes] | None:
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore

    engines = create_engines(db)
    try:
        return await EventStore(engines).snapshot(pid)
    finally:
        await engines.dispose()


def test_db_rebuild_rebuilds_every_project_from_its_log(sqlite_url: str) -> None:
    pid, before = asyncio.run(_project_with_stories(sqlite_url))
    lines = tidings(sqlite_url, "db", "rebuild").splitlines()
    assert [json.loads(line) for line in lines] == [{"project": pid, "version": 3}]
    assert asyncio.run(_snapshot(sqlite_url, pid)) == before
    out = subprocess.run(
        [sys.executable, "-m", "tidings", "db", "rebuild", "--project", "999"],
        env={**os.environ, "TIDINGS_DATABASE_URL": sqlite_url},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0 and "no project 999" in out.stderr
