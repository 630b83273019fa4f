"""Version-key reads of concurrent polls sent as one read.

Measured (bench/poll_path.py, docs/PERFORMANCE.md): with a read of its own per
poll, the up-to-date poll on the Redis version cache cost ~2.6x the same poll
without Redis, most of it in the client library's per-command work and one
socket write per poll. Here every read asked for during one pass of the event
loop joins one batch, sent on the next pass as one read of all their keys.

A batch is never joined once it is sent: its answer may come from before the
poll arrived. So every poll's keys are read after the poll asked for them, and
it sees every key written before then, as with a read of its own (a poke that
reached a client before its poll was read is never answered with the older
version).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

#: Keys in one batch at most; a poll that would take a batch past it opens the
#: next one. A multi-poll names at most 50 projects (app/polling.py).
MAX_BATCH_KEYS = 1000

#: Reads the given keys; ``None`` when the read failed (the caller falls back).
Read = Callable[[list[int]], Awaitable[dict[int, int] | None]]


class _Batch:
    __slots__ = ("ids", "waiters")

    def __init__(self) -> None:
        self.ids: dict[int, None] = {}
        #: One future per poll: a poll cancelled stops waiting, the others do not.
        self.waiters: list[asyncio.Future[dict[int, int] | None]] = []


class ReadBatcher:
    def __init__(self, read: Read, *, max_keys: int = MAX_BATCH_KEYS) -> None:
        self._read = read
        self._max_keys = max_keys
        self._open: _Batch | None = None
        self._running: set[asyncio.Task[None]] = set()
        #: Batches sent, and reads asked for (for tests and metrics).
        self.batches = 0
        self.reads = 0

    async def get(self, ids: list[int]) -> dict[int, int] | None:
        """The versions of ``ids`` known to the shared read; ``None`` if it failed."""
        loop = asyncio.get_running_loop()
        batch = self._open
        if batch is None or len(batch.ids) + len(ids) > self._max_keys:
            batch = self._open = _Batch()
            loop.call_soon(self._send, batch)
        batch.ids.update(dict.fromkeys(ids))
        waiter: asyncio.Future[dict[int, int] | None] = loop.create_future()
        batch.waiters.append(waiter)
        self.reads += 1
        found = await waiter
        if found is None:
            return None
        return {p: found[p] for p in ids if p in found}

    def _send(self, batch: _Batch) -> None:
        if self._open is batch:
            self._open = None
        self.batches += 1
        task = asyncio.get_running_loop().create_task(self._run(batch))
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    async def _run(self, batch: _Batch) -> None:
        try:
            found = await self._read(list(batch.ids))
        except asyncio.CancelledError:
            for waiter in batch.waiters:
                waiter.cancel()
            raise
        except BaseException as exc:
            for waiter in batch.waiters:
                if not waiter.done():
                    waiter.set_exception(exc)
        else:
            for waiter in batch.waiters:
                if not waiter.done():  # a poll cancelled meanwhile
                    waiter.set_result(found)
