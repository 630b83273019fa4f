"""Password hashing off the event loop: a few threads and a bounded queue.

An argon2id verify takes about 190 ms of CPU (64 MiB, the library's defaults).
On the event loop every sign-in would stall every other request for that long;
here it runs on ``workers`` threads (argon2-cffi releases the GIL) at a lower
CPU priority than the loop. At most
``workers + max_waiting`` sign-ins are in flight: past that a sign-in gets 503
with Retry-After at once, so a flood queues a bounded amount of work (each
waiting sign-in holds only its request; each running one 64 MiB) and the
slowest admitted one waits about ``(workers + max_waiting) / workers * 0.19`` s.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from tidings.protocol.errors import Unavailable

T = TypeVar("T")

#: The password threads' niceness (Linux schedules threads, not processes, and
#: argon2's own lane threads inherit it): a flood of sign-ins then takes the CPU
#: the event loop leaves, instead of a fair share against it.
PASSWORD_NICENESS = 10


def _lower_priority() -> None:
    """Run in each password thread as it starts (where the OS allows it)."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), PASSWORD_NICENESS)


#: Seconds a refused sign-in is asked to wait (a slot frees every ~0.1 s).
BUSY_RETRY_AFTER = 1


class PasswordPool:
    def __init__(self, workers: int = 2, max_waiting: int = 64) -> None:
        """``workers=0`` hashes on the event loop: only to measure what the threads save."""
        self._executor = (
            ThreadPoolExecutor(
                workers, thread_name_prefix="tidings-argon2", initializer=_lower_priority
            )
            if workers > 0
            else None
        )
        self.bound = max(workers, 1) + max_waiting
        self.in_flight = 0

    @contextlib.contextmanager
    def admit(self) -> Iterator[None]:
        """Hold a slot for one sign-in, or raise Unavailable (503) when all are taken."""
        if self.in_flight >= self.bound:
            raise Unavailable(
                "too many sign-ins at once; retry shortly", retry_after=BUSY_RETRY_AFTER
            )
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def run(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` (a hash or verify) on a worker thread."""
        if self._executor is None:
            return fn()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
