"""projects.updated_at (the current version's commit time) and its index, for the sweeper.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable and without a default: instant on PostgreSQL and SQLite whatever the
    # table's size. Rows stay NULL until their project's next change, which is all
    # the sweeper needs (it looks only at recent changes).
    op.add_column("projects", sa.Column("updated_at", sa.Double, nullable=True))
    op.create_index("ix_projects_updated_at", "projects", ["updated_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_projects_updated_at", table_name="projects")
    op.drop_column("projects", "updated_at")
