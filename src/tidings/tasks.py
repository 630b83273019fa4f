"""Stopping background tasks for sure, within a bound.

``task.cancel(); await task`` can wait forever on Python 3.11: a cancellation that
arrives while an ``asyncio.timeout`` inside the task has just expired is taken for
that timeout (the task sees ``TimeoutError``), and a loop built to survive errors
goes on. Every background loop here catches errors, so every stop goes through
:func:`stop_tasks`, which cancels again until the tasks end or the bound passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

log = logging.getLogger(__name__)

#: How often a task that is still running is cancelled again (seconds).
RECANCEL_EVERY = 0.05


async def stop_tasks(tasks: Iterable[asyncio.Task[Any] | None], within: float) -> None:
    """Cancel ``tasks`` and wait, at most ``within`` seconds, until all have ended;
    a task that outlives that is logged and left cancelled. Never raises for what a
    task raised (each one's outcome is retrieved)."""
    given = [task for task in tasks if task is not None]
    pending = {task for task in given if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while pending:
        for task in pending:
            task.cancel()
        left = deadline - loop.time()
        if left <= 0:
            break
        _, pending = await asyncio.wait(pending, timeout=min(RECANCEL_EVERY, left))
    for task in given:
        if task.done() and not task.cancelled():
            task.exception()  # retrieved: a failure was already logged where it happened
    for task in pending:
        log.warning("task still running %.1f s after cancel: %s", within, task.get_name())
