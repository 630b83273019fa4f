"""The admin page's staleness: exact quantiles of the last minute's samples, with their
count, not bucket bounds accumulated since the start."""

from __future__ import annotations

from tidings.app.recent import MAX_SAMPLES, RecentStaleness


def test_quantiles_cover_only_the_window_and_say_how_many_samples() -> None:
    recent = RecentStaleness(window=60.0)
    for _ in range(4):
        recent.observe("poll", 5.0, now=0.0)  # an old slow spell
    pokes = [0.040 + i / 10_000 for i in range(100)]
    for value in pokes:
        recent.observe("poke", value, now=100.0)
    recent.observe("poll", 3.0, now=100.0)
    q = recent.quantiles(now=130.0)
    assert q["count"] == 101
    # Nearest rank over the 101 samples of the window: the 51st and the 100th.
    assert q["p50"] == pokes[50] and q["p99"] == pokes[99]
    assert q["by_via"] == {
        "poke": {"count": 100, "p50": pokes[49], "p99": pokes[99]},
        "poll": {"count": 1, "p50": 3.0, "p99": 3.0},
    }
    empty = recent.quantiles(now=1000.0)
    assert (empty["count"], empty["p50"], empty["by_via"]) == (0, None, {})


def test_the_window_holds_a_bounded_number_of_samples() -> None:
    recent = RecentStaleness()
    for i in range(MAX_SAMPLES + 500):
        recent.observe("poke", i / 1000, now=1.0)
    q = recent.quantiles(now=1.0)
    assert q["count"] == MAX_SAMPLES
    # The oldest 500 went first: the median is the middle of the last MAX_SAMPLES.
    assert q["p50"] == (500 + MAX_SAMPLES // 2 - 1) / 1000
