"""Bring a database to the current schema with Alembic (the app and CLI call this)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config

from tidings.store.engine import Engines

MIGRATIONS = Path(__file__).with_name("migrations")


def _config(connection: Any) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engines: Engines, revision: str = "head") -> None:
    async with engines.writer.connect() as conn:
        await conn.run_sync(lambda sync: command.upgrade(_config(sync), revision))
        await conn.commit()
