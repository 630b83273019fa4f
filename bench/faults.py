"""Fault injection at full size: 500+ clients through every fault, with every assertion.

The topology (tidings/testing/topology.py): its own redis-server, a fresh PostgreSQL
database, two ``tidings app`` and two ``tidings push`` processes behind haproxy,
client processes of ``SyncClient``s on WebSocket, SSE and Socket.IO in turn
watching a few dozen projects, writers committing a steady stream of changes.
The faults, in order (tidings/testing/faults/run.py): kill -9 of a push server
overlapped by an app restart; a rolling restart of every push server (SIGTERM
drain); a Redis restart; Redis paused (SIGSTOP) for 30 s; pokes black-holed
between the apps and Redis, with one client's network stalled meanwhile; the
kill switch off, then on; kill -9 of an app process. Prints the
per-fault table, writes bench/results/faults.json and .png, and exits 1 if any
promise was broken (tidings/testing/faults/observe.py lists them).

    .venv/bin/python bench/faults.py [--clients 500] [--projects 30] [--pause 30]

With ``--cluster`` the same stack runs on a throwaway Redis Cluster of 3
masters and 3 replicas, sharded (tidings/testing/faults/cluster.py): the faults that act
on a single Redis give way to kill -9 of the master serving the most watched
projects; the table has the same columns (bench/results/faults-cluster.*).

    .venv/bin/python bench/faults.py --cluster [--cluster-port 7600] [--clients 500]

The CI-sized run is tests/faults/test_faults.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

from machine import describe  # noqa: E402
from report import finish, pyplot  # noqa: E402

from tidings.testing.faults.cluster import ClusterRun  # noqa: E402
from tidings.testing.faults.observe import Row, judge, table  # noqa: E402
from tidings.testing.faults.run import Config, Run  # noqa: E402
from tidings.testing.topology import Intervals  # noqa: E402

RESULTS = ROOT / "bench" / "results"
PG_ADMIN = os.environ.get("TIDINGS_BENCH_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test")


def staleness_series(result: dict[str, Any]) -> list[tuple[float, float]]:
    """(commit time since start, staleness) of every applied event."""
    t0 = result["started_at"]
    return sorted((ts - t0, at - ts) for c in result["clients"] for _, _, ts, at in c["applied"])


def plot(result: dict[str, Any], rows: list[Row], path: Path) -> None:
    plt = pyplot()

    t0 = result["started_at"]
    series = staleness_series(result)
    fig, (ax, ax2) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
    ax.scatter([t for t, _ in series], [s for _, s in series], s=2, alpha=0.3, color="tab:blue")
    # p99 per 2-second bin of commit time
    bins: dict[int, list[float]] = {}
    for t, s in series:
        bins.setdefault(int(t // 2), []).append(s)
    xs = sorted(bins)
    ax.plot(
        [2 * x + 1 for x in xs],
        [sorted(bins[x])[max(0, math.ceil(0.99 * len(bins[x])) - 1)] for x in xs],
        color="black",
        lw=1,
        label="p99 per 2 s",
    )
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for n, r in enumerate(rows):
        for a in (ax, ax2):
            a.axvspan(r.start - t0, r.end - t0, color=colors[n % len(colors)], alpha=0.15)
        ax.text(r.start - t0, ax.get_ylim()[1] * 0.92, r.fault, fontsize=7, rotation=90, va="top")
    ax.set_ylabel("staleness (s): commit to applied")
    ax.set_yscale("log")
    ax.legend(loc="upper right")
    polls = result["polls"]
    ax2.plot([s - t0 for s, _ in polls], [c for _, c in polls], lw=1)
    budget = rows[0].poll_budget if rows else 0
    ax2.axhline(budget, color="red", lw=1, ls="--", label=f"fallback budget {budget:.0f}/s")
    ax2.set_ylabel("client polls per second")
    ax2.set_xlabel("seconds since start")
    ax2.legend(loc="upper right")
    cfg = result["config"]
    fig.suptitle(
        f"tidings under faults{' (Redis Cluster)' if result.get('cluster') else ''}: "
        f"{cfg['clients']} clients, {cfg['projects']} projects, "
        f"{cfg['write_rate']:g} changes/s (shared 2-core machine)"
    )
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=500)
    parser.add_argument("--projects", type=int, default=30)
    parser.add_argument("--workers", type=int, default=4, help="client processes")
    parser.add_argument("--write-rate", type=float, default=4.0, help="changes per second")
    parser.add_argument("--pause", type=float, default=30.0, help="seconds Redis is SIGSTOPped")
    parser.add_argument("--hold", type=float, default=10.0, help="seconds other faults are held")
    parser.add_argument("--drain-window", type=float, default=10.0)
    parser.add_argument(
        "--cluster", action="store_true", help="on a Redis Cluster, with a master killed"
    )
    parser.add_argument("--cluster-port", type=int, default=7600, help="its first node's port")
    parser.add_argument("--out", type=Path, default=None, help="default bench/results/faults")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep the logs and raw record in this directory"
    )
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS / ("faults-cluster" if args.cluster else "faults")
    config = Config(
        clients=args.clients,
        projects=args.projects,
        workers=args.workers,
        write_rate=args.write_rate,
        intervals=Intervals(drain_window=args.drain_window),
        redis_pause=args.pause,
        pokes_dropped=args.hold,
        client_stall=max(args.hold, 7.0),
        kill_switch_off=args.hold,
        settle=5.0,
        recover_timeout=60.0,
    )
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tidings-faults-") as tmp:
        workdir = args.keep or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        run = (
            ClusterRun(config, workdir, PG_ADMIN, args.cluster_port)
            if args.cluster
            else Run(config, workdir, PG_ADMIN)
        )
        try:
            result = asyncio.run(run.run())
            result["cluster"] = args.cluster
        finally:
            run.close()
        if args.keep:
            (workdir / "record.json").write_text(json.dumps(result))
    wall = time.monotonic() - began
    rows, failures, summary = judge(result)
    print()
    print(table(rows))
    print()
    print(
        f"{summary['clients']} clients, {summary['writes']} changes "
        f"({summary['write_retries']} retried); baseline staleness p50 "
        f"{summary['baseline_staleness_p50']:.2f} s, "
        f"p99 {summary['baseline_staleness_p99']:.2f} s; "
        f"wall time {wall:.0f} s"
    )
    for transport, t in summary["by_transport"].items():
        print(
            f"  {transport}: {t['clients']} clients, {t['samples']} changes applied, "
            f"staleness over the whole run p50 {t['staleness_p50']:.2f} s, "
            f"p99 {t['staleness_p99']:.2f} s"
        )
    for row in rows:
        if row.notes:
            print(f"  {row.fault}: {json.dumps(row.notes)}")
    print("broken promises:" if failures else "every promise kept")
    for failure in failures:
        print(f"  - {failure}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "machine": describe(),
        "command": "bench/faults.py " + " ".join(sys.argv[1:]),
        "cluster": args.cluster,
        "wall_seconds": round(wall, 1),
        "config": result["config"],
        "summary": summary,
        "faults": [asdict(r) for r in rows],
        "failures": failures,
    }
    args.out.with_suffix(".json").write_text(json.dumps(body, indent=2, default=str))
    plot(result, rows, args.out.with_suffix(".png"))
    print(f"wrote {args.out.with_suffix('.json')} and .png")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
