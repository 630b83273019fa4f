"""The read model's rows on real SQLite and PostgreSQL: kept by each command,
equal to a rebuild from the log, migrated from the whole-snapshot schema, and
touched only where a command points."""

from __future__ import annotations

import gzip
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from tests.commandgen import COMMAND, resolve, step
from tidings.domain import project
from tidings.domain.commands import AddMember, Role
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.protocol.errors import Invalid, NotFound
from tidings.store import gzblocks, readmodel
from tidings.store import schema as t
from tidings.store.accounts import Accounts, User
from tidings.store.engine import Engines, create_engines
from tidings.store.events import EventStore
from tidings.store.migrate import upgrade


@pytest.fixture
async def engines(db_url: str, sqlite_commands: bool) -> AsyncIterator[Engines]:
    made = create_engines(db_url, sqlite_commands=sqlite_commands)
    await upgrade(made)
    yield made
    await made.dispose()


async def read_model(engines: Engines, pid: int) -> dict[str, Any]:
    """Every read-model row of a project, in a canonical form (stories' ``rank``
    and members' ``seq`` only order them)."""
    s, m, p = t.stories, t.memberships, t.projects
    async with engines.reader.connect() as conn:
        head = (
            await conn.execute(
                select(p.c.name, p.c.version, p.c.next_id, p.c.story_count).where(p.c.id == pid)
            )
        ).one()
        stories = (
            await conn.execute(
                select(s.c.id, s.c.rank, s.c.owner_id, s.c.body)
                .where(s.c.project_id == pid)
                .order_by(s.c.rank)
            )
        ).all()
        members = (
            await conn.execute(
                select(m.c.user_id, m.c.role, m.c.name)
                .where(m.c.project_id == pid)
                .order_by(m.c.seq)
            )
        ).all()
    return {
        "head": tuple(head),
        "stories": [(r.id, r.owner_id, orjson.loads(r.body)) for r in stories],
        "ranks_distinct": len({r.rank for r in stories}) == len(stories),
        "members": [tuple(r) for r in members],
    }


async def read_snapshot_whole(engines: Engines, pid: int) -> tuple[int, bytes] | None:
    async with engines.reader.connect() as conn:
        kept = await readmodel.read_snapshot(conn, pid)
    return None if kept is None else (kept.version, kept.encoded())


