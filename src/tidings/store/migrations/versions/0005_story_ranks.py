"""The board order as a rank per story instead of a chain of next-pointers: a
move then changes one row, not up to four (each a new index entry and, after a
checkpoint, a page logged whole; docs/PERFORMANCE.md, WAL per command).
Existing chains are read in order and ranked ``GAP`` apart, as a rebuild lays
a board out.

Revision ID: 0005
Revises: 0004
"""

import importlib

import sqlalchemy as sa
from alembic import op

from tidings.domain import rows

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_chain = importlib.import_module(
    "tidings.store.migrations.versions.0003_read_model_rows"
).chain_order

_stories = sa.table(
    "stories",
    sa.column("project_id"),
    sa.column("id"),
    sa.column("next_id"),
    sa.column("rank"),
)


def upgrade() -> None:
    conn = op.get_bind()
    op.add_column("stories", sa.Column("rank", sa.BigInteger, nullable=True))
    pids = conn.execute(sa.select(_stories.c.project_id).distinct()).scalars().all()
    set_rank = (
        sa.update(_stories)
        .where(
            sa.and_(
                _stories.c.project_id == sa.bindparam("pid"), _stories.c.id == sa.bindparam("sid")
            )
        )
        .values(rank=sa.bindparam("r"))
    )
    for pid in pids:
        links = {
            int(sid): None if nxt is None else int(nxt)
            for sid, nxt in conn.execute(
                sa.select(_stories.c.id, _stories.c.next_id).where(_stories.c.project_id == pid)
            )
        }
        order = _chain(links)
        conn.execute(
            set_rank, [{"pid": pid, "sid": sid, "r": n * rows.GAP} for n, sid in enumerate(order)]
        )
    op.drop_index("ix_stories_next", table_name="stories")
    with op.batch_alter_table("stories") as batch:
        batch.alter_column("rank", existing_type=sa.BigInteger, nullable=False)
        batch.drop_column("next_id")
    op.create_index("ix_stories_rank", "stories", ["project_id", "rank"])


def downgrade() -> None:
    conn = op.get_bind()
    op.drop_index("ix_stories_rank", table_name="stories")
    op.add_column("stories", sa.Column("next_id", sa.BigInteger, nullable=True))
    pids = conn.execute(sa.select(_stories.c.project_id).distinct()).scalars().all()
    set_next = (
        sa.update(_stories)
        .where(
            sa.and_(
                _stories.c.project_id == sa.bindparam("pid"), _stories.c.id == sa.bindparam("sid")
            )
        )
        .values(next_id=sa.bindparam("nxt"))
    )
    for pid in pids:
        order = (
            conn.execute(
                sa.select(_stories.c.id)
                .where(_stories.c.project_id == pid)
                .order_by(_stories.c.rank)
            )
            .scalars()
            .all()
        )
        conn.execute(
            set_next,
            [
                {"pid": pid, "sid": sid, "nxt": nxt}
                for sid, nxt in zip(order, [*order[1:], None], strict=True)
            ],
        )
    with op.batch_alter_table("stories") as batch:
        batch.drop_column("rank")
    op.create_index("ix_stories_next", "stories", ["project_id", "next_id"])
