"""Push servers on loopback for the transport tests (in-process broker; Redis ones are in
test_redis_integration.py). Every server is closed after its test."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest

from tidings.broker.memory import MemoryBroker
from tidings.push.server import PushServer
from tidings.push.settings import PushSettings
from tidings.testing.keys import KEYS, token

__all__ = ["FAST", "KEYS", "token"]

#: Fast clocks for tests: a 1 s heartbeat for the link, quick ticks.
FAST = PushSettings(tick_interval=0.05, link_deaf_after=1.5, recheck_delay=0.01)


#: Transport tests run on both loops: asyncio, and uvloop (what ``tidings push`` runs on;
#: its transports are not asyncio.Transport subclasses, which once broke the handshake).
BOTH_LOOPS = {"test_websocket", "test_sse", "test_server"}


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> Mapping[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Both loops for the transport tests, the default loop (same test ids) elsewhere."""
    if item.path.stem not in BOTH_LOOPS:
        return {"asyncio": asyncio.new_event_loop}
    import uvloop

    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


StartServer = Callable[..., Awaitable[tuple[PushServer, MemoryBroker]]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    servers: list[PushServer] = []

    async def start(**settings: Any) -> tuple[PushServer, MemoryBroker]:
        broker = MemoryBroker()
        server = PushServer(FAST.with_(**settings), broker.subscriber(), KEYS)
        servers.append(server)
        await server.start("127.0.0.1", 0)
        deadline = time.monotonic() + 5
        while server.hub.state.value != "ok":
            assert time.monotonic() < deadline, "server never became ready"
            await asyncio.sleep(0.02)
        return server, broker

    yield start
    for server in servers:
        await server.close()
