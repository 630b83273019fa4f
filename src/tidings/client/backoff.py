"""Delays: jittered poll intervals and exponential backoff with full jitter.

Pure arithmetic on a random draw passed in, so the JS twin
(static/js/tidings-client/sync-controller.js) gives bit-identical results for the same draws.
"""

from __future__ import annotations

#: Doubling stops here; past it the cap always wins (and 2**n stays a small float).
MAX_DOUBLINGS = 30


def jittered(interval: float, jitter: float, r: float) -> float:
    """``interval`` times a uniform factor in [1 - jitter, 1 + jitter] (``r`` in [0, 1))."""
    return interval * (1 - jitter + 2 * jitter * r)


def full_jitter(attempt: int, base: float, cap: float, floor: float, r: float) -> float:
    """Delay before retry ``attempt`` (1 for the first): uniform in [floor, ceiling],
    ceiling = min(cap, base*2^(n-1)) (just ``floor`` if the ceiling is below it).

    Full jitter spreads a herd of clients that failed together; ``floor`` keeps a
    draw near zero from turning into a tight loop. The floor shifts the range
    rather than clamping it: ``max(floor, r * ceiling)`` would send every draw
    below floor/ceiling to exactly ``floor`` (half of a crashed server's clients
    in the same instant on the first retry).
    """
    ceiling = min(cap, base * float(2 ** min(attempt - 1, MAX_DOUBLINGS)))
    return floor + r * max(0.0, ceiling - floor)
