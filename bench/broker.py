"""The broker on a Redis Cluster: pokes per second through 1 shard and through 3,
and cluster-bus bytes per poke, sharded (SPUBLISH) against classic (PUBLISH).

A private cluster of 3 masters with one replica each (``.ci/redis-cluster``);
one subscriber per master (as a push server's per-shard link: SSUBSCRIBE to
``--channels`` project channels of that shard's slots, one command per slot);
``--publishers`` publisher processes sending pipelined SPUBLISH of real pokes
(``encode_poke``) on raw sockets for ``--seconds``. Side by side in one run:

- ``1 shard``: every poke on channels of one master;
- ``3 shards``: pokes spread over the channels of all three.

Throughput is what the subscribers received per second (each counts the
``smessage`` frames on its socket). On a small machine that figure is bound by
the machine (publishers, subscribers and six nodes share its cores), so the
same run also measures what bounds the cluster itself: ``--cpu-pokes`` pokes
on 1 shard and on 3, and each master's CPU per poke (``INFO cpu`` user + sys
before and after, its idle rate subtracted). A cluster's capacity is that of
its busiest master, so the capacity ratio is the busiest master's CPU per poke
with 1 shard over that with 3. It is measured twice: with a Python publisher
spreading the pokes over every project channel, and with C ``redis-benchmark``
publishers (one per master), whose delivered pokes per second are a second
throughput figure without Python publishers. Then, with nothing else running, the same
number of pokes once with SPUBLISH and once with PUBLISH, and the bytes sent on
the cluster bus (the ``ss`` byte counters of every connection on the bus ports)
and the bus messages (``CLUSTER INFO``) per poke, with the idle bus (gossip) of
the same duration subtracted. Last, ``--failovers`` master failovers with a
real app and two push servers (sharded, 30 projects, one WebSocket client per
server; tidings/testing/cluster.py): each master in turn is killed with kill -9,
and the run times when clients are told ``degraded``, when the replica is
promoted, when a poke made after the promotion reaches every client, when
every client has every change, and when they are told ``ok``; the old master
then rejoins as a replica before the next. Writes bench/results/broker.json
and .png.

    .venv/bin/python bench/broker.py [--seconds 5] [--publishers 4] [--bus-pokes 20000]
        [--cpu-pokes 300000] [--failovers 3]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from machine import describe
from redis.crc import key_slot
from report import finish, pyplot, save

from tidings.protocol.channels import project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.testing.cluster import OwnCluster, cluster_stack, slot_of_project

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SCRIPT = ROOT / ".ci" / "redis-cluster"
#: Commands per pipelined batch a publisher sends before reading the replies.
BATCH = 200
#: The goal: 3 shards carry at least this many times the pokes per second of 1.
GOAL_RATIO = 2.5
#: The C publisher: 4 connections, pipelines of 50, per master.
C_PUBLISHER = ("redis-benchmark", "-c", "4", "-P", "50")
SMESSAGE = b"$8\r\nsmessage\r\n"
MESSAGE = b"$7\r\nmessage\r\n"


def resp(*parts: bytes) -> bytes:
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


def cli(port: int, *args: str) -> str:
    return subprocess.run(
        ["redis-cli", "-p", str(port), *args], capture_output=True, text=True, timeout=10
    ).stdout


def masters(first: int) -> list[tuple[int, list[tuple[int, int]]]]:
    """(port, slot ranges) of each master."""
    found = []
    for line in cli(first, "cluster", "nodes").splitlines():
        parts = line.split()
        if "master" in parts[2] and len(parts) > 8:
            port = int(parts[1].split("@")[0].rsplit(":", 1)[1])
            ranges = []
            for spec in parts[8:]:
                low, _, high = spec.partition("-")
                ranges.append((int(low), int(high or low)))
            found.append((port, ranges))
    return sorted(found)


def channels_of(ranges: list[tuple[int, int]], count: int, start: int) -> list[bytes]:
    """``count`` project channels whose slots the master with ``ranges`` serves."""
    found: list[bytes] = []
    project = start
    while len(found) < count:
        channel = project_channel(project).encode()
        slot = key_slot(channel)
        if any(low <= slot <= high for low, high in ranges):
            found.append(channel)
        project += 1
    return found


def subscriber(
    port: int, channels: list[bytes], sharded: bool, ready: Any, counts: Any, i: int
) -> None:
    """Subscribe (one command per channel, so per slot) and count deliveries until killed."""
    sock = socket.create_connection(("127.0.0.1", port))
    command = b"SSUBSCRIBE" if sharded else b"SUBSCRIBE"
    sock.sendall(b"".join(resp(command, c) for c in channels))
    marker = SMESSAGE if sharded else MESSAGE
    confirm = b"$10\r\nssubscribe\r\n" if sharded else b"$9\r\nsubscribe\r\n"
    tail = b""
    confirmed = 0
    delivered = 0
    while True:
        data = sock.recv(1 << 20)
        if not data:
            return
        chunk = tail + data
        if confirmed < len(channels):
            confirmed += chunk.count(confirm)
            if confirmed >= len(channels):
                ready.set()
        delivered += chunk.count(marker)
        tail = chunk[-(len(marker) - 1) :]
        # Keep the overlap from being counted twice.
        delivered -= tail.count(marker)
        counts[i] = delivered


def publisher(
    targets: list[tuple[int, list[bytes]]],
    sharded: bool,
    payload: bytes,
    until: float,
    counts: Any,
    i: int,
) -> None:
    """Pipelined publishes, round robin over the target masters, until ``until``."""
    command = b"SPUBLISH" if sharded else b"PUBLISH"
    links = []
    for port, channels in targets:
        sock = socket.create_connection(("127.0.0.1", port))
        blob = b"".join(resp(command, channels[n % len(channels)], payload) for n in range(BATCH))
        links.append((sock, blob))
    sent = 0
    while time.time() < until:
        for sock, blob in links:
            sock.sendall(blob)
        for sock, _ in links:
            replies = 0
            while replies < BATCH:
                replies += sock.recv(1 << 16).count(b"\r\n")
        sent += BATCH * len(links)
        counts[i] = sent
    for sock, _ in links:
        sock.close()


def run_load(
    nodes: list[tuple[int, list[tuple[int, int]]]],
    shards: int,
    args: argparse.Namespace,
    payload: bytes,
) -> dict[str, Any]:
    """Subscribers on every master, publishers on the first ``shards`` of them."""
    ctx = multiprocessing.get_context("fork")
    chans = {
        port: channels_of(ranges, args.channels, 1_000_000 + n * 10_000_000)
        for n, (port, ranges) in enumerate(nodes)
    }
    sent = ctx.Array("q", args.publishers)
    subs, received = start_subscribers(ctx, nodes, chans)
    targets = [(port, chans[port]) for port, _ in nodes[:shards]]
    start = time.time() + 0.5
    until = start + args.seconds
    pubs = [
        ctx.Process(target=publisher, args=(targets, True, payload, until, sent, i))
        for i in range(args.publishers)
    ]
    for proc in pubs:
        proc.start()
    time.sleep(max(0.0, start - time.time()))
    got0, cpu0 = sum(received), redis_cpu(nodes)
    time.sleep(args.seconds)
    got1, cpu1 = sum(received), redis_cpu(nodes)
    for proc in pubs:
        proc.join(30)
    for proc in subs:
        proc.kill()
        proc.join(5)
    rate = (got1 - got0) / args.seconds
    busy = {str(port): round((cpu1[port] - cpu0[port]) / args.seconds, 2) for port, _ in nodes}
    return {
        "shards": shards,
        "pokes_per_s": round(rate),
        "published": sum(sent),
        "master_cpu_cores": busy,
    }


def redis_cpu(nodes: list[tuple[int, list[tuple[int, int]]]]) -> dict[int, float]:
    """Each master's CPU seconds so far (INFO cpu, user + sys)."""
    found = {}
    for port, _ in nodes:
        info = cli(port, "info", "cpu")
        user = float(re.search(r"used_cpu_user:([\d.]+)", info).group(1))  # type: ignore[union-attr]
        system = float(re.search(r"used_cpu_sys:([\d.]+)", info).group(1))  # type: ignore[union-attr]
        found[port] = user + system
    return found


