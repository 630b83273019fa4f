"""Sign-in throttling: failed attempts per email and per client address.

A fixed number of failures per window; past it, 429 with Retry-After until the
oldest failure leaves the window. Bounded: at most ``max_keys`` keys are
tracked (oldest dropped), so a flood of made-up emails cannot grow memory.
"""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable

from starlette.requests import Request

from tidings.protocol.errors import RateLimited


class LoginLimiter:
    def __init__(
        self,
        *,
        per_email: int = 10,
        per_address: int = 50,
        window: float = 300.0,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limits = {"email": per_email, "addr": per_address}
        self._window = window
        self._max_keys = max_keys
        self._clock = clock
        self._failures: OrderedDict[tuple[str, str], deque[float]] = OrderedDict()

    def _keys(self, request: Request, email: str) -> list[tuple[str, str]]:
        address = request.client.host if request.client else "unknown"
        return [("email", email.strip().lower()), ("addr", address)]

    async def check(self, request: Request, email: str) -> None:
        now = self._clock()
        for key in self._keys(request, email):
            times = self._failures.get(key)
            if times is None:
                continue
            while times and now - times[0] >= self._window:
                times.popleft()
            if len(times) >= self._limits[key[0]]:
                retry = max(1, int(self._window - (now - times[0])) + 1)
                raise RateLimited("too many failed sign-ins; try again later", retry_after=retry)

    def failed(self, request: Request, email: str) -> None:
        now = self._clock()
        for key in self._keys(request, email):
            times = self._failures.setdefault(key, deque(maxlen=self._limits[key[0]]))
            times.append(now)
            self._failures.move_to_end(key)
        while len(self._failures) > self._max_keys:
            self._failures.popitem(last=False)
