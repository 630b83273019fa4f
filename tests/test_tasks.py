"""stop_tasks: a task that takes one cancellation for something else still stops,
and one that never stops cannot hold its caller past the bound."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from tidings.tasks import stop_tasks


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