def start_subscribers(
    ctx: Any, nodes: list[tuple[int, list[tuple[int, int]]]], chans: dict[int, list[bytes]]
) -> tuple[list[Any], Any]:
    """One subscriber per master, each confirmed on all its channels."""
    received = ctx.Array("q", len(nodes))
    subs = []
    for i, (port, _) in enumerate(nodes):
        ready = ctx.Event()
        proc = ctx.Process(target=subscriber, args=(port, chans[port], True, ready, received, i))
        proc.start()
        assert ready.wait(20), "subscriber did not confirm"
        subs.append(proc)
    return subs, received


def send_fixed(targets: list[tuple[int, list[bytes]]], payload: bytes, share: int) -> None:
    """``share`` pipelined SPUBLISH to each target, over its project channels in
    turn: pipelines of ``BATCH`` to every target, whatever their number, so a
    master sees the same pipeline depth with 1 shard as with 3 (only its share
    of the pokes differs), every reply read."""
    links = []
    for port, chans in targets:
        blob = b"".join(resp(b"SPUBLISH", chans[j % len(chans)], payload) for j in range(BATCH))
        links.append((socket.create_connection(("127.0.0.1", port)), blob))
    for _ in range(share // BATCH):
        for sock, blob in links:
            sock.sendall(blob)
        for sock, _ in links:
            replies = 0
            while replies < BATCH:
                replies += sock.recv(1 << 16).count(b"\r\n")
    for sock, _ in links:
        sock.close()


def run_fixed(
    nodes: list[tuple[int, list[tuple[int, int]]]],
    shards: int,
    tool: str,
    args: argparse.Namespace,
    payload: bytes,
) -> dict[str, Any]:
    """A fixed number of pokes on the first ``shards`` masters: each master's
    CPU per poke (INFO cpu, its idle rate subtracted) and the delivered rate.

    ``tool`` "python": one process, pokes spread over every project channel of
    the targets, pipelines of ``BATCH`` per master. "redis-benchmark": one C
    ``redis-benchmark`` per target master (4 connections, pipelines of 50) on
    one channel of that master, so the publisher is not the bottleneck of the
    delivered rate. Each master gets the same share and pipelines either way."""
    ctx = multiprocessing.get_context("fork")
    chans = {
        port: channels_of(ranges, args.channels, 1_000_000 + n * 10_000_000)
        for n, (port, ranges) in enumerate(nodes)
    }
    subs, received = start_subscribers(ctx, nodes, chans)
    try:
        idle0, t_idle = redis_cpu(nodes), time.monotonic()
        time.sleep(0.5)
        idle1 = redis_cpu(nodes)
        idle_rate = {p: (idle1[p] - idle0[p]) / (time.monotonic() - t_idle) for p, _ in nodes}
        targets = [(port, chans[port]) for port, _ in nodes[:shards]]
        share = max(BATCH, args.cpu_pokes // len(targets) // BATCH * BATCH)
        pokes = share * len(targets)
        got0, cpu0, t0 = sum(received), redis_cpu(nodes), time.monotonic()
        if tool == "python":
            send_fixed(targets, payload, share)
        else:
            procs = [
                subprocess.Popen(
                    [
                        *C_PUBLISHER,
                        "-p",
                        str(port),
                        "-n",
                        str(share),
                        "SPUBLISH",
                        channels[0].decode(),
                        payload.decode(),
                    ],
                    stdout=subprocess.DEVNULL,
                )
                for port, channels in targets
            ]
            for proc in procs:
                assert proc.wait(120) == 0, "redis-benchmark failed"
        deadline = time.monotonic() + 30
        while sum(received) - got0 < pokes:
            assert time.monotonic() < deadline, "pokes not delivered"
            time.sleep(0.005)
        elapsed = time.monotonic() - t0
        cpu1 = redis_cpu(nodes)
    finally:
        for proc in subs:
            proc.kill()
            proc.join(5)
    per_poke = {
        str(port): round(
            max(0.0, cpu1[port] - cpu0[port] - idle_rate[port] * elapsed) / pokes * 1e6, 3
        )
        for port, _ in nodes[:shards]
    }
    return {
        "shards": shards,
        "publisher": tool,
        "pokes": pokes,
        "pokes_per_s": round(pokes / elapsed),
        "master_cpu_us_per_poke": per_poke,
        "busiest_master_cpu_us_per_poke": max(per_poke.values()),
    }


def bus_bytes(ports: list[int]) -> int:
    """Bytes sent so far on every TCP connection of the cluster bus (ports + 10000)."""
    bus = {p + 10000 for p in ports}
    out = subprocess.run(["ss", "-tinH"], capture_output=True, text=True, timeout=10).stdout
    total = 0
    lines = out.splitlines()
    for n, line in enumerate(lines):
        parts = line.split()
        if len(parts) < 5 or not parts[0].startswith("ESTAB"):
            continue
        local, peer = parts[3], parts[4]
        if int(local.rsplit(":", 1)[1]) not in bus and int(peer.rsplit(":", 1)[1]) not in bus:
            continue
        detail = lines[n + 1] if n + 1 < len(lines) else ""
        match = re.search(r"bytes_sent:(\d+)", detail)
        if match:
            total += int(match.group(1))
    return total


def bus_messages(ports: list[int]) -> int:
    return sum(
        int(m.group(1))
        for p in ports
        if (m := re.search(r"cluster_stats_messages_sent:(\d+)", cli(p, "cluster", "info")))
    )


def run_bus(
    nodes: list[tuple[int, list[tuple[int, int]]]],
    ports: list[int],
    args: argparse.Namespace,
    payload: bytes,
) -> dict[str, Any]:
    """Bus bytes and messages per poke, SPUBLISH vs PUBLISH, minus the idle bus."""
    port, ranges = nodes[0]
    channels = channels_of(ranges, args.channels, 50_000_000)

    def measure(command: bytes | None) -> tuple[float, float, float]:
        b0, m0, t0 = bus_bytes(ports), bus_messages(ports), time.time()
        if command is None:
            time.sleep(1.0)
        else:
            sock = socket.create_connection(("127.0.0.1", port))
            for start in range(0, args.bus_pokes, BATCH):
                n = min(BATCH, args.bus_pokes - start)
                sock.sendall(
                    b"".join(resp(command, channels[k % len(channels)], payload) for k in range(n))
                )
                replies = 0
                while replies < n:
                    replies += sock.recv(1 << 16).count(b"\r\n")
            sock.close()
            time.sleep(0.3)  # let the bus flush
        return bus_bytes(ports) - b0, bus_messages(ports) - m0, time.time() - t0

    idle_b, idle_m, idle_t = measure(None)
    found: dict[str, Any] = {"idle_bus_bytes_per_s": round(idle_b / idle_t)}
    for name, command in (("sharded", b"SPUBLISH"), ("classic", b"PUBLISH")):
        b, m, t = measure(command)
        found[name] = {
            "bus_bytes_per_poke": round((b - idle_b / idle_t * t) / args.bus_pokes, 1),
            "bus_messages_per_poke": round((m - idle_m / idle_t * t) / args.bus_pokes, 2),
        }
    found["classic_over_sharded_bytes"] = round(
        found["classic"]["bus_bytes_per_poke"] / max(1.0, found["sharded"]["bus_bytes_per_poke"]), 2
    )
    return found


async def run_failovers(first: int, count: int, work: Path) -> list[dict[str, float]]:
    """Kill -9 each master in turn under a real app and two push servers."""
    import asyncio

    cluster = OwnCluster(first, 3, work / "failover-cluster", 1000)
    cluster.start()
    found: list[dict[str, float]] = []
    try:
        seeds = ",".join(f"127.0.0.1:{p}" for p in cluster.ports)
        async with cluster_stack(f"redis+cluster://{seeds}", work, sharded=True) as stack:
            projects = await stack.new_projects(30)
            for server in (0, 1):
                await stack.watch(server, projects)
            await stack.until_state("ok", 20)
            latest = {p: await stack.change(p) for p in projects}
            await stack.until_all_converged(latest, 10)
            for n in range(count):
                masters_now = sorted({cluster.master_of(slot_of_project(p)) for p in projects})
                dead = masters_now[n % len(masters_now)]
                behind = [p for p in projects if cluster.master_of(slot_of_project(p)) == dead]
                cluster.kill(dead)
                killed = time.monotonic()
                await stack.until_state("degraded", 10)
                told = max(
                    next(at for at, s in w.states if at > killed and s == "degraded")
                    for w in stack.watchers
                )
                for p in behind[:3]:
                    latest[p] = await stack.change(p)
                while True:
                    try:
                        if cluster.master_of(slot_of_project(behind[0])) != dead:
                            break
                    except LookupError:
                        pass
                    assert time.monotonic() - killed < 60, "no promotion"
                    await asyncio.sleep(0.05)
                promoted = time.monotonic()
                latest[behind[0]] = await stack.change(behind[0])
                await stack.until_all_converged({behind[0]: latest[behind[0]]}, 20)
                first_poke = time.monotonic()
                await stack.until_all_converged(latest, 20)
                converged = time.monotonic()
                await stack.until_state("ok", 20)
                ok = time.monotonic()
                found.append(
                    {
                        "killed_port": dead,
                        "degraded_after_s": round(told - killed, 3),
                        "promoted_after_s": round(promoted - killed, 3),
                        "first_poke_after_promotion_s": round(first_poke - promoted, 3),
                        "converged_after_promotion_s": round(converged - promoted, 3),
                        "ok_after_promotion_s": round(ok - promoted, 3),
                    }
                )
                print(f"failover {n + 1}: {found[-1]}", flush=True)
                cluster.restart(dead)
                await asyncio.sleep(2.0)  # rejoined as a replica before the next
    finally:
        cluster.stop()
    return found


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    failovers = results.get("failover", {}).get("runs", [])
    count = 4 if failovers else 3
    fig, axes = plt.subplots(1, count, figsize=(5.2 * count, 4.5))
    load = results["throughput"]
    by = {(r["publisher"], r["shards"]): r for r in results["fixed"]}
    width = 0.38
    for x, (one, three) in enumerate(
        (
            (load[0]["pokes_per_s"], load[1]["pokes_per_s"]),
            (by[("redis-benchmark", 1)]["pokes_per_s"], by[("redis-benchmark", 3)]["pokes_per_s"]),
        )
    ):
        axes[0].bar(x - width / 2, one, width, color="#888", label="1 shard" if x == 0 else None)
        axes[0].bar(x + width / 2, three, width, color="#2a6", label="3 shards" if x == 0 else None)
    axes[0].set_xticks([0, 1], ["Python publishers", "C publisher"])
    axes[0].legend(fontsize=8)
    axes[0].set_title(
        f"pokes/s received: {results['ratio_3_over_1']}x and "
        f"{results['ratio_3_over_1_c']}x (machine-bound)",
        fontsize=9,
    )
    for x, tool in enumerate(("python", "redis-benchmark")):
        axes[1].bar(
            x - width / 2, by[(tool, 1)]["busiest_master_cpu_us_per_poke"], width, color="#888"
        )
        axes[1].bar(
            x + width / 2, by[(tool, 3)]["busiest_master_cpu_us_per_poke"], width, color="#2a6"
        )
    axes[1].set_xticks([0, 1], ["Python publisher", "C publisher"])
    axes[1].set_ylabel("microseconds")
    axes[1].set_title(
        f"busiest master's CPU per poke: capacity {results['capacity_ratio']}x "
        f"and {results['capacity_ratio_c']}x (goal {GOAL_RATIO}x)",
        fontsize=9,
    )
    bus = results["bus"]
    axes[2].bar(
        ["SPUBLISH", "PUBLISH"],
        [bus["sharded"]["bus_bytes_per_poke"], bus["classic"]["bus_bytes_per_poke"]],
        color=["#2a6", "#c44"],
    )
    axes[2].set_title("cluster-bus bytes per poke (6 nodes)")
    if failovers:
        keys = (
            ("degraded_after_s", "degraded\n(after kill)"),
            ("promoted_after_s", "promoted\n(after kill)"),
            ("first_poke_after_promotion_s", "first poke\n(after promotion)"),
            ("converged_after_promotion_s", "all converged\n(after promotion)"),
            ("ok_after_promotion_s", "ok\n(after promotion)"),
        )
        for x, (key, _) in enumerate(keys):
            axes[3].scatter([x] * len(failovers), [r[key] for r in failovers], color="#36c")
        axes[3].set_xticks(range(len(keys)), [label for _, label in keys], fontsize=8)
        axes[3].set_ylabel("seconds")
        axes[3].set_title(f"{len(failovers)} master failovers (kill -9, node timeout 1 s)")
    m = results["machine"]
    fig.suptitle(
        f"tidings broker on a 3-master Redis Cluster - {m['cores']} cores, {m['cpu'][:40]}"
    )
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per configuration (median)")
    parser.add_argument("--publishers", type=int, default=4, help="publisher processes")
    parser.add_argument("--channels", type=int, default=100, help="channels per master")
    parser.add_argument("--bus-pokes", type=int, default=20_000)
    parser.add_argument(
        "--cpu-pokes", type=int, default=300_000, help="per CPU-per-poke run (fixed count)"
    )
    parser.add_argument("--first-port", type=int, default=7300)
    parser.add_argument("--failovers", type=int, default=3, help="0: none")
    parser.add_argument("--out", type=Path, default=RESULTS / "broker")
    args = parser.parse_args()
    payload = encode_poke(Poke(123456, 42, time.time(), None))
    results: dict[str, Any] = {
        "benchmark": "broker",
        "machine": describe(),
        "params": {
            "seconds": args.seconds,
            "repeats": args.repeats,
            "publishers": args.publishers,
            "channels_per_master": args.channels,
            "bus_pokes": args.bus_pokes,
            "cpu_pokes": args.cpu_pokes,
            "poke_bytes": len(payload),
        },
    }
    with tempfile.TemporaryDirectory(prefix="tidings-broker-") as tmp:
        subprocess.run(
            [str(SCRIPT), str(args.first_port), "3", tmp, "2000"], check=True, timeout=60
        )
        ports = list(range(args.first_port, args.first_port + 6))
        try:
            nodes = masters(args.first_port)
            runs: dict[int, list[dict[str, Any]]] = {1: [], 3: []}
            for _ in range(args.repeats):
                for shards in (1, 3):  # interleaved: the machine's load hits both alike
                    runs[shards].append(run_load(nodes, shards, args, payload))
                    print(f"{shards} shard(s): {runs[shards][-1]}", flush=True)
            results["throughput"] = []
            for shards, found in runs.items():
                rates = [r["pokes_per_s"] for r in found]
                results["throughput"].append(
                    {
                        "shards": shards,
                        "pokes_per_s": round(statistics.median(rates)),
                        "runs": found,
                    }
                )
            one, three = (r["pokes_per_s"] for r in results["throughput"])
            results["ratio_3_over_1"] = round(three / max(1, one), 2)
            fixed: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for _ in range(args.repeats):
                for tool in ("python", "redis-benchmark"):
                    for shards in (1, 3):
                        found_f = run_fixed(nodes, shards, tool, args, payload)
                        fixed.setdefault((tool, shards), []).append(found_f)
                        print(f"{tool}, {shards} shard(s): {found_f}", flush=True)
            results["fixed"] = [
                {
                    "publisher": tool,
                    "shards": shards,
                    "busiest_master_cpu_us_per_poke": round(
                        statistics.median(r["busiest_master_cpu_us_per_poke"] for r in found), 3
                    ),
                    "pokes_per_s": round(statistics.median(r["pokes_per_s"] for r in found)),
                    "runs": found,
                }
                for (tool, shards), found in fixed.items()
            ]
            by = {(r["publisher"], r["shards"]): r for r in results["fixed"]}
            for tool, key in (("python", ""), ("redis-benchmark", "_c")):
                cpu_one = by[(tool, 1)]["busiest_master_cpu_us_per_poke"]
                cpu_three = by[(tool, 3)]["busiest_master_cpu_us_per_poke"]
                results[f"capacity_ratio{key}"] = round(cpu_one / max(1e-3, cpu_three), 2)
            results["ratio_3_over_1_c"] = round(
                by[("redis-benchmark", 3)]["pokes_per_s"]
                / max(1, by[("redis-benchmark", 1)]["pokes_per_s"]),
                2,
            )
            results["bus"] = run_bus(nodes, ports, args, payload)
        finally:
            subprocess.run([str(SCRIPT), "stop", str(args.first_port), "3"], timeout=60)
        if args.failovers:
            import asyncio

            runs_f = asyncio.run(run_failovers(args.first_port + 10, args.failovers, Path(tmp)))
            results["failover"] = {
                "runs": runs_f,
                "median": {
                    key: round(statistics.median(r[key] for r in runs_f), 2)
                    for key in runs_f[0]
                    if key != "killed_port"
                },
            }
    ratio = results["ratio_3_over_1"]
    capacity = results["capacity_ratio"]
    results["goals"] = [
        {
            "goal": f"3 shards >= {GOAL_RATIO}x the pokes/s of 1",
            "ratio": ratio,
            "met": ratio >= GOAL_RATIO,
        },
        {
            "goal": f"3 shards >= {GOAL_RATIO}x the capacity of 1 "
            "(busiest master's CPU per poke, 1 shard over 3; Python publisher)",
            "ratio": capacity,
            "met": capacity >= GOAL_RATIO,
        },
        {
            "goal": f"3 shards >= {GOAL_RATIO}x the capacity of 1 "
            "(busiest master's CPU per poke, 1 shard over 3; C publisher)",
            "ratio": results["capacity_ratio_c"],
            "met": results["capacity_ratio_c"] >= GOAL_RATIO,
        },
    ]
    bus = results["bus"]
    print(
        f"\npokes/s: 1 shard {one}, 3 shards {three}: {ratio}x (goal {GOAL_RATIO}x: "
        f"{'met' if ratio >= GOAL_RATIO else 'MISSED'}) on {os.cpu_count()} cores"
    )
    by = {(r["publisher"], r["shards"]): r for r in results["fixed"]}
    for tool, key in (("python", ""), ("redis-benchmark", "_c")):
        print(
            f"{tool} publisher, busiest master's CPU per poke: 1 shard "
            f"{by[(tool, 1)]['busiest_master_cpu_us_per_poke']} us, 3 shards "
            f"{by[(tool, 3)]['busiest_master_cpu_us_per_poke']} us: capacity "
            f"{results[f'capacity_ratio{key}']}x; pokes/s {by[(tool, 1)]['pokes_per_s']} -> "
            f"{by[(tool, 3)]['pokes_per_s']}"
        )
    for goal in results["goals"][1:]:
        print(f"{goal['goal']}: {goal['ratio']}x, {'met' if goal['met'] else 'MISSED'}")
    print(f"pokes/s with the C publisher: {results['ratio_3_over_1_c']}x")
    print(
        f"bus bytes per poke: SPUBLISH {bus['sharded']['bus_bytes_per_poke']}, "
        f"PUBLISH {bus['classic']['bus_bytes_per_poke']} ({bus['classic_over_sharded_bytes']}x); "
        f"bus messages per poke: {bus['sharded']['bus_messages_per_poke']} vs "
        f"{bus['classic']['bus_messages_per_poke']}"
    )
    if "failover" in results:
        print(f"failover medians ({args.failovers}): {results['failover']['median']}")
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
