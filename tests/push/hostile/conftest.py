"""Fixtures of the hostile-client suite: real push processes on real Redis (see harness.py)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests.support import unavailable
from tidings.broker.redis_publisher import RedisPublisher
from tidings.testing.hostile import (
    PushProcess,
    StartPush,
    private_redis,
    push_process,
    push_processes,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test here runs Redis and reads /proc."""
    here = Path(__file__).parent
    linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.redis)
            item.add_marker(linux)


@pytest.fixture(scope="session")
def hostile_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The suite's own Redis server (see harness.private_redis for why)."""
    if shutil.which("redis-server") is None:
        unavailable("redis-server is not installed", " (.ci/run installs it)")
    with private_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def module_push(
    request: pytest.FixtureRequest, hostile_redis: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """One push server for a test module (a server takes seconds to start on a busy
    machine, and every attack ends with its connections closed), with the
    default settings plus the module's ``PUSH_ENV`` (``TIDINGS_*`` variables)."""
    env: dict[str, str] = getattr(request.module, "PUSH_ENV", {})
    with push_process(hostile_redis, tmp_path_factory.mktemp("push"), **env) as running:
        yield running


@pytest.fixture
async def push(
    hostile_redis: str, module_push: tuple[subprocess.Popen[bytes], int, Path]
) -> AsyncIterator[PushProcess]:
    """The module's push server, with a publisher of this test's."""
    proc, port, log = module_push
    assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
    publisher = RedisPublisher.from_url(hostile_redis)
    try:
        yield PushProcess(proc, port, publisher, log)
    finally:
        await publisher.close()


@pytest.fixture
async def start_push(hostile_redis: str, tmp_path: Path) -> AsyncIterator[StartPush]:
    """``await start_push(TIDINGS_PUSH_X="1", ...)``: a push server of the test's own,
    with other settings, stopped after the test."""
    async with push_processes(hostile_redis, tmp_path) as start:
        yield start
