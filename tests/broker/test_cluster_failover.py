"""Faults on a Redis Cluster of this module's own (it is damaged), with the app
and two push servers on sharded pub/sub.

- Master failover: clients are told ``degraded`` at once, pokes resume within
  3 s of the replica's promotion, every client converges with nothing lost,
  clients are told ``ok`` once (never ``ok`` and then ``degraded`` again, as an
  ``ok`` judged on the app's heartbeats from before the kill would be), and the
  old master coming back as a replica changes nothing. The app and both push
  servers are given a single seed, the master that is killed: once running they
  know the whole cluster and need no seed again.
- A persistent publish error: under ``maxmemory`` every write is refused (``OOM
  command not allowed``), so the app's version-key writes and so its pokes fail,
  while PUBLISH, which needs no memory, still carries its heartbeats. The app is
  alive, heard, and loses every poke: push servers stay ``degraded`` past the
  time after which a silent app would be forgotten, never ``ok``, until the
  pokes get through again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis.asyncio as redis

from tests.broker.cluster import require_cluster
from tidings.testing.cluster import OwnCluster, cluster_stack, slot_of_project

pytestmark = pytest.mark.redis

#: Ports of this module's cluster (the shared one is 7000-7005).
FIRST_PORT = 7100
#: A master is failed over after this long without answering (milliseconds).
NODE_TIMEOUT_MS = 1000
#: Clients are told ``degraded`` within this bound of a master's death
#: (docs/OPERATIONS.md: the subscription drops at once; at worst the link
#: heartbeat is missed for link_deaf_after = 3 s).
DEGRADED_WITHIN = 3.5
#: Pokes through the promoted replica arrive within this of its promotion.
RESUME_WITHIN = 3.0
#: While one shard has no master, a poke on another reaches clients within this.
OTHER_SHARDS_WITHIN = 2.0
#: Push servers forget a silent app after this long (the default is 30 s).
FORGET_AFTER = 5.0


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[OwnCluster]:
    require_cluster()  # the same tools and rules as the shared one
    cluster = OwnCluster(FIRST_PORT, 3, tmp_path / "cluster", NODE_TIMEOUT_MS)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


async def promoted(cluster: OwnCluster, slot: int, dead: int, within: float) -> float:
    """Wait until a live master other than ``dead`` serves ``slot``; when (monotonic)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            port = await asyncio.to_thread(cluster.master_of, slot)
        except LookupError:
            port = dead
        if port != dead:
            return time.monotonic()
        await asyncio.sleep(0.05)
    raise AssertionError(f"slot {slot} not failed over within {within} s")


async def test_failover_loses_no_poke_and_a_publish_error_is_never_ok(
    own_cluster: OwnCluster, tmp_path: Path
) -> None:
    seed = own_cluster.first
    url = f"redis+cluster://127.0.0.1:{seed}"
    forget = {"TIDINGS_PUSH_APP_FORGET_AFTER": str(FORGET_AFTER)}
    async with cluster_stack(url, tmp_path, sharded=True, **forget) as stack:
        projects = await stack.new_projects(30)
        masters = {own_cluster.master_of(slot_of_project(p)) for p in projects}
        assert len(masters) == 3, masters
        on_seed = [p for p in projects if own_cluster.master_of(slot_of_project(p)) == seed]
        others = [p for p in projects if p not in on_seed]
        watchers = [await stack.watch(server, projects) for server in (0, 1)]
        await stack.until_state("ok", 10)
        latest = {p: await stack.change(p) for p in projects}
        await stack.until_all_converged(latest, 5)

        # -- kill -9 the seed, a master ------------------------------------------
        own_cluster.kill(seed)
        killed = time.monotonic()
        promotion = asyncio.ensure_future(
            promoted(own_cluster, slot_of_project(on_seed[0]), seed, 20)
        )
        await stack.until_state("degraded", DEGRADED_WITHIN + 2)
        told = [next(at for at, s in w.states if at > killed and s == "degraded") for w in watchers]
        assert max(told) - killed < DEGRADED_WITHIN, [t - killed for t in told]
        # Changes while the shard has no master: their pokes fail, and are kept;
        # the other shards' pokes do not wait behind them (a queue per shard).
        for p in on_seed[:4]:
            latest[p] = await stack.change(p)
        elsewhere = others[0]
        latest[elsewhere] = await stack.change(elsewhere)
        other_shard = await stack.until_all_converged({elsewhere: latest[elsewhere]}, 5)
        assert other_shard < OTHER_SHARDS_WITHIN, stack.logs()
        for p in others[1:4]:
            latest[p] = await stack.change(p)
        promoted_at = await promotion
        first = on_seed[0]
        latest[first] = await stack.change(first)
        await stack.until_all_converged({first: latest[first]}, 10)
        resumed = time.monotonic() - promoted_at
        assert resumed < RESUME_WITHIN, stack.logs()
        await stack.until_all_converged(latest, 15)
        converged = time.monotonic() - promoted_at
        await stack.until_state("ok", 10)
        print(
            f"failover: degraded after {max(told) - killed:.2f} s, promoted after "
            f"{promoted_at - killed:.2f} s, a new poke through in {resumed:.2f} s, "
            f"every client converged {converged:.2f} s after promotion, "
            f"another shard's poke took {other_shard:.2f} s during the outage, "
            f"ok {time.monotonic() - promoted_at:.2f} s after promotion"
        )

        # -- the old master returns, as a replica ----------------------------------
        own_cluster.restart(seed)
        back = time.monotonic()
        for p in [*on_seed[:3], *others[:3]]:
            latest[p] = await stack.change(p)
        await stack.until_all_converged(latest, 5)
        await asyncio.sleep(1.0)
        for w in watchers:
            assert all(s == "ok" for at, s in w.states if at > back), w.states
            told_since = [s for at, s in w.states if at > killed]
            outage = told_since[told_since.index("degraded") :]
            assert set(outage[outage.index("ok") :]) == {"ok"}, w.states

        # -- every write refused: pokes fail, heartbeats get through ----------------
        nodes = [redis.Redis(port=port) for port in own_cluster.ports if port != seed]
        for node in nodes:
            await node.config_set("maxmemory", "1")
        failing_since = time.monotonic()
        latest[first] = await stack.change(first)
        await stack.until_state("degraded", 5)
        await asyncio.sleep(FORGET_AFTER + 3)  # well past forgetting a silent app
        for w in watchers:
            assert all(s != "ok" for at, s in w.states if at > failing_since + 3), w.states
            assert w.state == "degraded"
        for node in nodes:
            await node.config_set("maxmemory", "0")
            await node.aclose()
        await stack.until_state("ok", 10)
        await stack.until_all_converged(latest, 5)
