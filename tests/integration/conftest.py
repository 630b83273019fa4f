"""Fixtures: one real stack (app, two push servers, PostgreSQL, Redis) for this folder.

Started once for the package (processes are slow to start on a 2-core machine);
every test starts from the same state (all push servers up, push switched on)
and works on projects of its own. A missing Redis or PostgreSQL skips locally
and fails in CI, as everywhere in this suite.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import POSTGRES_URL, REDIS_URL, free_port, require_service
from tidings.testing.stack import Stack, start_stack, stop_stack


@pytest.fixture(scope="package")
def live_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    require_service("Redis", "127.0.0.1", 6379)
    require_service("PostgreSQL", "127.0.0.1", 5432)
    stack = start_stack(
        postgres_admin_url=POSTGRES_URL,
        redis_url=REDIS_URL,
        workdir=tmp_path_factory.mktemp("stack"),
        free_port=free_port,
    )
    try:
        yield stack
    finally:
        stop_stack(stack, POSTGRES_URL)


@pytest.fixture
async def stack(live_stack: Stack) -> Stack:
    await live_stack.reset()
    return live_stack
