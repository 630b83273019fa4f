"""The push fleet as the app sees it: each push server's latest figures, heard on
the control channel (the app never knows the servers' addresses). Feeds the
admin page; nothing else depends on it, and a silent server just ages out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from tidings.broker.base import Subscriber
from tidings.protocol.channels import STATS_CHANNEL
from tidings.protocol.control import parse_push_stats

#: A server not heard from for this long is no longer listed (seconds).
EXPIRE_AFTER = 20.0

#: Servers tracked at most (a bound against a flood of made-up ids).
MAX_SERVERS = 1000


class PushFleet:
    def __init__(
        self, subscriber: Subscriber, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._subscriber = subscriber
        self._clock = clock
        self._servers: dict[str, tuple[float, dict[str, Any]]] = {}
        self.link_up = False

    def start(self) -> None:
        self._subscriber.start(self._on_message, self._on_link)
        self._subscriber.subscribe(STATS_CHANNEL)

    async def close(self) -> None:
        await self._subscriber.close()

    def _on_link(self, up: bool) -> None:
        self.link_up = up

    def _on_message(self, _channel: str, data: bytes) -> None:
        stats = parse_push_stats(data)
        if stats is None:
            return
        server = stats["server"]
        if server not in self._servers and len(self._servers) >= MAX_SERVERS:
            self._expire()
            if len(self._servers) >= MAX_SERVERS:
                return
        self._servers[server] = (self._clock(), stats)

    def _expire(self) -> None:
        now = self._clock()
        for server in [s for s, (heard, _) in self._servers.items() if now - heard > EXPIRE_AFTER]:
            del self._servers[server]

    def servers(self) -> list[dict[str, Any]]:
        self._expire()
        now = self._clock()
        return [
            {
                "id": server,
                "age": round(now - heard, 3),
                **{k: v for k, v in stats.items() if k not in ("type", "server")},
            }
            for server, (heard, stats) in sorted(self._servers.items())
        ]
