"""Per-IP connection rate limiting: a token bucket per address, sans-I/O.

Memory is bounded: at most ``max_addresses`` buckets are kept; when full, buckets
that have refilled completely (idle addresses) are dropped first, and if none
has, the table is cleared (briefly lenient rather than unbounded).
"""

from __future__ import annotations


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
