"""Tables of the event store and the app's own records (SQLAlchemy Core).

``events`` is the source of truth; ``projects.snapshot`` and ``memberships`` are
projections written in the same transaction as the event that changes them.
Migrations (store/migrations) create exactly these tables.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)

metadata = MetaData()

# SQLite only auto-increments an INTEGER PRIMARY KEY; BigInteger elsewhere.
Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(254), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("password_hash", String(200), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("created_at", Double, nullable=False),
)

# Browser sessions and API tokens: only a SHA-256 of the secret is stored.
credentials = Table(
    "credentials",
    metadata,
    Column("secret_hash", LargeBinary(32), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # "session" | "api"
    Column("name", String(200), nullable=False, default=""),
    Column("created_at", Double, nullable=False),
    Column("expires_at", Double, nullable=True),
    Index("ix_credentials_user", "user_id"),
)

projects = Table(
    "projects",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False, default=""),
    Column("version", BigInteger, nullable=False),
    # Events at or below this version were pruned; polls from before it must reload.
    Column("pruned_through", BigInteger, nullable=False, default=0),
    Column("snapshot", Text, nullable=False),
    Column("created_at", Double, nullable=False),
    # The commit time (``ts``) of the current version; NULL until the first change
    # after migration 0002. Indexed with ``id`` so the app's sweeper (app/sweeper.py)
    # walks recently changed projects in order without reading the rest.
    Column("updated_at", Double, nullable=True),
    Index("ix_projects_updated_at", "updated_at", "id"),
)

memberships = Table(
    "memberships",
    metadata,
    Column("project_id", Id, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False),
    Index("ix_memberships_user", "user_id"),
)

events = Table(
    "events",
    metadata,
    Column("project_id", Id, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("version", BigInteger, primary_key=True),
    # The whole event as sent to clients, encoded once at write time.
    Column("body", Text, nullable=False),
)

# Idempotency: a retried command (same user, same key) returns the stored result.
command_results = Table(
    "command_results",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("idempotency_key", String(200), primary_key=True),
    Column("request_hash", LargeBinary(32), nullable=False),
    Column("project_id", Id, nullable=False),
    Column("response", Text, nullable=False),
    Column("created_at", Double, nullable=False),
)

flags = Table(
    "flags",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", Double, nullable=False),
)
