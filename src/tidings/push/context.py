"""What every transport gets from its push server: settings, hub, clocks, admission and origins.

One object per server, built at start-up and handed to each connection (no
globals), so several servers can share a process (tests, ``tidings demo``).

Admission has two pools. A socket is *pending* from its arrival until it is a
client (a ``/ws`` or SSE connection with a verified token, or a socket that
carries an authenticated Socket.IO session); pending sockets are bounded by
``max_pending`` in all and ``max_pending_per_ip`` per address, so silent or
slow sockets cannot crowd out real clients. Clients are bounded by
``max_connections``. See :class:`~tidings.push.settings.PushSettings`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Final

from tidings.protocol.errors import RateLimited, TidingsError, Unavailable
from tidings.push.hub import Conn, Hub
from tidings.push.limits import IpRateLimiter, PendingTable
from tidings.push.metrics import Counters
from tidings.push.settings import PushSettings

if TYPE_CHECKING:
    from tidings.push.http import HttpConnection, Request


#: Seconds between sweeps of the pending table (closed or settled sockets are
#: dropped from it; a sweep is also made whenever a limit is about to refuse).
SWEEP_INTERVAL: Final = 1.0

#: A pending table this small is swept on every admission near full (~10 us).
SMALL_SWEEP: Final = 256


class HttpConns:
    """The sockets still speaking HTTP (``ctx.http_conns``), closed by force on shutdown.

    http.py adds each socket as it arrives (``connection_made``, just before
    ``ctx.admit``) and discards it when it closes or hands the socket over
    (WebSocket, SSE); the context hears both, so the pending table follows
    every socket without the HTTP layer knowing about it.
    """

    __slots__ = ("_conns", "_ctx")

    def __init__(self, ctx: PushContext) -> None:
        self._ctx = ctx
        self._conns: dict[HttpConnection, None] = {}

    def add(self, conn: HttpConnection) -> None:
        self._conns[conn] = None
        self._ctx._arrived(conn)

    def discard(self, conn: HttpConnection) -> None:
        if self._conns.pop(conn, 0) is None:
            self._ctx._left_http(conn)

    def __contains__(self, conn: object) -> bool:
        return conn in self._conns

    def __iter__(self) -> Iterator[HttpConnection]:
        return iter(self._conns)

    def __len__(self) -> int:
        return len(self._conns)


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
        #: Open sockets, pending ones included (clients + pending: at most
        #: ``max_connections + max_pending``).
        self.sockets = 0
        #: Connections still speaking HTTP (closed by force on shutdown).
        self.http_conns = HttpConns(self)
        #: Sockets that are not clients yet, by transport (which outlives the
        #: hand-over from HTTP to WebSocket or SSE), oldest first.
        self.pending: PendingTable[asyncio.BaseTransport] = PendingTable()
        self.accepting = True
        self._arriving: HttpConnection | None = None
        self._sweep_timer: asyncio.TimerHandle | None = None
        self._swept_at = -SWEEP_INTERVAL

    def now(self) -> float:
        """Monotonic seconds: every interval, deadline and timeout."""
        return self.loop.time()

    @staticmethod
    def wall() -> float:
        """Seconds since the epoch: only to check token times."""
        return time.time()

    def admit(self, peer: str) -> TidingsError | None:
        """Count a new socket; say why it must be refused (answered once its request is read).

        A socket past the per-address pending cap is refused and closed here and
        now (it would otherwise hold its slot until the handshake timeout); when
        the pending pool is full, its oldest member is closed to make room, so
        sockets that stay silent cannot hold the pool.
        """
        self.sockets += 1
        settings = self.settings
        conn, self._arriving = self._arriving, None
        if not self.accepting:
            return Unavailable("server is draining", retry_after=settings.sse_retry)
        if conn is not None and not self._admit_pending(conn, peer):
            return RateLimited("too many pending connections from this address", retry_after=1)
        if self._full():
            return Unavailable("server is full", retry_after=settings.sse_retry)
        now = self.now()
        if not self.limiter.allow(peer, now):
            wait = max(1, round(self.limiter.retry_after(peer, now) + 0.5))
            return RateLimited("too many new connections from this address", retry_after=wait)
        return None

    def socket_closed(self) -> None:
        """Every protocol that owns a socket at its end calls this exactly once."""
        self.sockets -= 1

    def settle(self, transport: asyncio.BaseTransport | None) -> None:
        """The socket carries a client now (a transport that authenticates late says so)."""
        if transport is not None:
            self.pending.remove(transport)

    # -- the pending pool ---------------------------------------------------------

    def _arrived(self, conn: HttpConnection) -> None:
        if conn.transport is None:
            return
        self.pending.add(conn.transport, conn.peer)
        self._arriving = conn
        if self._sweep_timer is None:
            self._sweep_timer = self.loop.call_later(SWEEP_INTERVAL, self._sweep_tick)

    def _left_http(self, conn: HttpConnection) -> None:
        transport = conn.transport
        if transport is not None and transport.is_closing():
            self.pending.remove(transport)
        # Otherwise handed over: it stays pending until its token is verified.

    def _admit_pending(self, conn: HttpConnection, peer: str) -> bool:
        """Apply the pending caps to a socket that just arrived; False: it was refused."""
        settings, pending = self.settings, self.pending
        cap = settings.max_pending_per_ip if settings.ip_rate > 0 else 0
        if cap and pending.count_for(peer) > cap:
            self._sweep(pending.of_peer(peer))
            if pending.count_for(peer) > cap:
                pending.remove(conn.transport)  # type: ignore[arg-type]
                self.counters.pending_refused += 1
                conn.refuse(
                    RateLimited("too many pending connections from this address", retry_after=1)
                )
                return False
        if len(pending) > settings.max_pending:
            self._sweep_oldest()
        return True

    def _full(self) -> bool:
        """No room for one more client; pending sockets do not count. The table
        may still hold sockets that closed or became clients since the last
        sweep (counting them as pending errs towards admitting), so it is swept
        first: always while it is small, at most every ``SWEEP_INTERVAL / 20``
        once it is large (a sweep reads every entry)."""
        settings = self.settings
        if self.sockets <= settings.max_connections:
            return False
        if self.sockets > settings.max_connections + settings.max_pending:
            return True
        now = self.now()
        if len(self.pending) <= SMALL_SWEEP or now - self._swept_at >= SWEEP_INTERVAL / 20:
            self._swept_at = now
            self._sweep(self.pending.oldest())
        return self.sockets - len(self.pending) >= settings.max_connections

    def _sweep_oldest(self) -> None:
        """Drop stale entries from the front; close the oldest socket still pending."""
        pending = self.pending
        stale: list[asyncio.BaseTransport] = []
        victim: asyncio.BaseTransport | None = None
        for transport in pending:
            if self._stale(transport):
                stale.append(transport)
            else:
                victim = transport
                break
        for transport in stale:
            pending.remove(transport)
        if len(pending) > self.settings.max_pending and victim is not None:
            pending.remove(victim)
            self.counters.pending_evicted += 1
            victim.abort()  # type: ignore[attr-defined]

    def _sweep(self, transports: list[asyncio.BaseTransport]) -> None:
        for transport in transports:
            if self._stale(transport):
                self.pending.remove(transport)

    @staticmethod
    def _stale(transport: asyncio.BaseTransport) -> bool:
        """Closed, or its protocol is a client with a verified token (/ws, SSE)."""
        if transport.is_closing():
            return True
        protocol = transport.get_protocol()
        return isinstance(protocol, Conn) and protocol.user is not None

    def _sweep_tick(self) -> None:
        self._sweep_timer = None
        self._sweep(self.pending.oldest())
        if len(self.pending):
            self._sweep_timer = self.loop.call_later(SWEEP_INTERVAL, self._sweep_tick)

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers always send ``Origin``; programs need not (and could forge it)."""
        return origin is None or not self._origins or origin.rstrip("/") in self._origins

    def cors_headers(self, origin: str | None) -> list[tuple[str, str]]:
        if origin is None:
            return []
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
