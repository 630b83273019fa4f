"""Admission limits, sans-I/O: per-IP rate buckets, the table of not-yet-clients,
and a packet budget.

Memory is bounded: at most ``max_addresses`` buckets are kept; when full, buckets
that have refilled completely (idle addresses) are dropped first, and if none
has, the table is cleared (briefly lenient rather than unbounded).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Generic, TypeVar


class IpRateLimiter:
    def __init__(self, rate: float, burst: int, *, max_addresses: int = 65_536) -> None:
        self.rate = rate
        self.burst = float(max(burst, 1))
        self.max_addresses = max_addresses
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, address: str, now: float) -> bool:
        """Take one token for a new connection from ``address``; False when rate-limited."""
        if self.rate <= 0:
            return True
        tokens, last = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens < 1.0:
            self._buckets[address] = (tokens, now)
            return False
        if address not in self._buckets and len(self._buckets) >= self.max_addresses:
            self._prune(now)
        self._buckets[address] = (tokens - 1.0, now)
        return True

    def retry_after(self, address: str, now: float) -> float:
        tokens, last = self._buckets.get(address, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        return 0.0 if tokens >= 1.0 or self.rate <= 0 else (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        full = self.burst / self.rate
        self._buckets = {a: b for a, b in self._buckets.items() if now - b[1] < full}
        if len(self._buckets) >= self.max_addresses:
            self._buckets.clear()


K = TypeVar("K", bound=Hashable)


class PendingTable(Generic[K]):
    """Things that are not clients yet (sockets before their handshake, Engine.IO
    sessions before their token), oldest first, counted per address.

    Sans-I/O: the owner decides what "settled" means and closes what this table
    names (the oldest, when the pool is full). Memory: one dict entry per key
    and one per address, both bounded by the owner's caps.
    """

    __slots__ = ("_by_peer", "_order")

    def __init__(self) -> None:
        #: key -> its address, in arrival order (dicts keep insertion order).
        self._order: dict[K, str] = {}
        self._by_peer: dict[str, dict[K, None]] = {}

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, key: object) -> bool:
        return key in self._order

    def add(self, key: K, peer: str) -> None:
        if key in self._order:
            return
        self._order[key] = peer
        self._by_peer.setdefault(peer, {})[key] = None

    def remove(self, key: K) -> bool:
        """Forget ``key`` (settled or closed); False if it was not pending."""
        peer = self._order.pop(key, None)
        if peer is None:
            return False
        keys = self._by_peer[peer]
        del keys[key]
        if not keys:
            del self._by_peer[peer]
        return True

    def count_for(self, peer: str) -> int:
        keys = self._by_peer.get(peer)
        return len(keys) if keys else 0

    def of_peer(self, peer: str) -> list[K]:
        """The address's pending keys, oldest first (a copy: callers remove)."""
        return list(self._by_peer.get(peer, ()))

    def oldest(self) -> list[K]:
        """Every pending key, oldest first (a copy: callers remove)."""
        return list(self._order)

    def __iter__(self) -> Iterator[K]:
        """Oldest first; do not add or remove while iterating."""
        return iter(self._order)