member_step = st.tuples(
    st.sampled_from(["add_member", "set_role", "remove_member"]), st.integers(0, 2)
)
mixed_steps = st.lists(st.one_of(step, step, step, member_step), min_size=1, max_size=25)


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(raw_steps=mixed_steps)
async def test_rebuild_from_the_log_equals_the_rows_commands_kept(
    engines: Engines, raw_steps: list[Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Runs of two stories on average, so a small board's gzip stream has several.
    monkeypatch.setattr(gzblocks, "MEAN_STORIES", 2)
    accounts, store = Accounts(engines), EventStore(engines)
    users: list[User] = []
    for n in range(4):
        email = f"rb{n}@x.io"
        users.append(
            await accounts.by_email(email)
            or await accounts.create_user(email, f"U{n}", "password1")
        )
    owner, others = users[0], users[1:]
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    # Another process's store, which looks less often: its kept copy catches up
    # several events at a time.
    other = EventStore(engines)
    for n, raw in enumerate(raw_steps):
        found = await store.snapshot(pid)
        assert found is not None
        # The kept copy, brought forward event by event, is the snapshot a full
        # read of the rows gives at that version.
        assert found == await read_snapshot_whole(engines, pid)
        # The gzip stream, from runs kept across the versions since it was last
        # asked for, inflates to the same snapshot.
        if n % 3 == 2:
            packed = await other.snapshot_gzipped(pid, 4)
            assert packed is not None and packed[0] == found[0]
            assert gzip.decompress(packed[1]) == found[1]
            assert await other.snapshot(pid) == found
        if n % 2 == 0:
            packed = await store.snapshot_gzipped(pid, 4)
            assert packed is not None and packed[0] == found[0]
            assert gzip.decompress(packed[1]) == found[1]
        state = orjson.loads(found[1])
        target = None
        if raw[0] == "add_member":
            who = others[raw[1]]
            role = Role.OWNER if raw[1] == 2 else Role.MEMBER
            command: Any = AddMember(type="add_member", email=who.email, role=role)
            target = KnownUser(who.id, who.name)
        elif raw[0] == "set_role":
            command = COMMAND.validate_python(
                {"type": "set_role", "user_id": others[raw[1]].id, "role": "viewer"}
            )
        elif raw[0] == "remove_member":
            command = COMMAND.validate_python(
                {"type": "remove_member", "user_id": others[raw[1]].id}
            )
        else:
            command = resolve(state, raw)
            if command is None:
                continue
            if command.type == "create_story" and len(state["members"]) > 1:
                # Give some stories an owner, so removing a member unassigns them.
                command.owner_id = state["members"][raw[1] % len(state["members"])]["user_id"]
        try:
            await store.execute(pid, owner.id, command, target=target)
        except Invalid:
            continue
        except Exception as exc:  # NotFound: removing (or setting the role of) a non-member
            assert type(exc).__name__ == "NotFound", exc
    kept = await read_model(engines, pid)
    events = await store.all_events(pid)
    found = await store.snapshot(pid)
    assert found is not None
    assert orjson.loads(found[1]) == project.replay(pid, events)
    assert await store.rebuild(pid) == len(events)
    assert await read_model(engines, pid) == kept
    # And after pruning, from the stored base plus the events kept.
    await store.prune(pid, keep=len(events) // 2)
    assert await store.rebuild(pid) == len(events)
    assert await read_model(engines, pid) == kept


async def test_a_command_reads_and_writes_the_same_whatever_the_project_size(
    engines: Engines,
) -> None:
    """The statements of update, move, create and delete in a 5-story and a
    150-story project: the same statements with the same rows named."""
    accounts, store = Accounts(engines), EventStore(engines)
    owner = await accounts.create_user("size@x.io", "O", "password1")
    seen: list[tuple[str, int]] = []

    def capture(statement: str, params: Any) -> None:
        seen.append((statement, len(str(params))))

    async def traced(pid: int, body: dict[str, Any]) -> list[tuple[str, int]]:
        seen.clear()
        with engines.watching_writes(capture):
            await store.execute(pid, owner.id, COMMAND.validate_python(body))
        assert seen
        return list(seen)

    traces = []
    for size in (5, 150):
        pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
        for n in range(size):
            await store.execute(
                pid,
                owner.id,
                COMMAND.validate_python({"type": "create_story", "title": f"s{n:04}"}),
            )
        found = await store.snapshot(pid)
        assert found is not None
        ids = [s["id"] for s in orjson.loads(found[1])["stories"]]
        first, middle = ids[0], ids[size // 2]
        traces.append(
            [
                await traced(pid, {"type": "update_story", "story_id": middle, "title": "edited"}),
                await traced(pid, {"type": "move_story", "story_id": middle, "before_id": first}),
                await traced(pid, {"type": "create_story", "title": "new", "before_id": middle}),
                await traced(pid, {"type": "delete_story", "story_id": first}),
            ]
        )
    small, large = traces
    for a, b in zip(small, large, strict=True):
        assert [s for s, _ in a] == [s for s, _ in b]
        # Parameters differ only by the ids' and times' digits, not by the project.
        assert all(abs(x - y) < 40 for (_, x), (_, y) in zip(a, b, strict=True)), (a, b)


OLD_PROJECTS = sa.table(
    "projects",
    sa.column("id"),
    sa.column("name"),
    sa.column("version"),
    sa.column("pruned_through"),
    sa.column("snapshot"),
    sa.column("created_at"),
)
OLD_MEMBERSHIPS = sa.table(
    "memberships", sa.column("project_id"), sa.column("user_id"), sa.column("role")
)


def history(pid: int, owner: User) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A small project's events and final state, made by the pure domain."""
    state = project.empty(pid)
    events: list[dict[str, Any]] = []

    def add(kind: str, data: dict[str, Any]) -> None:
        e = {
            "version": state["version"] + 1,
            "type": kind,
            "data": data,
            "actor": owner.id,
            "ts": 1.0 + len(events),
        }
        project.apply_in_place(state, e)
        events.append(e)

    add("project_created", {"name": "Old", "owner": {"user_id": owner.id, "name": owner.name}})
    for body in (
        {"type": "create_story", "title": "a"},
        {"type": "create_story", "title": "b", "before_id": 1},
        {"type": "add_comment", "story_id": 2, "text": "hi"},
        {"type": "move_story", "story_id": 2, "before_id": None},
        {"type": "create_story", "title": "c", "before_id": 2, "owner_id": owner.id},
    ):
        made = decide(state, COMMAND.validate_python(body), Actor(owner.id, Role.OWNER))
        add(made.type, made.data)
    return events, state


async def test_migration_rebuilds_the_rows_of_an_existing_database(
    db_url: str, sqlite_commands: bool
) -> None:
    """A database written by the whole-snapshot schema (0002) comes up with the
    same snapshots: rebuilt from its events, or from its snapshot when old events
    were pruned (which then is the base of later rebuilds)."""
    engines = create_engines(db_url, sqlite_commands=sqlite_commands)
    try:
        await upgrade(engines, "0002")
        owner = await Accounts(engines).create_user("mig@x.io", "O", "password1")
        expected = {}
        async with engines.writer.begin() as conn:
            for pruned in (0, 3):
                pid = (
                    await conn.execute(
                        sa.insert(OLD_PROJECTS)
                        .values(
                            name="Old", version=0, pruned_through=0, snapshot="{}", created_at=1.0
                        )
                        .returning(OLD_PROJECTS.c.id)
                    )
                ).scalar_one()
                events, state = history(pid, owner)
                for e in events[pruned:]:
                    await conn.execute(
                        insert(t.events).values(
                            project_id=pid, version=e["version"], body=orjson.dumps(e).decode()
                        )
                    )
                await conn.execute(
                    sa.update(OLD_PROJECTS)
                    .where(OLD_PROJECTS.c.id == pid)
                    .values(
                        version=state["version"],
                        pruned_through=pruned,
                        snapshot=orjson.dumps(state).decode(),
                    )
                )
                await conn.execute(
                    sa.insert(OLD_MEMBERSHIPS).values(
                        project_id=pid, user_id=owner.id, role="owner"
                    )
                )
                expected[pid] = state
        await upgrade(engines)
        store = EventStore(engines)
        for pid, state in expected.items():
            found = await store.snapshot(pid)
            assert found is not None and orjson.loads(found[1]) == state
            kept = await read_model(engines, pid)
            assert await store.rebuild(pid) == state["version"]
            assert await read_model(engines, pid) == kept
            # The rows serve commands: a story moved to the front, placed by its rank.
            await store.execute(
                pid,
                owner.id,
                COMMAND.validate_python({"type": "move_story", "story_id": 1, "before_id": None}),
            )
            found = await store.snapshot(pid)
            assert found is not None
            assert [s["id"] for s in orjson.loads(found[1])["stories"]] == [4, 2, 1]
    finally:
        await engines.dispose()


async def test_commands_run_together_take_one_version_each_or_none(engines: Engines) -> None:
    accounts, store = Accounts(engines), EventStore(engines)
    owner = await accounts.create_user("many@x.io", "O", "password1")
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    create = [COMMAND.validate_python({"type": "create_story", "title": f"s{n}"}) for n in range(5)]
    done = await store.execute_many(pid, owner.id, create)
    assert [c.version for c in done] == [2, 3, 4, 5, 6]
    bad = COMMAND.validate_python({"type": "delete_story", "story_id": 999})
    with pytest.raises(NotFound):
        await store.execute_many(pid, owner.id, [*create[:2], bad])
    assert await store.current_version(pid) == 6
    found = await store.snapshot(pid)
    assert found is not None
    assert orjson.loads(found[1]) == project.replay(pid, await store.all_events(pid))


async def test_a_move_finds_its_neighbours_by_index_not_by_scanning_the_project(
    engines: Engines,
) -> None:
    """The statements that load a move's stories, the ones before them and the
    last ones must search indexes, in rank order: a scan or a sort of the
    project's stories is what made commands grow with the project."""
    accounts, store = Accounts(engines), EventStore(engines)
    owner = await accounts.create_user("plan@x.io", "O", "password1")
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    create = [COMMAND.validate_python({"type": "create_story", "title": f"s{n}"}) for n in range(3)]
    await store.execute_many(pid, owner.id, create)
    seen: list[tuple[str, Any]] = []

    def capture(statement: str, params: Any) -> None:
        if "FROM stories" in statement and statement.lstrip().startswith("SELECT"):
            seen.append((statement, params))

    with engines.watching_writes(capture):
        move = {"type": "move_story", "story_id": 3, "before_id": 1}
        await store.execute(pid, owner.id, COMMAND.validate_python(move))
    assert seen
    async with engines.writer.connect() as conn:
        for statement, params in seen:
            if engines.is_sqlite:
                found = await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params)
                plan = [str(r[-1]) for r in found]
                searches = [line for line in plan if "stories" in line]
                assert searches and all(
                    "SEARCH" in line and "(project_id=?" in line for line in searches
                ), plan
                assert not any("TEMP B-TREE" in line for line in plan), plan
            else:
                # The command path's own statement, on its own driver ($n parameters).
                raw = (await conn.get_raw_connection()).driver_connection
                assert raw is not None
                await raw.execute("SET enable_seqscan = off")
                plan = [str(r[0]) for r in await raw.fetch("EXPLAIN " + statement, *params)]
                assert not any("Seq Scan" in line or "Sort" in line for line in plan), plan


async def test_story_pages_leave_room_for_updates_on_postgres(engines: Engines) -> None:
    async with engines.reader.connect() as conn:
        if conn.dialect.name != "postgresql":
            return  # SQLite has no fill factor
        options = (
            await conn.execute(sa.text("select reloptions from pg_class where relname = 'stories'"))
        ).scalar_one()
    assert options == ["fillfactor=70"]


async def test_moves_into_one_place_renumber_a_section_and_keep_the_order(
    engines: Engines,
) -> None:
    """Stories put again and again just before one story halve the free ranks
    there until none is left; then every rank is read, a few stories are
    re-spaced, and the board, the snapshot and a rebuild still agree."""
    accounts, store = Accounts(engines), EventStore(engines)
    owner = await accounts.create_user("crowd@x.io", "O", "password1")
    pid = (await store.create_project("P", KnownUser(owner.id, owner.name))).project_id
    create = [COMMAND.validate_python({"type": "create_story", "title": f"s{n}"}) for n in range(6)]
    await store.execute_many(pid, owner.id, create)
    every_rank: list[str] = []

    def capture(statement: str, params: Any) -> None:
        flat = " ".join(statement.split())
        if "rank FROM stories WHERE" in flat and "LIMIT" not in flat and "body" not in flat:
            every_rank.append(flat)

    with engines.watching_writes(capture):
        for n in range(40):
            move = {"type": "move_story", "story_id": 1 + n % 2, "before_id": 5}
            await store.execute(pid, owner.id, COMMAND.validate_python(move))
    assert every_rank, "no renumber happened"
    found = await store.snapshot(pid)
    assert found is not None
    assert orjson.loads(found[1]) == project.replay(pid, await store.all_events(pid))
    assert [s["id"] for s in orjson.loads(found[1])["stories"]] == [3, 4, 1, 2, 5, 6]
    kept = await read_model(engines, pid)
    assert kept["ranks_distinct"]
    await store.rebuild(pid)
    assert await read_model(engines, pid) == kept
