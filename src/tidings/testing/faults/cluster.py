"""The fault scenario on a throwaway Redis Cluster, with kill -9 of a master as a fault.

The same apps, push servers, haproxy, clients, writers and verdicts as
faults/run.py, but every process reaches a private cluster of 3
masters and 3 replicas (tidings.testing.cluster's ``OwnCluster``) in sharded
mode. The faults that act on the single Redis (its restart, its pause, pokes
black-holed on the way to it) have no place here; in their stead a master is
killed with kill -9 and its replica promoted by the cluster.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path

from tidings.testing.cluster import OwnCluster, master_in, slot_of_project
from tidings.testing.faults.run import Config, FaultWindow, Run, _all_ready
from tidings.testing.processes import START_TIMEOUT
from tidings.testing.topology import Topology
from tidings.testing.waiting import until

#: Cluster node timeout (ms): a dead master is failed over in about 2-3 s.
NODE_TIMEOUT_MS = 1000
#: Bound on the replica's promotion after the kill.
PROMOTION_TIMEOUT = 60.0


@dataclass
class ClusterTopology(Topology):
    """The fault topology with the broker on a Redis Cluster. The single
    redis-server and its black-hole proxy still start (the base topology's
    start-up) but nothing connects to them."""

    cluster_first_port: int = 7600

    def __post_init__(self) -> None:
        super().__post_init__()
        self.cluster = OwnCluster(
            self.cluster_first_port, 3, self.workdir / "cluster", NODE_TIMEOUT_MS
        )

    def app_env(self) -> dict[str, str]:
        return {**super().app_env(), **self.broker_env()}

    def push_env(self) -> dict[str, str]:
        return {**super().push_env(), **self.broker_env()}

    def broker_env(self) -> dict[str, str]:
        return {"REDIS_URL": self.cluster.url, "TIDINGS_REDIS_SHARDED": "true"}

    async def start(self) -> None:
        (self.workdir / "cluster").mkdir(parents=True, exist_ok=True)
        await asyncio.to_thread(self.cluster.start)
        await super().start()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.cluster.stop()


class ClusterRun(Run):
    """The fault run on a cluster: faults that need no single Redis, and a master kill."""

    def __init__(
        self, config: Config, workdir: Path, postgres_admin_url: str, first_port: int = 7600
    ) -> None:
        super().__init__(config, workdir, postgres_admin_url)
        self.topo = ClusterTopology(
            workdir, postgres_admin_url, config.intervals, cluster_first_port=first_port
        )

    async def kill9_master(self, w: FaultWindow) -> None:
        """kill -9 of the master serving the most watched projects; the fault lasts
        until its replica is promoted and every push server is ready, then the old
        master comes back (as a replica of the new one)."""
        cluster = self.topo.cluster  # type: ignore[attr-defined]
        nodes = await asyncio.to_thread(cluster.nodes)
        owner = {p: master_in(nodes, slot_of_project(p)) for p in self.projects}
        ports = sorted(set(owner.values()), key=lambda port: -list(owner.values()).count(port))
        dead = ports[0]
        behind = [p for p, port in owner.items() if port == dead]
        cluster.kill(dead)
        # The fault starts at the kill, not at the reading of the slot map before it.
        w.start = killed = time.time()
        w.notes["killed_port"] = dead
        w.notes["projects_on_it"] = len(behind)

        async def promoted() -> bool:
            try:
                port = await asyncio.to_thread(cluster.master_of, slot_of_project(behind[0]))
            except LookupError:
                return False
            return bool(port != dead)

        await until(promoted, PROMOTION_TIMEOUT, "replica promoted", step=0.1)
        w.notes["promoted_after_s"] = round(time.time() - killed, 2)
        await until(lambda: _all_ready(self.topo), START_TIMEOUT, "push ready after failover")
        w.notes["push_ready_after_s"] = round(time.time() - killed, 2)
        await asyncio.to_thread(cluster.restart, dead)

    async def faults_in_order(self) -> None:
        await self.push_killed_while_app_restarts()
        await self.fault("rolling_restart", self.rolling_restart)
        await self.fault("kill9_master", self.kill9_master)
        await self.fault("kill_switch", self.kill_switch)
        await self.fault("kill9_app", self.kill9_app)
