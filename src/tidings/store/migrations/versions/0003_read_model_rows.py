"""The read model as rows: stories (one document each, chained in board order),
members' names and order, the project head (next id, story count) and the base
a rebuild starts from; existing projects are rebuilt from their events.

Revision ID: 0003
Revises: 0002
"""

import orjson
import sqlalchemy as sa
from alembic import op

from tidings.domain import project as domain
from tidings.domain import rows
from tidings.store import snapshots

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.add_column(
        "projects", sa.Column("base_version", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "projects", sa.Column("next_id", sa.BigInteger, nullable=False, server_default="1")
    )
    op.add_column(
        "projects", sa.Column("story_count", sa.BigInteger, nullable=False, server_default="0")
    )
    op.add_column(
        "memberships", sa.Column("name", sa.String(200), nullable=False, server_default="")
    )
    op.add_column(
        "memberships", sa.Column("seq", sa.BigInteger, nullable=False, server_default="0")
    )
    op.create_table(
        "stories",
        sa.Column(
            "project_id", Id, sa.ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True
        ),
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("next_id", sa.BigInteger, nullable=True),
        sa.Column("owner_id", sa.BigInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
    )
    op.create_index("ix_stories_next", "stories", ["project_id", "next_id"])
    op.create_index("ix_stories_owner", "stories", ["project_id", "owner_id"])
    _rebuild_all(op.get_bind())


def _rebuild_all(conn: sa.Connection) -> None:
    """Lay every project out as rows. A project with its whole history replays it
    (the same rule as ``tidings db rebuild``); one whose old events were pruned
    starts from its stored snapshot, which becomes the base of later rebuilds."""
    projects = sa.table(
        "projects",
        sa.column("id"),
        sa.column("version"),
        sa.column("pruned_through"),
        sa.column("snapshot"),
        sa.column("base_version"),
    )
    events = sa.table("events", sa.column("project_id"), sa.column("version"), sa.column("body"))
    found = conn.execute(
        sa.select(projects.c.id, projects.c.version, projects.c.pruned_through)
    ).all()
    for pid, version, pruned in found:
        if pruned:
            snapshot = conn.execute(
                sa.select(projects.c.snapshot).where(projects.c.id == pid)
            ).scalar_one()
            state = orjson.loads(snapshot)
            base: dict[str, object] = {"base_version": version}
        else:
            bodies = conn.execute(
                sa.select(events.c.body)
                .where(events.c.project_id == pid)
                .order_by(events.c.version)
            ).scalars()
            state = domain.replay(pid, [orjson.loads(b) for b in bodies])
            base = {"base_version": 0, "snapshot": "{}"}
        if state["version"] != version:
            raise RuntimeError(f"project {pid}: rebuilt at {state['version']}, not {version}")
        conn.execute(sa.update(projects).where(projects.c.id == pid).values(base))
        _lay_out(conn, pid, rows.rows_of(state))


# This revision's own tables: later revisions change the stories' layout (0005
# orders them by rank instead of a chain of next-pointers).
_projects = sa.table(
    "projects", sa.column("id"), sa.column("name"), sa.column("next_id"), sa.column("story_count")
)
_stories = sa.table(
    "stories",
    sa.column("project_id"),
    sa.column("id"),
    sa.column("next_id"),
    sa.column("owner_id"),
    sa.column("body"),
)
_members = sa.table(
    "memberships",
    sa.column("project_id"),
    sa.column("user_id"),
    sa.column("role"),
    sa.column("name"),
    sa.column("seq"),
)


def _lay_out(conn: sa.Connection, pid: int, laid: rows.ProjectRows) -> None:
    """The rows of a project in this revision's layout: stories chained in board
    order by ``next_id`` (NULL: the last)."""
    conn.execute(sa.delete(_members).where(_members.c.project_id == pid))
    conn.execute(
        sa.update(_projects)
        .where(_projects.c.id == pid)
        .values(name=laid.name, next_id=laid.next_id, story_count=len(laid.stories))
    )
    ids = [sid for sid, _, _, _ in laid.stories]
    if ids:
        conn.execute(
            sa.insert(_stories),
            [
                {
                    "project_id": pid,
                    "id": sid,
                    "next_id": nxt,
                    "owner_id": owner,
                    "body": orjson.dumps(story).decode(),
                }
                for (sid, _, owner, story), nxt in zip(laid.stories, [*ids[1:], None], strict=True)
            ],
        )
    if laid.members:
        conn.execute(
            sa.insert(_members),
            [
                {"project_id": pid, "user_id": uid, "role": role, "name": name, "seq": seq}
                for uid, role, name, seq in laid.members
            ],
        )


def chain_order(links: dict[int, int | None]) -> list[int]:
    """Story ids in board order from their next-pointers (this layout's order)."""
    pointed = set(links.values())
    order: list[int] = []
    sid = next((s for s in links if s not in pointed), None)
    while sid is not None and len(order) < len(links):
        order.append(sid)
        sid = links[sid]
    if len(order) != len(links):
        raise RuntimeError("a project's board chain is broken")
    return order


def downgrade() -> None:
    # The snapshot column holds only the base from 0003 on: rebuild it whole.
    conn = op.get_bind()
    projects = sa.table(
        "projects",
        sa.column("id"),
        sa.column("snapshot"),
        sa.column("version"),
        sa.column("name"),
        sa.column("next_id"),
    )
    heads = conn.execute(
        sa.select(projects.c.id, projects.c.version, projects.c.name, projects.c.next_id)
    ).all()
    for pid, version, name, next_id in heads:
        members = {
            int(uid): (role, mname, int(seq))
            for uid, role, mname, seq in conn.execute(
                sa.select(
                    _members.c.user_id, _members.c.role, _members.c.name, _members.c.seq
                ).where(_members.c.project_id == pid)
            )
        }
        links: dict[int, int | None] = {}
        bodies: dict[int, bytes] = {}
        for sid, nxt, body in conn.execute(
            sa.select(_stories.c.id, _stories.c.next_id, _stories.c.body).where(
                _stories.c.project_id == pid
            )
        ):
            links[int(sid)] = None if nxt is None else int(nxt)
            bodies[int(sid)] = body.encode()
        encoded = snapshots.encode(
            pid, int(version), int(next_id), name, members, chain_order(links), bodies
        )
        conn.execute(
            sa.update(projects).where(projects.c.id == pid).values(snapshot=encoded.decode())
        )
    op.drop_index("ix_stories_owner", table_name="stories")
    op.drop_index("ix_stories_next", table_name="stories")
    op.drop_table("stories")
    op.drop_column("memberships", "seq")
    op.drop_column("memberships", "name")
    op.drop_column("projects", "story_count")
    op.drop_column("projects", "next_id")
    op.drop_column("projects", "base_version")
