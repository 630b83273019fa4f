"""The event queue: time order, ties in scheduling order, no running into the past."""

from __future__ import annotations

from tidings.sim.clock import EPOCH, EventQueue


def test_callbacks_run_in_time_order_and_ties_in_the_order_they_were_scheduled() -> None:
    q = EventQueue()
    seen: list[tuple[float, str]] = []

    def log(name: str) -> None:
        seen.append((q.now - EPOCH, name))

    q.at(EPOCH + 2, log, "c")
    q.at(EPOCH + 1, log, "a")
    q.at(EPOCH + 1, log, "b")
    q.at(EPOCH + 3, log, "d")
    q.run_until(EPOCH + 2.5)
    assert seen == [(1, "a"), (1, "b"), (2, "c")]
    assert q.now == EPOCH + 2.5
    q.run_until(EPOCH + 10)
    assert seen[-1] == (3, "d")
    assert q.processed == 4


def test_a_callback_scheduled_in_the_past_runs_now_not_before() -> None:
    q = EventQueue()
    times: list[float] = []
    q.at(EPOCH + 5, lambda _: q.at(EPOCH + 1, lambda _: times.append(q.now)))
    q.run_until(EPOCH + 6)
    assert times == [EPOCH + 5]


def test_callbacks_scheduled_while_running_are_run_in_the_same_pass() -> None:
    q = EventQueue()
    count = 0

    def chain(n: int) -> None:
        nonlocal count
        count += 1
        if n:
            q.after(0.5, chain, n - 1)

    q.at(EPOCH, chain, 9)
    q.run_until(EPOCH + 100)
    assert count == 10
    assert len(q) == 0
