"""The store tests run on SQLite with commands on the stdlib sqlite3 module
(store/sqlitewrites.py) and on SQLAlchemy's writer, and on PostgreSQL."""

from __future__ import annotations

import pytest


@pytest.fixture(params=["sqlite", "sqlite-core", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: object) -> str:
    if request.param.startswith("sqlite"):
        return f"sqlite:///{tmp_path}/tidings.sqlite3"
    url: str = request.getfixturevalue("postgres_url")
    return url


@pytest.fixture
def sqlite_commands(request: pytest.FixtureRequest) -> bool:
    """False where SQLite's commands run on SQLAlchemy's writer (``sqlite-core``)."""
    return bool(request.node.callspec.params.get("db_url") != "sqlite-core")
