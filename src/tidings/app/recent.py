"""Recent staleness samples, for windowed quantiles on the admin page.

The Prometheus histogram (metrics.py) is cumulative since the process started and its
quantiles are bucket bounds: after a few slow samples it reads "5000 ms" for the rest of
the session. This keeps the samples themselves for the last ``window`` seconds, so the
admin page shows exact quantiles of what clients reported lately, with how many there were.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

#: Samples kept at most (about 160 KB), whatever the report rate: past it the oldest go
#: first, and the window's count says how many the quantiles rest on.
MAX_SAMPLES = 4096
#: Seconds a sample counts toward the quantiles.
WINDOW_S = 60.0


def nearest_rank(ordered: list[float], q: float) -> float:
    """The nearest-rank quantile ``q`` (0..1) of a sorted, non-empty list."""
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank]


@dataclass
class RecentStaleness:
    window: float = WINDOW_S
    samples: deque[tuple[float, str, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_SAMPLES)
    )

    def observe(self, via: str, seconds: float, now: float) -> None:
        self.samples.append((now, via, seconds))

    def quantiles(self, now: float) -> dict[str, object]:
        """``{"window_s", "count", "p50", "p99", "by_via": {via: {count, p50, p99}}}`` over
        the samples of the last ``window`` seconds (seconds; null quantiles when none)."""
        while self.samples and self.samples[0][0] < now - self.window:
            self.samples.popleft()
        by_via: dict[str, list[float]] = {}
        for _, via, seconds in self.samples:
            by_via.setdefault(via, []).append(seconds)
        every = sorted(s for _, _, s in self.samples)

        def row(values: list[float]) -> dict[str, float | int | None]:
            values = sorted(values)
            if not values:
                return {"count": 0, "p50": None, "p99": None}
            return {
                "count": len(values),
                "p50": nearest_rank(values, 0.5),
                "p99": nearest_rank(values, 0.99),
            }

        return {
            "window_s": self.window,
            **row(every),
            "by_via": {via: row(values) for via, values in sorted(by_via.items())},
        }
