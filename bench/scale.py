"""100,000 connections on one machine: one poke to all of them, then a soak.

Starts S ``tidings push`` processes sharing one port (``--reuse-port``) on a
private Redis, and G load-generator processes (bench/fanout_load.c, the one
bench/fanout.py uses; 4,000 connections each) that open N WebSockets from
source addresses across 127.0.0.0/8. Every connection watches two projects: one
that all connections watch and its generator's own ("group") project. Then:

1. **Headline**: K pokes to all N, one at a time; per poke the time until each
   client got it (p50 / p99 / last), the servers' CPU, RSS per process and per
   connection.
2. **Soak** (``--soak-seconds``, default 600): a steady trickle of pokes, one
   per ``--soak-interval`` to a random group's project (N / G connections) and
   every ``--all-every``-th to all N, fired on schedule without waiting; RSS per
   process sampled over time, drift = last sample vs the sample after the
   warm-up; delivery latency of every poke over time.

No process is pinned: servers and generators share the machine's cores, as a
single-host deployment would. Writes bench/results/scale.json and .png.

    .venv/bin/python bench/scale.py [--clients 100000] [--servers 6] [--soak-seconds 600]
    .venv/bin/python bench/scale.py --quick

Results and how to read them: docs/PERFORMANCE.md, "Scale".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import (
    WS_KEY,
    Generator,
    c_spec,
    cpu_sched,
    free_port,
    git_state,
    log,
    percentile,
    rss_kb,
    start_redis,
    stop_process,
    wait_for,
)
from machine import describe
from report import finish, print_goals, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
#: Per-process open-file limit on our machines is 20,000: each server takes at most
#: this many connections, and each generator opens PER_GENERATOR of them.
SERVER_MAX_CONNECTIONS = 19_500
PER_GENERATOR = 4000
#: Connections per source address (well inside the 28k ephemeral ports of each).
PER_SOURCE = 2000
#: A poke that reaches no new client for this long is given up.
STALL_S = 10.0
POKE_MAX_S = 120.0
#: Headline goal (issue 6): one poke reaches all N within this many seconds.
GOAL_LAST_S = 2.0


def raise_nofile() -> None:
    """Soft open-file limit up to the hard one (in each child before exec)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def read_line(proc: subprocess.Popen[bytes], seconds: float) -> str:
    """The next stdout line of ``proc`` within ``seconds`` ("" when none came)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], seconds)
    return proc.stdout.readline().decode(errors="replace") if ready else ""


class Fleet:
    """S push servers on one port, and the private Redis they meet the publisher on."""

    def __init__(self, work: Path, servers: int) -> None:
        from tidings.protocol.tokens import KeyRing

        self.work = work
        self.count = servers
        self.keys = KeyRing.generate()
        self.port = free_port()
        self.procs: list[subprocess.Popen[bytes]] = []
        self.redis_proc: subprocess.Popen[bytes] | None = None
        self.redis_url = ""

    def start(self) -> None:
        self.redis_proc, self.redis_url = start_redis(self.work)
        env = {
            **os.environ,
            "REDIS_URL": self.redis_url,
            "TIDINGS_PUSH_KEYS": self.keys.spec(),
            # Tens of thousands of clients come from a handful of addresses: the
            # per-IP rate limit is for the internet, not for this benchmark.
            "TIDINGS_PUSH_IP_RATE": "0",
        }
        cmd = [sys.executable, "-m", "tidings", "push", "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--reuse-port", "--drain-window", "1"]
        cmd += ["--max-connections", str(SERVER_MAX_CONNECTIONS), "--log-level", "WARNING"]
        for k in range(self.count):
            # Logs to a file: a pipe nobody reads would stall the server once full.
            with open(self.work / f"push{k}.log", "wb") as logfile:
                proc = subprocess.Popen(
                    cmd,
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=logfile,
                    start_new_session=True,
                    preexec_fn=raise_nofile,
                )
            self.procs.append(proc)
        for k, proc in enumerate(self.procs):  # each prints this once it listens
            line = read_line(proc, 30)
            if "listening" not in line:
                raise RuntimeError(f"push server did not start: {line!r} {self.log_tail(k)}")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{self.port}/readyz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError("push servers did not become ready (Redis link)")

    def log_tail(self, k: int) -> str:
        with contextlib.suppress(OSError):
            return (self.work / f"push{k}.log").read_text(errors="replace")[-2000:]
        return ""

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def rss_each_kb(self) -> list[int]:
        return [rss_kb([pid]) for pid in self.pids]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)
        if self.redis_proc is not None:
            stop_process(self.redis_proc)

    def token(self, projects: list[int]) -> str:
        from tidings.protocol.tokens import sign_push_token

        token, _ = sign_push_token(self.keys, 1, projects, ttl=24 * 3600)
        return token


async def start_generators(
    args: argparse.Namespace, fleet: Fleet, work: Path, all_project: int, groups: list[int]
) -> list[Generator]:
    """One generator per group: its connections watch the shared project and the group's."""
    gens = []
    n_gens = len(groups)
    generator = work / "fanout_load"
    if not generator.exists():
        await asyncio.to_thread(
            subprocess.run,
            ["cc", "-O2", "-o", str(generator), str(BENCH / "fanout_load.c")],
            check=True,
            timeout=120,
        )
    upgrade = (
        f"Host: 127.0.0.1:{fleet.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    lifetime = args.soak_seconds + 1200  # connect, headline, soak, report
    for g, project in enumerate(groups):
        n = args.clients // n_gens + (1 if g < args.clients % n_gens else 0)
        sources = [
            f"127.{10 + g // 4}.{(g % 4) * 60 + k // 250}.{k % 250 + 1}"
            for k in range(math.ceil(n / PER_SOURCE))
        ]
        sub = json.dumps(
            {
                "type": "subscribe",
                "token": fleet.token([all_project, project]),
                "projects": {all_project: 0, project: 0},
            }
        )
        spec = {
            "ws": True,
            "request": "GET /ws HTTP/1.1\r\n" + upgrade,
            "steps": [["", sub], ['"subscribed"', None]],
            "host": "127.0.0.1",
            "port": fleet.port,
            "count": n,
            "sources": sources,
            "first_version": 1,
            "last_version": args.max_version,
            "concurrency": args.concurrency,
        }
        text = c_spec(spec)
        first, rest = text.split("\n", 1)
        spec_file = work / f"gen{g}.spec"
        spec_file.write_text(f"{first} {lifetime} {args.connect_seconds}\n{rest}")
        proc = await asyncio.create_subprocess_exec(
            str(generator),
            str(spec_file),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=raise_nofile,
        )
        gens.append(Generator(proc, n))
    return gens


class Publisher:
    def __init__(self, redis_url: str) -> None:
        from tidings.broker.redis_publisher import RedisPublisher

        self._pub = RedisPublisher.from_url(redis_url)

    async def poke(self, project: int, version: int) -> float:
        """Publish; return the monotonic time just before it was sent."""
        from tidings.protocol.channels import project_channel
        from tidings.protocol.poke import Poke, encode_poke

        data = encode_poke(Poke(project, version, round(time.time(), 3)))
        sent = time.monotonic()
        await self._pub.publish(project_channel(project), data)
        return sent

    async def close(self) -> None:
        await self._pub.close()


async def wait_poke(version: int, gens: list[Generator]) -> bool:
    """Wait until every ready client of ``gens`` got ``version`` (or it stalls)."""

    def complete() -> bool:
        return all(g.got.get(version, 0) >= g.ready or g.proc.returncode is not None for g in gens)

    t0 = time.monotonic()
    progress, still = -1, t0
    while time.monotonic() - t0 < POKE_MAX_S:
        if await wait_for(complete, gens, 1.0):
            return True
        seen = sum(g.seen.get(version, 0) for g in gens)
        if seen != progress:
            progress, still = seen, time.monotonic()
        elif time.monotonic() - still > STALL_S:
            return False
    return False


def summarize(lat_ms: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(lat_ms, 0.5), 1),
        "p99_ms": round(percentile(lat_ms, 0.99), 1),
        "last_ms": round(max(lat_ms), 1) if lat_ms else float("nan"),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tidings-scale-"))
    fleet = Fleet(work, args.servers)
    base = 700_000_000 + secrets.randbelow(99_000_000)
    n_gens = max(1, math.ceil(args.clients / PER_GENERATOR))
    all_project, groups = base, [base + 1 + g for g in range(n_gens)]
    data: dict[str, Any] = {
        "benchmark": "scale",
        "command": " ".join([".venv/bin/python", "bench/scale.py", *sys.argv[1:]]),
        "machine": describe(),
        "tidings_commit": git_state(),
        "clients": args.clients,
        "servers": args.servers,
        "generators": n_gens,
        "connections_per_group": args.clients // n_gens,
        "headline_pokes": args.pokes,
        "soak_seconds": args.soak_seconds,
        "soak_interval_s": args.soak_interval,
        "soak_all_every": args.all_every,
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE),
    }
    gens: list[Generator] = []
    publisher: Publisher | None = None
    try:
        await asyncio.to_thread(fleet.start)
        publisher = Publisher(fleet.redis_url)
        await asyncio.sleep(1.0)
        rss_before = fleet.rss_each_kb()
        log(
            f"{args.servers} push servers up on port {fleet.port} ({sum(rss_before)} KB); "
            f"opening {args.clients} connections from {n_gens} generators"
        )
        cpu0, t0 = cpu_sched(fleet.pids), time.monotonic()
        gens = await start_generators(args, fleet, work, all_project, groups)
        last_print = 0.0
        while not all(g.done.is_set() for g in gens):
            await wait_for(lambda: all(g.done.is_set() for g in gens), gens, 2.0)
            if time.monotonic() - last_print >= 5:
                last_print = time.monotonic()
                log(
                    f"  {sum(g.ready for g in gens)} open, {sum(g.failed for g in gens)} failed, "
                    f"server RSS {sum(fleet.rss_each_kb()) / 1024:.0f} MB"
                )
            if not fleet.alive():
                dead = [k for k, p in enumerate(fleet.procs) if p.poll() is not None]
                raise RuntimeError(
                    f"push server exited while clients connected: {fleet.log_tail(dead[0])}"
                )
        setup_s = time.monotonic() - t0
        setup_cpu = cpu_sched(fleet.pids) - cpu0
        ready = sum(g.ready for g in gens)
        failed = sum(g.failed for g in gens)
        log(
            f"{ready} open, {failed} failed in {setup_s:.1f} s "
            f"({ready / setup_s:.0f}/s, servers {setup_cpu:.1f} s CPU)"
        )
        if ready == 0:
            raise RuntimeError("no client connected")
        data["setup"] = {
            "ready": ready,
            "failed": failed,
            "seconds": round(setup_s, 2),
            "rate_per_s": round(ready / setup_s, 1),
            "server_cpu_s": round(setup_cpu, 2),
        }

        version = 0
        sent: dict[int, float] = {}
        target: dict[int, str] = {}

        async def to_all() -> tuple[float, float, bool]:
            nonlocal version
            assert publisher is not None
            version += 1
            c = cpu_sched(fleet.pids)
            sent[version] = await publisher.poke(all_project, version)
            target[version] = "all"
            ok = await wait_poke(version, gens)
            return time.monotonic() - sent[version], cpu_sched(fleet.pids) - c, ok

        wall, _, ok = await to_all()  # warm-up
        log(
            f"warm-up poke to all: {wall:.2f} s until the last client ({'ok' if ok else 'STALLED'})"
        )
        await asyncio.sleep(args.pause * 2)
        rss_after = fleet.rss_each_kb()
        headline_cpu = []
        headline_versions = []
        headline_ok = True
        for _ in range(args.pokes):
            await asyncio.sleep(args.pause)
            wall, cpu, ok = await to_all()
            headline_versions.append(version)
            headline_cpu.append(cpu)
            headline_ok &= ok
            log(
                f"poke {version} to all: last client after {wall:.2f} s (seen by the publisher), "
                f"servers {cpu:.2f} s CPU{'' if ok else ', STALLED'}"
            )
        data["rss"] = {
            "before_kb_each": rss_before,
            "after_connect_kb_each": rss_after,
            "after_connect_kb_total": sum(rss_after),
            "per_connection_kb": round((sum(rss_after) - sum(rss_before)) / ready, 3),
        }

        # -- soak -------------------------------------------------------------
        samples: list[dict[str, Any]] = []
        soak_t0 = time.monotonic()
        cpu_last, t_last = cpu_sched(fleet.pids), soak_t0
        next_sample = soak_t0
        next_poke = soak_t0 + args.soak_interval
        i = 0
        rng = random.Random(7)
        log(
            f"soak: {args.soak_seconds:g} s, a poke every {args.soak_interval:g} s "
            f"(every {args.all_every}th to all {ready}, the others to one group of "
            f"~{ready // n_gens})"
        )
        last_print = soak_t0
        while True:
            now = time.monotonic()
            if now - soak_t0 >= args.soak_seconds:
                break
            if now >= next_sample:
                cpu_now = cpu_sched(fleet.pids)
                sample = {
                    "t": round(now - soak_t0, 2),
                    "rss_kb_each": fleet.rss_each_kb(),
                    "cpu_percent": round((cpu_now - cpu_last) / max(now - t_last, 1e-6) * 100, 1),
                    "pokes": i,
                }
                sample["rss_kb_total"] = sum(sample["rss_kb_each"])
                samples.append(sample)
                cpu_last, t_last = cpu_now, now
                next_sample += args.sample_interval
                if not fleet.alive():
                    raise RuntimeError("a push server exited during the soak")
                if now - last_print >= args.print_interval:
                    last_print = now
                    log(
                        f"  soak {now - soak_t0:.0f} s: {i} pokes, server RSS "
                        f"{sample['rss_kb_total'] / 1024:.1f} MB, servers "
                        f"{sample['cpu_percent']:.0f}% CPU, "
                        f"{sum(g.ready for g in gens)} clients"
                    )
            if now >= next_poke:
                i += 1
                version += 1
                if i % args.all_every == 0:
                    project, target[version] = all_project, "all"
                else:
                    g = rng.randrange(n_gens)
                    project, target[version] = groups[g], f"group{g}"
                assert publisher is not None
                sent[version] = await publisher.poke(project, version)
                next_poke += args.soak_interval
            await asyncio.sleep(max(0.0, min(next_poke, next_sample) - time.monotonic()))
        await asyncio.sleep(args.pause * 3)  # the last pokes land
        last_version = version
        if last_version > args.max_version:
            raise RuntimeError(f"--max-version {args.max_version} < {last_version} pokes")

        # -- reports ----------------------------------------------------------
        reports = []
        for g, gen in enumerate(gens):
            path = work / f"gen{g}.json"
            await gen.send(f"report {path}")
            await asyncio.wait_for(gen.reported.wait(), 120)
            reports.append(json.loads(path.read_text()))
        lost = sum(r["lost"] for r in reports)
        per_version: list[dict[str, Any]] = []
        for v in range(1, last_version + 1):
            tgt = target[v]
            ix = range(n_gens) if tgt == "all" else [int(tgt[5:])]
            lat = [(t - sent[v]) * 1000 for k in ix for t in reports[k]["arrivals"][str(v)]]
            expected = sum(gens[k].ready for k in ix)
            per_version.append(
                {
                    "version": v,
                    "t": round(sent[v] - soak_t0, 2),
                    "target": tgt,
                    "expected": expected,
                    "received": len(lat),
                    **summarize(lat),
                }
            )
        headline = [p for p in per_version if p["version"] in headline_versions]
        soak = [p for p in per_version if p["t"] >= 0]
        warm = min(args.warmup, args.soak_seconds / 2)
        warm_sample = next((s for s in samples if s["t"] >= warm), samples[-1])
        end_sample = samples[-1]
        drift_each = [
            round((b - a) / a * 100, 2)
            for a, b in zip(warm_sample["rss_kb_each"], end_sample["rss_kb_each"], strict=True)
        ]
        drift_total = round(
            (end_sample["rss_kb_total"] - warm_sample["rss_kb_total"])
            / warm_sample["rss_kb_total"]
            * 100,
            2,
        )
        soak_all = [p for p in soak if p["target"] == "all"]
        soak_group = [p for p in soak if p["target"] != "all"]
        data["headline"] = {
            "pokes": headline,
            "every_client_got_every_poke": headline_ok
            and all(p["received"] == p["expected"] for p in headline),
            "latency_ms_p50": statistics.median(p["p50_ms"] for p in headline),
            "latency_ms_p99": statistics.median(p["p99_ms"] for p in headline),
            "latency_ms_last": statistics.median(p["last_ms"] for p in headline),
            "latency_ms_last_worst": max(p["last_ms"] for p in headline),
            "server_cpu_s_per_poke": round(statistics.median(headline_cpu), 3),
            "server_cpu_us_per_conn_poke": round(statistics.median(headline_cpu) / ready * 1e6, 2),
        }
        data["soak"] = {
            "samples": samples,
            "pokes": soak,
            "pokes_sent": len(soak),
            "pokes_fully_delivered": sum(p["received"] == p["expected"] for p in soak),
            "clients_lost": lost,
            "warmup_s": warm,
            "rss_kb_after_warmup": warm_sample["rss_kb_total"],
            "rss_kb_end": end_sample["rss_kb_total"],
            "rss_drift_percent_total": drift_total,
            "rss_drift_percent_each": drift_each,
            "server_cpu_percent_median": statistics.median(s["cpu_percent"] for s in samples),
            "all_latency_ms_last_median": statistics.median(p["last_ms"] for p in soak_all)
            if soak_all
            else None,
            "group_latency_ms_last_median": statistics.median(p["last_ms"] for p in soak_group)
            if soak_group
            else None,
            "group_latency_ms_last_max": max(p["last_ms"] for p in soak_group)
            if soak_group
            else None,
        }
        last = data["headline"]["latency_ms_last"]
        data["goals"] = [
            {
                "goal": f"one poke to all {ready:,} delivered within {GOAL_LAST_S:g} s (median "
                "over the headline pokes of the time until the last client)",
                "value_ms": last,
                "met": last <= GOAL_LAST_S * 1000
                and data["headline"]["every_client_got_every_poke"],
            },
            {
                "goal": "RSS drift over the soak after warm-up, all servers (reported; <= 5%)",
                "value_percent": drift_total,
                "met": drift_total <= 5.0,
            },
        ]
    finally:
        for gen in gens:
            with contextlib.suppress(Exception):
                await gen.stop()
        if publisher is not None:
            with contextlib.suppress(Exception):
                await publisher.close()
        fleet.stop()
        shutil.rmtree(work, ignore_errors=True)
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return data


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(15, 5))
    samples = data["soak"]["samples"]
    ts = [s["t"] / 60 for s in samples]
    for k in range(data["servers"]):
        ax1.plot(ts, [s["rss_kb_each"][k] / 1024 for s in samples], label=f"server {k + 1}")
    ax1.set_xlabel("soak time, minutes")
    ax1.set_ylabel("RSS, MB")
    ax1.set_ylim(bottom=0)
    ax1.axvline(data["soak"]["warmup_s"] / 60, color="gray", linestyle=":", linewidth=1)
    ax1.set_title(
        f"RSS per push server ({data['setup']['ready']:,} connections); drift after warm-up "
        f"{data['soak']['rss_drift_percent_total']:+.2f}%",
        fontsize=10,
    )
    ax1.legend(fontsize=8)
    pokes = data["soak"]["pokes"]
    for tgt, color, label in (
        ("group", "tab:blue", "poke to one group"),
        ("all", "tab:red", "poke to all"),
    ):
        sel = [p for p in pokes if (p["target"] == "all") == (tgt == "all")]
        ax2.scatter(
            [p["t"] / 60 for p in sel],
            [p["last_ms"] for p in sel],
            s=6,
            color=color,
            label=f"{label}: last client",
        )
        ax2.scatter(
            [p["t"] / 60 for p in sel],
            [p["p50_ms"] for p in sel],
            s=3,
            color=color,
            alpha=0.3,
            label=f"{label}: median client",
        )
    ax2.axhline(GOAL_LAST_S * 1000, color="black", linestyle="--", linewidth=1)
    ax2.set_yscale("log")
    ax2.set_xlabel("soak time, minutes")
    ax2.set_ylabel("publish to arrival, ms")
    ax2.set_title("delivery latency of each soak poke", fontsize=10)
    ax2.legend(fontsize=8)
    h = data["headline"]
    title = (
        f"{data['setup']['ready']:,} WebSockets on {data['servers']} push processes: poke to all "
        f"p50/p99/last {h['latency_ms_p50']:.0f}/{h['latency_ms_p99']:.0f}/"
        f"{h['latency_ms_last']:.0f} ms"
    )
    finish(fig, path, title, data["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=None, help="N (default 100000; quick 600)")
    parser.add_argument("--servers", type=int, default=None, help="push processes (default 6)")
    parser.add_argument("--pokes", type=int, default=None, help="headline pokes to all (5)")
    parser.add_argument("--soak-seconds", type=float, default=None, help="default 600")
    parser.add_argument("--soak-interval", type=float, default=None, help="s between soak pokes")
    parser.add_argument("--all-every", type=int, default=None, help="every Nth soak poke to all")
    parser.add_argument("--warmup", type=float, default=60.0, help="soak warm-up, s (drift base)")
    parser.add_argument("--sample-interval", type=float, default=None, help="RSS sampling, s")
    parser.add_argument("--print-interval", type=float, default=30.0, help="progress, s")
    parser.add_argument("--concurrency", type=int, default=64, help="handshakes per generator")
    parser.add_argument("--connect-seconds", type=float, default=600.0, help="connect deadline")
    parser.add_argument("--quick", action="store_true", help="600 clients, 2 servers, 4 s soak")
    parser.add_argument("--out", type=Path, default=RESULTS / "scale")
    args = parser.parse_args(argv)
    if shutil.which("cc") is None:
        parser.error("needs a C compiler (cc) for bench/fanout_load.c")
    q = args.quick
    args.clients = args.clients or (600 if q else 100_000)
    args.servers = args.servers or (2 if q else 6)
    args.pokes = args.pokes or (2 if q else 5)
    args.soak_seconds = args.soak_seconds if args.soak_seconds is not None else (4 if q else 600)
    args.soak_interval = args.soak_interval or (0.5 if q else 1.0)
    args.pause = 0.3 if q else 1.0  # between headline pokes, and for the last pokes to land
    args.all_every = args.all_every or (3 if q else 60)
    args.sample_interval = args.sample_interval or (0.5 if q else 5.0)
    if q:
        args.warmup = min(args.warmup, 2.0)
        args.print_interval = min(args.print_interval, 2.0)
    global PER_GENERATOR
    if q:
        PER_GENERATOR = 200  # several groups even at a tiny size
    if args.clients > args.servers * SERVER_MAX_CONNECTIONS:
        parser.error(f"{args.clients} clients need more than {args.servers} servers")
    args.max_version = 2 + args.pokes + int(args.soak_seconds / args.soak_interval) + 10
    data = asyncio.run(run(args))
    h, s = data["headline"], data["soak"]
    print(
        f"\nheadline: {data['setup']['ready']:,} clients, poke to all p50/p99/last "
        f"{h['latency_ms_p50']:.0f}/{h['latency_ms_p99']:.0f}/{h['latency_ms_last']:.0f} ms, "
        f"{h['server_cpu_us_per_conn_poke']} us CPU/conn/poke, RSS "
        f"{data['rss']['per_connection_kb']} KB/conn\n"
        f"soak: {s['pokes_fully_delivered']}/{s['pokes_sent']} pokes fully delivered, RSS drift "
        f"{s['rss_drift_percent_total']:+.2f}% (each {s['rss_drift_percent_each']})"
    )
    print_goals(data)
    save(data, args.out, plot, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
