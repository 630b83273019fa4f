"""The read model's rows on the database: load the slice a command needs, write
the rows its event changed, assemble a snapshot, lay out a whole project.

Every statement here is bounded by what one command names (a few stories, the
members), never by the project's size, except the snapshot read and the
rebuild, which read or write the whole project on purpose.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Executable,
    Text,
    and_,
    bindparam,
    delete,
    insert,
    literal_column,
    null,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from tidings.domain import rows
from tidings.domain.view import Needs
from tidings.store import schema as t
from tidings.store import snapshots


async def load_slice(conn: AsyncConnection, head: rows.Slice, needs: Needs) -> rows.Slice:
    """Fill ``head`` (the project row's fields) with the rows ``needs`` names."""
    s, m = t.stories, t.memberships
    pid = head.project_id
    ids = sorted(needs.stories)
    mine = s.c.project_id == pid
    wanted: list[ColumnElement[bool]] = []
    if ids:
        wanted.append(s.c.id.in_(ids))
    if needs.owned_by is not None:
        wanted.append(s.c.owner_id == needs.owned_by)
    if wanted:
        # Each alternative names the project itself: SQLite then searches one
        # index per alternative (its multi-index OR).
        found = await conn.execute(
            select(s.c.id, s.c.rank, s.c.owner_id, s.c.body).where(
                or_(*(and_(mine, w) for w in wanted))
            )
        )
        for row in found:
            sid = int(row.id)
            if needs.board:
                head.ranks[sid] = int(row.rank)
            if sid in needs.stories or (
                needs.owned_by is not None and row.owner_id == needs.owned_by
            ):
                head.stories[sid] = orjson.loads(row.body)
    if needs.board:
        # The last two stories and the two before each named one: enough to put
        # a story at the end or before any of them, the moved one taken off.
        for stmt in [_last_two(pid), *(_two_before(pid, sid) for sid in ids)]:
            for sid, rank in await conn.execute(stmt):
                head.ranks[int(sid)] = int(rank)
    if needs.all_members or needs.members:
        stmt = select(m.c.user_id, m.c.role, m.c.name, m.c.seq).where(m.c.project_id == pid)
        if not needs.all_members:
            stmt = stmt.where(m.c.user_id.in_(sorted(needs.members)))
        for row in await conn.execute(stmt):
            head.loaded_members[int(row.user_id)] = {
                "user_id": int(row.user_id),
                "role": row.role,
                "name": row.name,
                "seq": int(row.seq),
            }
        head.all_members = needs.all_members
    return head


def _last_two(pid: int) -> Executable:
    s = t.stories
    return select(s.c.id, s.c.rank).where(s.c.project_id == pid).order_by(s.c.rank.desc()).limit(2)


def _two_before(pid: int, sid: int) -> Executable:
    s = t.stories
    at = select(s.c.rank).where(and_(s.c.project_id == pid, s.c.id == sid)).scalar_subquery()
    return (
        select(s.c.id, s.c.rank)
        .where(and_(s.c.project_id == pid, s.c.rank < at))
        .order_by(s.c.rank.desc())
        .limit(2)
    )


def all_ranks_statement(pid: int) -> Executable:
    """Every story's rank (a renumber, rare)."""
    s = t.stories
    return select(s.c.id, s.c.rank).where(s.c.project_id == pid)


async def load_all_ranks(conn: AsyncConnection, head: rows.Slice) -> None:
    for sid, rank in await conn.execute(all_ranks_statement(head.project_id)):
        head.ranks[int(sid)] = int(rank)
    head.all_ranks = True


def _story_values(pid: int, sid: int, rank: int, story: dict[str, Any]) -> dict[str, Any]:
    return {
        "project_id": pid,
        "id": sid,
        "rank": rank,
        "owner_id": story["owner_id"],
        "body": orjson.dumps(story).decode(),
    }


def change_statements(
    pid: int, changes: rows.Changes
) -> list[tuple[Executable, dict[str, Any] | list[dict[str, Any]]]]:
    """The statements that write ``changes`` (a handful: one per changed row)."""
    s, m = t.stories, t.memberships
    out: list[tuple[Executable, Any]] = []
    for sid, story in changes.inserted.items():
        out.append((insert(s), _story_values(pid, sid, changes.ranks[sid], story)))
    for sid, story in changes.updated.items():
        values: dict[str, Any] = {
            "owner_id": story["owner_id"],
            "body": orjson.dumps(story).decode(),
        }
        if sid in changes.ranks:
            values["rank"] = changes.ranks[sid]
        out.append((update(s).where(and_(s.c.project_id == pid, s.c.id == sid)).values(values), {}))
    reranked = [
        {"sid": sid, "r": rank}
        for sid, rank in changes.ranks.items()
        if sid not in changes.inserted and sid not in changes.updated
    ]
    if reranked:
        stmt = (
            update(s)
            .where(and_(s.c.project_id == pid, s.c.id == bindparam("sid")))
            .values(rank=bindparam("r"))
        )
        out.append((stmt, reranked))
    if changes.deleted:
        out.append(
            (delete(s).where(and_(s.c.project_id == pid, s.c.id.in_(sorted(changes.deleted)))), {})
        )
    for uid in sorted(changes.removed_members):
        out.append((delete(m).where(and_(m.c.project_id == pid, m.c.user_id == uid)), {}))
    for uid, (role, name, seq) in changes.members.items():
        # Delete then insert: one upsert spelling for both databases (member
        # commands are rare).
        out.append((delete(m).where(and_(m.c.project_id == pid, m.c.user_id == uid)), {}))
        out.append(
            (insert(m), {"project_id": pid, "user_id": uid, "role": role, "name": name, "seq": seq})
        )
    return out


async def write_changes(conn: AsyncConnection, pid: int, changes: rows.Changes) -> None:
    for stmt, params in change_statements(pid, changes):
        await conn.execute(stmt, params)


def layout_statements(
    pid: int, laid: rows.ProjectRows
) -> list[tuple[Executable, dict[str, Any] | Sequence[dict[str, Any]]]]:
    """Replace a project's rows with ``laid`` (rebuilds and migrations)."""
    s, m, p = t.stories, t.memberships, t.projects
    out: list[tuple[Executable, Any]] = [
        (delete(s).where(s.c.project_id == pid), {}),
        (delete(m).where(m.c.project_id == pid), {}),
        (
            update(p)
            .where(p.c.id == pid)
            .values(name=laid.name, next_id=laid.next_id, story_count=len(laid.stories)),
            {},
        ),
    ]
    if laid.stories:
        out.append(
            (insert(s), [_story_values(pid, sid, rank, st) for sid, rank, _, st in laid.stories])
        )
    if laid.members:
        out.append(
            (
                insert(m),
                [
                    {"project_id": pid, "user_id": uid, "role": role, "name": name, "seq": seq}
                    for uid, role, name, seq in laid.members
                ],
            )
        )
    return out


def snapshot_statement(pid: int) -> Executable:
    """The project head, its members and its stories in one statement, so they are
    read at one version (one statement sees one snapshot of the database, on
    PostgreSQL's autocommit readers and on SQLite alike)."""
    p, m, s = t.projects, t.memberships, t.stories
    head = select(
        literal_column("0").label("kind"),
        p.c.version.label("a"),
        p.c.next_id.label("b"),
        p.c.name.label("x"),
        null().cast(Text).label("y"),
    ).where(p.c.id == pid)
    members = select(literal_column("1"), m.c.user_id, m.c.seq, m.c.role, m.c.name).where(
        m.c.project_id == pid
    )
    stories = select(literal_column("2"), s.c.id, s.c.rank, s.c.body, null().cast(Text)).where(
        s.c.project_id == pid
    )
    return union_all(head, members, stories)


async def read_snapshot(conn: AsyncConnection, pid: int) -> snapshots.Kept | None:
    """The project's rows as a kept snapshot; None if there is no project."""
    return gather(pid, await conn.execute(snapshot_statement(pid)))


def gather(pid: int, found: Iterable[tuple[Any, ...]]) -> snapshots.Kept | None:
    """The project's rows from ``snapshot_statement``'s rows."""
    head: Any = None
    members: dict[int, tuple[str, str, int]] = {}
    ranks: dict[int, int] = {}
    bodies: dict[int, bytes] = {}
    for kind, a, b, x, y in found:
        if kind == 2:
            ranks[a] = b
            bodies[a] = x.encode()
        elif kind == 1:
            members[int(a)] = (x, y, int(b))
        else:
            head = (int(a), int(b), x)
    if head is None:
        return None
    version, next_id, name = head
    return snapshots.Kept(pid, version, name, next_id, members, ranks, bodies)


def assemble(pid: int, found: Iterable[tuple[Any, ...]]) -> tuple[int, bytes] | None:
    """The version and encoded snapshot from ``snapshot_statement``'s rows."""
    kept = gather(pid, found)
    return None if kept is None else (kept.version, kept.encoded())
