"""Stopping background tasks for sure, within a bound; keeping long-lived ones running.

``task.cancel(); await task`` can wait forever on Python 3.11: a cancellation that
arrives while an ``asyncio.timeout`` inside the task has just expired is taken for
that timeout (the task sees ``TimeoutError``), and a loop built to survive errors
goes on. Every background loop here catches errors, so every stop goes through
:func:`stop_tasks`, which cancels again until the tasks end or the bound passes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterable
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


#: The first restart waits this long (seconds); each crash in a row doubles it.
RESTART_FIRST = 0.1
#: The longest wait between restarts (seconds): a task that keeps crashing costs
#: one traceback in the log per this many seconds, not a busy loop.
RESTART_MAX = 5.0
#: A run that lasted this long (seconds) was not a crash loop: the wait starts over.
RESTART_RESET_AFTER = 30.0


async def supervise(
    factory: Callable[[], Coroutine[Any, Any, None]],
    name: str,
    *,
    on_restart: Callable[[], None] | None = None,
    logger: logging.Logger = log,
    first: float = RESTART_FIRST,
    longest: float = RESTART_MAX,
) -> None:
    """Run ``factory()`` for ever: a crash is logged (``task_crashed``, with its
    traceback) and the coroutine started again after a backoff from ``first`` to
    ``longest`` seconds (``on_restart`` is called for each restart, to count it).
    A long-lived loop that dies on an unforeseen error would otherwise leave the
    server up and silently without its clock or its version reads. Cancelling the
    supervising task stops it; a coroutine that returns is not restarted."""
    loop = asyncio.get_running_loop()
    wait = first
    while True:
        started = loop.time()
        try:
            await factory()
            return
        except Exception:
            if loop.time() - started >= RESTART_RESET_AFTER:
                wait = first
            logger.exception("event=task_crashed task=%s restart_in=%.3g", name, wait)
        await asyncio.sleep(wait)
        wait = min(wait * 2, longest)
        if on_restart is not None:
            on_restart()
