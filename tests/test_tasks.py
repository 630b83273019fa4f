"""stop_tasks: a task that takes one cancellation for something else still stops,
and one that never stops cannot hold its caller past the bound. supervise: a
crashing loop is logged and started again, with a growing wait, until cancelled."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tidings.tasks import stop_tasks, supervise


async def test_a_task_that_survives_a_cancellation_is_cancelled_again() -> None:
    async def survives_one() -> None:
        # As a loop whose asyncio.timeout turned the cancellation into TimeoutError.
        survived = False
        while True:
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                if survived:
                    raise
                survived = True

    async def fails() -> None:
        raise ValueError("already logged where it happened")

    stubborn = asyncio.create_task(survives_one())
    failed = asyncio.create_task(fails())
    await asyncio.sleep(0)
    started = time.monotonic()
    await stop_tasks([stubborn, failed, None], 5.0)
    assert stubborn.cancelled() and failed.done()
    assert time.monotonic() - started < 1.0


async def test_a_task_that_never_stops_is_given_up_after_the_bound(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stop = asyncio.Event()

    async def never() -> None:
        while not stop.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(never(), name="never")
    await asyncio.sleep(0)
    started = time.monotonic()
    with caplog.at_level(logging.WARNING):
        await stop_tasks([task], 0.3)
    assert 0.3 <= time.monotonic() - started < 2.0
    assert "never" in caplog.text and not task.done()
    stop.set()
    task.cancel()
    await asyncio.wait([task], timeout=1)


async def test_a_crashing_task_is_logged_and_started_again_until_cancelled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs: list[float] = []
    restarts = 0
    third_run = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def crashes_twice() -> None:
        runs.append(loop.time())
        if len(runs) <= 2:
            raise RuntimeError(f"crash {len(runs)}")
        third_run.set()
        await asyncio.sleep(60)  # a healthy loop runs until cancelled

    def restarted() -> None:
        nonlocal restarts
        restarts += 1

    with caplog.at_level(logging.ERROR, logger="tidings.tasks"):
        task = asyncio.create_task(
            supervise(crashes_twice, "sample", on_restart=restarted, first=0.05, longest=0.5)
        )
        await asyncio.wait_for(third_run.wait(), 5)
    crashes = [r for r in caplog.records if "event=task_crashed task=sample" in r.getMessage()]
    assert len(crashes) == 2 and restarts == 2
    assert crashes[0].exc_info is not None and "crash 1" in str(crashes[0].exc_info[1])
    # The wait doubles: 0.05 s, then 0.1 s (lower bounds only: the machine may be busy).
    assert runs[1] - runs[0] >= 0.045 and runs[2] - runs[1] >= 0.095
    await stop_tasks([task], 5)
    assert task.cancelled() and len(runs) == 3


async def test_a_supervised_task_that_returns_is_not_started_again() -> None:
    runs = 0

    async def once() -> None:
        nonlocal runs
        runs += 1

    await asyncio.wait_for(supervise(once, "once"), 5)
    assert runs == 1
