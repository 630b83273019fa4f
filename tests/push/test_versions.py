"""The batched version reader: many wanted projects become a few bounded reads, and a
failed read is counted without stopping the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from tidings.broker.memory import MemoryBroker
from tidings.push.metrics import Counters
from tidings.push.settings import PushSettings
from tidings.push.versions import VersionReader
from tidings.tasks import stop_tasks

SETTINGS = PushSettings(recheck_delay=0.01, recheck_batch=500, broker_timeout=1.0)


async def test_wanted_projects_are_read_in_batches_and_a_failed_batch_is_skipped() -> None:
    broker = MemoryBroker()
    for project in range(1, 1201):
        await broker.set_version(project, project * 10)
    subscriber = broker.subscriber()
    reads: list[list[int]] = []

    async def read(projects: Iterable[int]) -> dict[int, int]:
        chunk = list(projects)
        reads.append(chunk)
        if len(reads) == 2:
            raise ConnectionError("the broker went away for this one")
        return await subscriber.get_versions(chunk)

    found: dict[int, int] = {}
    deliveries = 0
    wake = asyncio.Event()

    def deliver(versions: dict[int, int]) -> None:
        nonlocal deliveries
        found.update(versions)
        deliveries += 1
        wake.set()

    async def deliveries_reach(count: int) -> None:
        async with asyncio.timeout(5):
            while deliveries < count:
                await wake.wait()
                wake.clear()

    counters = Counters()
    reader = VersionReader(SETTINGS, read, deliver, counters)
    task = asyncio.create_task(reader.run())
    try:
        reader.want(range(1201, 0, -1))
        reader.want([7, 7, 1200])  # wanted again before the read: read once
        await deliveries_reach(2)  # the first batch and the third (the second failed)
        assert [len(chunk) for chunk in reads] == [500, 500, 201]  # 1201 is unknown
        assert reads[0][:2] == [1, 2]  # in order, each key once
        assert counters.version_reads_failed == 1
        assert found == {p: p * 10 for p in [*range(1, 501), *range(1001, 1201)]}
        reader.want([600])  # the next recovery reads what the failed one missed
        assert not reader.idle
        await deliveries_reach(3)
        assert found[600] == 6000 and len(reads) == 4 and reader.idle
    finally:
        await stop_tasks([task], 5)
