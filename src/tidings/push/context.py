"""What every transport gets from its push server: settings, hub, clocks, admission and origins.

One object per server, built at start-up and handed to each connection (no
globals), so several servers can share a process (tests, ``tidings demo``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from tidings.protocol.errors import RateLimited, TidingsError, Unavailable
from tidings.push.hub import Hub
from tidings.push.limits import IpRateLimiter
from tidings.push.metrics import Counters
from tidings.push.settings import PushSettings

if TYPE_CHECKING:
    from tidings.push.http import HttpConnection, Request


class PushContext:
    def __init__(
        self,
        settings: PushSettings,
        hub: Hub,
        loop: asyncio.AbstractEventLoop,
        counters: Counters,
        router: Callable[[Request, HttpConnection], None],
    ) -> None:
        self.settings = settings
        self.hub = hub
        self.loop = loop
        self.counters = counters
        self.router = router
        self.limiter = IpRateLimiter(settings.ip_rate, settings.ip_burst)
        self._origins = frozenset(settings.allowed_origins)
        #: Open sockets, handshakes included (bounded by ``max_connections``).
        self.sockets = 0
        #: Connections still speaking HTTP (closed by force on shutdown).
        self.http_conns: set[HttpConnection] = set()
        self.accepting = True

    def now(self) -> float:
        """Monotonic seconds: every interval, deadline and timeout."""
        return self.loop.time()

    @staticmethod
    def wall() -> float:
        """Seconds since the epoch: only to check token times."""
        return time.time()

    def admit(self, peer: str) -> TidingsError | None:
        """Count a new socket; say why it must be refused (answered once its request is read)."""
        self.sockets += 1
        settings = self.settings
        if not self.accepting:
            return Unavailable("server is draining", retry_after=settings.sse_retry)
        if self.sockets > settings.max_connections:
            return Unavailable("server is full", retry_after=settings.sse_retry)
        now = self.now()
        if not self.limiter.allow(peer, now):
            wait = max(1, round(self.limiter.retry_after(peer, now) + 0.5))
            return RateLimited("too many new connections from this address", retry_after=wait)
        return None

    def socket_closed(self) -> None:
        """Every protocol that owns a socket at its end calls this exactly once."""
        self.sockets -= 1

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers always send ``Origin``; programs need not (and could forge it)."""
        return origin is None or not self._origins or origin.rstrip("/") in self._origins

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None:
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
