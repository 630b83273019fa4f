"""The simulated clock: a priority queue of callbacks ordered by (time, insertion order).

Ties run in the order they were scheduled, so a run is a pure function of its
seed. Time is epoch seconds (the controllers' staleness is ``now - ts``).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

#: The simulated epoch: every run starts here (any value works; a realistic one
#: keeps the push tokens' ``iat``/``exp`` claims sensible).
EPOCH = 1_800_000_000.0

Callback = Callable[[Any], None]


class EventQueue:
    """Callbacks due at simulated times; ``run_until`` advances ``now`` through them."""

    def __init__(self, start: float = EPOCH) -> None:
        self.now = start
        self._heap: list[tuple[float, int, Callback, Any]] = []
        self._seq = itertools.count()
        self.processed = 0

    def at(self, when: float, fn: Callback, arg: Any = None) -> None:
        """Run ``fn(arg)`` at ``when`` (never before ``now``: the past is clamped to now)."""
        heapq.heappush(self._heap, (max(when, self.now), next(self._seq), fn, arg))

    def after(self, delay: float, fn: Callback, arg: Any = None) -> None:
        self.at(self.now + delay, fn, arg)

    def __len__(self) -> int:
        return len(self._heap)

    def next_time(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def run_until(self, end: float) -> None:
        """Run every callback due at or before ``end``, then set ``now`` to ``end``."""
        heap = self._heap
        pop = heapq.heappop
        while heap and heap[0][0] <= end:
            when, _, fn, arg = pop(heap)
            self.now = when
            fn(arg)
            self.processed += 1
        self.now = max(self.now, end)
