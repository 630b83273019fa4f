"""Tables of the event store and the app's own records (SQLAlchemy Core).

``events`` is the source of truth; the read model (the project row's head
fields, ``stories`` and ``memberships``) is kept row by row in the same
transaction as the event that changes it, and ``tidings db rebuild`` rebuilds
it from the log. Migrations (store/migrations) create exactly these tables.
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
    # The whole state at ``base_version``, where a rebuild starts replaying events:
    # "{}" at 0 (the empty project); written when events are pruned.
    Column("snapshot", Text, nullable=False),
    Column("base_version", BigInteger, nullable=False, server_default="0"),
    # The head of the read model: the next id to hand out and the story count
    # (the bound's check), so a command reads neither the stories nor the events.
    Column("next_id", BigInteger, nullable=False, server_default="1"),
    Column("story_count", BigInteger, nullable=False, server_default="0"),
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
    # The member as the snapshot lists it: name, and ``seq`` for the list's order.
    Column("name", String(200), nullable=False, server_default=""),
    Column("seq", BigInteger, nullable=False, server_default="0"),
    Index("ix_memberships_user", "user_id"),
)

# One document per story (the story as the snapshot shows it, its comments and
# tasks included), in board order by ``rank`` (ascending; domain/rows.py's
# Board: a move changes only the moved story's rank). ``owner_id`` repeats the
# document's field so removing a member finds their stories by index.
stories = Table(
    "stories",
    metadata,
    Column("project_id", Id, ForeignKey("projects.id", ondelete="CASCADE"), primary_key=True),
    Column("id", BigInteger, primary_key=True, autoincrement=False),
    Column("rank", BigInteger, nullable=False),
    Column("owner_id", BigInteger, nullable=True),
    Column("body", Text, nullable=False),
    Index("ix_stories_rank", "project_id", "rank"),
    Index("ix_stories_owner", "project_id", "owner_id"),
    # Room on each page for a story's new version (migration 0004).
    postgresql_with={"fillfactor": 70},
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
