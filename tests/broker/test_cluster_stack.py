"""The app and two push servers on a real Redis Cluster (3 masters, 3 replicas):
every project's pokes arrive whichever master serves its slot. Classic PUBLISH
here; sharded pub/sub does the same at the start of test_cluster_failover.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.broker.cluster import require_cluster
from tidings.testing.cluster import cluster_stack, slot_of_project

pytestmark = pytest.mark.redis

#: Projects in the test: their slots spread over all three masters.
PROJECTS = 30


def masters_of(projects: list[int]) -> set[int]:
    """Which third of the slot space (one per master on the shared cluster) each is in."""
    return {slot_of_project(p) * 3 // 16384 for p in projects}


async def test_pokes_for_projects_on_every_master_reach_clients_of_both_servers(
    tmp_path: Path,
) -> None:
    url = require_cluster()
    async with cluster_stack(url, tmp_path, sharded=False) as stack:
        projects = await stack.new_projects(PROJECTS)
        assert masters_of(list(projects)) == {0, 1, 2}
        for server in (0, 1):
            await stack.watch(server, projects)
        await stack.until_state("ok", 10)
        latest = {p: await stack.change(p) for p in projects}
        took = await stack.until_all_converged(latest, 10)
        assert took < 5, stack.logs()
