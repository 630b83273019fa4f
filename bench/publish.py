"""What a poke costs an app: the publisher library against a bare PUBLISH.

Side by side on one Redis (or, with ``--cluster``, the Redis Cluster with
sharded pub/sub), one poke at a time: a bare ``PUBLISH`` of the same bytes (what
a publisher that skips the version key would pay), ``PushPublisher.poke`` (the
version key's compare-and-set, then PUBLISH: two round trips), and
``AsyncPushPublisher.poke``; then the asyncio publisher with ``--concurrency``
pokes in flight (different projects), for throughput. Every poke is for a new
version of one of ``--projects`` projects, so none is stale. Writes
bench/results/publish.json and .png.

    .venv/bin/python bench/publish.py [--count 5000] [--concurrency 32] [--cluster]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from lib.stack import log, percentile
from machine import describe
from report import finish, pyplot, save

from tidings.broker.redis_sync import connect_sync
from tidings.protocol.channels import project_channel, version_key
from tidings.publish import AsyncPushPublisher, PushPublisher
from tidings.publish.outcome import poke_message

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_CLUSTER = "redis+cluster://127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"


def summary(latencies: list[float], elapsed: float) -> dict[str, Any]:
    """Latencies in microseconds; rate over the whole run."""
    us = [x * 1e6 for x in latencies]
    return {
        "count": len(us),
        "p50_us": percentile(us, 50),
        "p99_us": percentile(us, 99),
        "max_us": max(us, default=0.0),
        "per_s": len(us) / elapsed if elapsed > 0 else 0.0,
    }


def bare_publish(url: str, sharded: bool, projects: list[int], count: int) -> dict[str, Any]:
    client = connect_sync(url)
    command = "SPUBLISH" if sharded else "PUBLISH"
    try:
        latencies: list[float] = []
        start = time.perf_counter()
        for n in range(count):
            project = projects[n % len(projects)]
            data = poke_message(project, n + 1)
            t0 = time.perf_counter()
            client.execute_command(command, project_channel(project), data)
            latencies.append(time.perf_counter() - t0)
        return summary(latencies, time.perf_counter() - start)
    finally:
        client.close()


def sync_pokes(url: str, sharded: bool, projects: list[int], count: int) -> dict[str, Any]:
    pub = PushPublisher.connect(url, sharded=sharded, env={})
    try:
        latencies: list[float] = []
        stale = 0
        start = time.perf_counter()
        for n in range(count):
            t0 = time.perf_counter()
            outcome = pub.poke(projects[n % len(projects)], n + 1)
            latencies.append(time.perf_counter() - t0)
            stale += outcome.stale
        result = summary(latencies, time.perf_counter() - start)
        return {**result, "stale": stale}
    finally:
        pub.close()


async def async_pokes(
    url: str, sharded: bool, projects: list[int], count: int, concurrency: int
) -> dict[str, Any]:
    """``concurrency`` workers, each poking its own projects in turn (so each
    project's versions still rise in order)."""
    pub = AsyncPushPublisher.connect(url, sharded=sharded, env={})
    latencies: list[float] = []
    stale = 0
    per_worker = count // concurrency

    async def worker(w: int) -> None:
        nonlocal stale
        mine = projects[w::concurrency] or [projects[w % len(projects)]]
        for n in range(per_worker):
            t0 = time.perf_counter()
            outcome = await pub.poke(mine[n % len(mine)], n + 1 + count)
            latencies.append(time.perf_counter() - t0)
            stale += outcome.stale

    try:
        start = time.perf_counter()
        await asyncio.gather(*(worker(w) for w in range(concurrency)))
        result = summary(latencies, time.perf_counter() - start)
        return {**result, "stale": stale, "concurrency": concurrency}
    finally:
        await pub.close()


def forget(url: str, projects: list[int]) -> None:
    client = connect_sync(url)
    try:
        for project in projects:
            client.delete(version_key(project))
    finally:
        client.close()


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    names = list(results["configs"])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    xs = range(len(names))
    for n, (key, label) in enumerate((("p50_us", "p50"), ("p99_us", "p99"))):
        left.bar(
            [x + n * 0.4 for x in xs], [results["configs"][c][key] for c in names], 0.4, label=label
        )
    left.set_xticks([x + 0.2 for x in xs], names, rotation=15, fontsize=8)
    left.set_yscale("log")
    left.set_ylabel("latency of one call, µs (log)")
    left.legend()
    right.bar(list(xs), [results["configs"][c]["per_s"] for c in names])
    right.set_xticks(list(xs), names, rotation=15, fontsize=8)
    right.set_ylabel("pokes per second")
    where = "cluster, SPUBLISH" if results["params"]["cluster"] else "one Redis, PUBLISH"
    fig.suptitle(f"tidings.publish: what a poke costs ({where})")
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=5000, help="pokes per configuration")
    parser.add_argument("--projects", type=int, default=100, help="projects poked in turn")
    parser.add_argument("--concurrency", type=int, default=32, help="asyncio pokes in flight")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--cluster", action="store_true", help=f"the Redis Cluster, sharded ({DEFAULT_CLUSTER})"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "publish")
    args = parser.parse_args()
    url, sharded = (DEFAULT_CLUSTER, True) if args.cluster else (args.redis_url, False)
    base = random.randint(10**12, 2 * 10**12)
    projects = list(range(base, base + args.projects))
    results: dict[str, Any] = {
        "benchmark": "publish",
        "machine": describe(),
        "params": {
            "count": args.count,
            "projects": args.projects,
            "concurrency": args.concurrency,
            "cluster": args.cluster,
        },
        "configs": {},
    }
    configs = results["configs"]
    try:
        log("bare PUBLISH, one at a time")
        configs["bare PUBLISH"] = bare_publish(url, sharded, projects, args.count)
        log("PushPublisher.poke, one at a time")
        configs["sync poke"] = sync_pokes(url, sharded, projects, args.count)
        forget(url, projects)
        log("AsyncPushPublisher.poke, one at a time")
        configs["async poke"] = asyncio.run(async_pokes(url, sharded, projects, args.count, 1))
        forget(url, projects)
        log(f"AsyncPushPublisher.poke, {args.concurrency} in flight")
        configs[f"async poke x{args.concurrency}"] = asyncio.run(
            async_pokes(url, sharded, projects, args.count, args.concurrency)
        )
    finally:
        forget(url, projects)
    print(f"\n{'':<18} {'p50 us':>8} {'p99 us':>8} {'pokes/s':>9}")
    for name, r in configs.items():
        print(f"{name:<18} {r['p50_us']:>8.0f} {r['p99_us']:>8.0f} {r['per_s']:>9.0f}")
    bare = configs["bare PUBLISH"]["p50_us"]
    results["ratio_p50_sync_poke_over_publish"] = configs["sync poke"]["p50_us"] / max(bare, 1e-3)
    results["ratio_p50_async_poke_over_publish"] = configs["async poke"]["p50_us"] / max(bare, 1e-3)
    print(
        f"\nmedian poke / bare PUBLISH: sync {results['ratio_p50_sync_poke_over_publish']:.2f}x, "
        f"async {results['ratio_p50_async_poke_over_publish']:.2f}x"
    )
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
