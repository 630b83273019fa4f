"""bench/broker.py runs at a tiny size on a private Redis Cluster. Not a timed
test: it checks that pokes flowed through 1 shard and through 3, and that a
classic PUBLISH costs the cluster bus more than SPUBLISH (it reaches every node,
not just the shard's replica), and that each loaded master's CPU per poke is
measured with a Python and a C publisher, a master with a third of the pokes
spending less per poke of the total."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads ss and /proc"),
]


def test_broker_quick(tmp_path: Path) -> None:
    for tool in ("redis-server", "redis-benchmark", "ss"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is needed (./dev test installs it)")
    data = run_bench(
        "broker.py",
        tmp_path / "broker",
        *("--seconds", "0.5", "--repeats", "1", "--publishers", "2", "--bus-pokes", "1000"),
        *("--cpu-pokes", "3000"),
        *("--first-port", "7400", "--failovers", "0"),
    )
    one, three = data["throughput"]
    assert (one["shards"], three["shards"]) == (1, 3)
    assert one["pokes_per_s"] > 0 and three["pokes_per_s"] > 0
    bus = data["bus"]
    assert bus["sharded"]["bus_messages_per_poke"] >= 0.5  # to the shard's replica
    assert bus["classic"]["bus_messages_per_poke"] > 2 * bus["sharded"]["bus_messages_per_poke"]
    ratio = data["ratio_3_over_1"]
    assert ratio == round(three["pokes_per_s"] / one["pokes_per_s"], 2)
    assert data["goals"][0]["met"] is (ratio >= 2.5)
    by = {(r["publisher"], r["shards"]): r for r in data["fixed"]}
    assert set(by) == {(t, n) for t in ("python", "redis-benchmark") for n in (1, 3)}
    for (_, shards), found in by.items():
        assert found["pokes_per_s"] > 0
        # Only the loaded masters are charged, each with its share of the pokes.
        assert len(found["runs"][0]["master_cpu_us_per_poke"]) == shards
        assert found["busiest_master_cpu_us_per_poke"] > 0
    one_cpu = by[("python", 1)]["busiest_master_cpu_us_per_poke"]
    three_cpu = by[("python", 3)]["busiest_master_cpu_us_per_poke"]
    assert data["capacity_ratio"] == round(one_cpu / three_cpu, 2)
    # A master that serves a third of the pokes spends less per poke of the total.
    assert data["capacity_ratio"] > 1
    assert data["goals"][1]["met"] is (data["capacity_ratio"] >= 2.5)
    assert data["goals"][2]["ratio"] == data["capacity_ratio_c"]
