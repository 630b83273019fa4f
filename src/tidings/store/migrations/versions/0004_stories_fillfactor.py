"""Story pages keep 30% free on PostgreSQL, so that updating a story's document
can stay on its page (a HOT update: no new index entries, fewer pages logged
whole after a checkpoint; docs/PERFORMANCE.md, WAL per command). Pages written
before take it as they are rewritten (``VACUUM FULL stories`` to do it at once).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: Percent of a story page filled by inserts (PostgreSQL's default is 100).
FILLFACTOR = 70


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE stories SET (fillfactor = {FILLFACTOR})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE stories RESET (fillfactor)")
