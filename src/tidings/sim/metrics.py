"""What a run counts: per-second series, totals in the measured window, staleness samples.

Counts are weighted: in sampled mode each real client stands for ``weight``
clients, so every count it causes is added ``weight`` times. Memory is bounded
by one float per series per simulated second, plus one int per applied event
(``max_samples``: past it, samples are kept by reservoir sampling).
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Iterable


class Recorder:
    def __init__(
        self,
        start: float,
        measure_from: float,
        measure_to: float,
        rng: random.Random,
        *,
        max_samples: int = 2_000_000,
    ) -> None:
        self.start = start
        self.measure_from = measure_from
        self.measure_to = measure_to
        self.series: dict[str, list[float]] = defaultdict(list)
        self.totals: dict[str, float] = defaultdict(float)
        #: Staleness (ms) of events committed inside the measured window, by path.
        self.staleness: dict[str, list[int]] = defaultdict(list)
        #: Publish-to-receipt delay of every poke a client received (ms).
        self.deliveries: list[int] = []
        self._seen: dict[str, int] = defaultdict(int)
        self._max_samples = max_samples
        self._rng = rng

    def count(self, name: str, now: float, amount: float = 1.0) -> None:
        """Add ``amount`` to series ``name`` in the second containing ``now``."""
        i = int(now - self.start)
        s = self.series[name]
        if i >= len(s):
            s.extend([0.0] * (i + 1 - len(s)))
        s[i] += amount
        if self.measure_from <= now < self.measure_to:
            self.totals[name] += amount

    def gauge(self, name: str, now: float, value: float) -> None:
        """Set series ``name`` at the second containing ``now`` (last value wins)."""
        i = int(now - self.start)
        s = self.series[name]
        if i >= len(s):
            s.extend([math.nan] * (i + 1 - len(s)))
        s[i] = value

    def sample(self, path: str, committed: float, ms: int) -> None:
        """One applied event; only events committed in the measured window count."""
        if self.measure_from <= committed < self.measure_to:
            self._keep(self.staleness[path], path, ms)

    def delivery(self, committed: float, ms: int) -> None:
        """One poke reaching a client (publish to receipt), committed in the window."""
        if self.measure_from <= committed < self.measure_to:
            self._keep(self.deliveries, "\0delivery", ms)

    def _keep(self, kept: list[int], key: str, ms: int) -> None:
        self._seen[key] += 1
        if len(kept) < self._max_samples:
            kept.append(ms)
        else:
            j = self._rng.randrange(self._seen[key])
            if j < self._max_samples:
                kept[j] = ms

    @property
    def window(self) -> float:
        return self.measure_to - self.measure_from

    def rate(self, name: str) -> float:
        """Per second, over the measured window."""
        return self.totals.get(name, 0.0) / self.window if self.window > 0 else 0.0

    def all_staleness(self) -> list[int]:
        out: list[int] = []
        for kept in self.staleness.values():
            out.extend(kept)
        return out


def percentile(values: Iterable[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None when empty."""
    data = sorted(values)
    if not data:
        return None
    k = (len(data) - 1) * q / 100
    lo, hi = math.floor(k), math.ceil(k)
    return float(data[lo] + (data[hi] - data[lo]) * (k - lo))
