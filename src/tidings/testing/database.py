"""A fresh PostgreSQL database per run, and project ids that no other run shares.

Runs share one Redis, whose channels and version keys are named by project id.
"""

from __future__ import annotations

import random
import uuid

import asyncpg
from sqlalchemy import text

from tidings.store.engine import Engines, create_engines


async def create_database(admin_url: str, prefix: str = "tidings_it") -> str:
    """Create an empty database next to ``admin_url``'s; its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return f"{admin_url.rsplit('/', 1)[0]}/{name}"


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url`` (made by :func:`create_database`), its sessions too."""
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await conn.close()


async def offset_project_ids(engines: Engines) -> None:
    """Start project ids at a random point, so that ids do not collide across runs
    sharing one Redis. Nothing is done once a project exists."""
    start = random.randrange(10**6, 10**12)
    async with engines.writer.begin() as conn:
        if (await conn.execute(text("SELECT count(*) FROM projects"))).scalar_one():
            return
        if engines.is_sqlite:
            # A placeholder row: SQLite hands out max(id) + 1 next.
            await conn.execute(
                text(
                    "INSERT INTO projects (id, name, version, pruned_through, snapshot, created_at)"
                    " VALUES (:id, '', 0, 0, '{}', 0)"
                ),
                {"id": start},
            )
        else:
            await conn.execute(
                text("SELECT setval(pg_get_serial_sequence('projects', 'id'), :id)"),
                {"id": start},
            )


async def offset_database_project_ids(database_url: str) -> None:
    """:func:`offset_project_ids` on the (migrated) database at ``database_url``."""
    engines = create_engines(database_url)
    try:
        await offset_project_ids(engines)
    finally:
        await engines.dispose()
