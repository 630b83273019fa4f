"""The push server's version-key reads, batched: on subscribe, after a recovery, in the audit.

A recovery re-checks every watched project at once: the projects wanted within
``recheck_delay`` become a few MGETs of at most ``recheck_batch`` keys each, each
bounded by ``broker_timeout``. A failed batch is counted and logged, not retried:
the health policy's recovery re-checks everything once the broker is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable

from tidings.push.logs import emit
from tidings.push.metrics import Counters
from tidings.push.settings import PushSettings

log = logging.getLogger("tidings.push")

#: Reads the versions of the given projects (unknown projects left out).
ReadVersions = Callable[[list[int]], Awaitable[dict[int, int]]]


class VersionReader:
    """``want(projects)`` from anywhere on the loop; ``run()`` is the long-lived reader."""

    def __init__(
        self,
        settings: PushSettings,
        read: ReadVersions,
        found: Callable[[dict[int, int]], None],
        counters: Counters,
    ) -> None:
        self._settings = settings
        self._read = read
        self._found = found
        self._counters = counters
        #: At most the watched projects (a set: wanting one twice reads it once).
        self._wanted: set[int] = set()
        self._event = asyncio.Event()
        self._reading = False

    def want(self, projects: Iterable[int]) -> None:
        self._wanted.update(projects)
        self._event.set()

    @property
    def idle(self) -> bool:
        """Nothing wanted and no read on its way (everything asked for was answered)."""
        return not self._wanted and not self._reading

    async def run(self) -> None:
        settings = self._settings
        while True:
            await self._event.wait()
            await asyncio.sleep(settings.recheck_delay)
            self._event.clear()
            wanted, self._wanted = sorted(self._wanted), set()
            self._reading = True
            try:
                await self._read_all(wanted)
            finally:
                self._reading = False

    async def _read_all(self, wanted: list[int]) -> None:
        settings = self._settings
        for i in range(0, len(wanted), settings.recheck_batch):
            chunk = wanted[i : i + settings.recheck_batch]
            try:
                async with asyncio.timeout(settings.broker_timeout):
                    versions = await self._read(chunk)
            except Exception as exc:
                self._counters.version_reads_failed += 1
                emit(log, logging.WARNING, "version_read_failed", error=repr(exc))
                continue
            self._found(versions)
