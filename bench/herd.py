"""The herd: thousands of clients of one project poked at once by one edit.

A real ``tidings app`` (SQLite or PostgreSQL, pinned to core 0), a private Redis
and one ``tidings push`` process; N lean clients (bench/lib/crowd.py: the real
sync controller on raw sockets, each with its own WebSocket and HTTP
connections) all watching one project and all current. Then one edit per round:
every client is poked and polls. Four configurations side by side: the app's
poll collapsing (single-flight, ``TIDINGS_POLL_COLLAPSING``) on and off x the
client's poke jitter (a poll waits uniform [0, 0.25 s] after a poke) on and off.

Per configuration (median over rounds): the app's event-store reads (its
``tidings_store_reads_total{kind="events"}`` counter), polls served by outcome,
the time from the commit until each client applied the edit (p50/p99/last) and
the app's CPU. Writes bench/results/herd.json and .png.

    .venv/bin/python bench/herd.py [--clients 5000] [--rounds 3] [--stores sqlite,postgres]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))
from lib.stack import (
    Crowd,
    Process,
    Redis,
    cpu_seconds,
    database,
    log,
    metric,
    percentile,
    source_addresses,
    sum_metric,
    tidings_cli,
    wait_until,
)
from machine import describe
from report import finish, pyplot, save

from tidings.protocol.tokens import KeyRing

RESULTS = Path(__file__).resolve().parent / "results"
#: The controller's documented poke delay (docs/PROTOCOL.md 5.3): jitter on.
POKE_DELAY = 0.25
#: (name, poll collapsing, client poke delay)
CONFIGS = (
    ("collapse+jitter", True, POKE_DELAY),
    ("collapse", True, 0.0),
    ("jitter", False, POKE_DELAY),
    ("neither", False, 0.0),
)


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listen queue was full
    (TcpExt ListenOverflows: machine-wide, other work on the box included)."""
    with open("/proc/net/netstat") as f:
        lines = f.read().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", 0))
    return 0


class CpuSampler(threading.Thread):
    """The app's CPU time every 20 ms, to tell when the app finished the herd's work
    (the clients' own recorded times also include the crowd process's queueing)."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.halt = threading.Event()
        self.samples: list[tuple[float, float]] = []

    def run(self) -> None:
        while not self.halt.is_set():
            self.samples.append((time.time(), cpu_seconds(self.pid)))
            self.halt.wait(0.02)

    def done_at(self, t0: float) -> float:
        """Milliseconds from ``t0`` until the app had spent all but 30 ms of the
        CPU it spent in the round (its idle timers cost a few ms per second)."""
        if not self.samples:
            return 0.0
        final = self.samples[-1][1]
        for t, cpu in self.samples:
            if cpu >= final - 0.03:
                return round((t - t0) * 1000, 1)
        return round((self.samples[-1][0] - t0) * 1000, 1)


def run_config(
    store: str, name: str, collapsing: bool, poke_delay: float, args: argparse.Namespace, work: Path
) -> dict[str, Any]:
    redis = Redis(work)
    db_url, pg = database(store)
    keys = KeyRing.generate()
    procs: list[Any] = [redis]
    try:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "REDIS_"))},
            "TIDINGS_DATABASE_URL": db_url,
            "REDIS_URL": redis.url,
            "TIDINGS_PUSH_KEYS": keys.spec(),
            # Regular polls an hour apart: during a round only the herd polls.
            "TIDINGS_POLL_INTERVAL_PUSH": "3600",
            "TIDINGS_POLL_INTERVAL": "3600",
            "TIDINGS_POLL_COLLAPSING": "1" if collapsing else "0",
            "TIDINGS_PUSH_IP_RATE": "0",
        }
        push = Process("push", env, 1, ["--max-connections", "19500", "--log-level", "WARNING"])
        procs.append(push)
        env["TIDINGS_PUSH_URL"] = push.base
        tidings_cli("users", "add", "herd@x.io", "Herd", "--password", "password1", env=env)
        token = tidings_cli("tokens", "create", "herd@x.io", env=env)
        app = Process("app", env, 0, [])
        procs.append(app)
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=app.base, headers=headers, timeout=30) as http:
            project = http.post("/api/projects", json={"name": "herd"}).json()["project"]
            version = http.get(f"/api/projects/{project}").json()["version"]
            advice = http.get("/api/client-config").json()["advice"]
            spec = {
                "app_host": "127.0.0.1",
                "app_port": app.port,
                "push_host": "127.0.0.1",
                "push_port": push.port,
                "api_token": token,
                "advice": advice,
                "clients": [[project, version]] * args.clients,
                "sources": source_addresses(args.clients),
                "controller": {"poke_delay": poke_delay, "telemetry_interval": 3600.0},
                "start_over": args.clients / 400,
            }
            crowd = Crowd(spec, 1, work)
            procs.append(crowd)
            took = wait_until(
                lambda: crowd.progress.get("status", {}).get("live", 0) == args.clients,
                120 + args.clients / 50,
                "every client live",
            )
            log(f"{store} {name}: {args.clients} clients live after {took:.1f} s")
            rounds = []
            for r in range(args.rounds):
                time.sleep(1.0)
                if args.connections == "warm":
                    # Within uvicorn's 5 s keep-alive: the herd's polls find open connections.
                    crowd.send({"cmd": "warm"}, "warmed", timeout=120)
                    time.sleep(0.5)
                overflows0 = listen_overflows()
                before = app.metrics()
                cpu0 = app.cpu()
                others0 = push.cpu(), cpu_seconds(crowd.proc.pid)
                t0 = time.time()
                answer = http.post(
                    f"/api/projects/{project}/commands",
                    json={"command": {"type": "rename_project", "name": f"herd {r}"}},
                )
                answer.raise_for_status()
                target = answer.json()["version"]
                sampler = CpuSampler(app.pid)
                sampler.start()
                try:
                    wait_until(
                        lambda v=target: (
                            crowd.progress.get("applied", {}).get(str(v), 0) == args.clients
                        ),
                        90,
                        f"every client at version {target}",
                        0.05,
                    )
                    wall = time.time() - t0
                    time.sleep(0.6)  # stragglers' second polls, if any, land in this round
                finally:
                    sampler.halt.set()
                    sampler.join(timeout=5)
                cpu = app.cpu() - cpu0
                overflows = listen_overflows() - overflows0
                served_ms = sampler.done_at(t0)
                push_cpu = push.cpu() - others0[0]
                clients_cpu = cpu_seconds(crowd.proc.pid) - others0[1]
                after = app.metrics()
                polls = {
                    k: v - sum_metric(before, "tidings_polls_total").get(k, 0)
                    for k, v in sum_metric(after, "tidings_polls_total").items()
                }
                reads = {
                    k: v - sum_metric(before, "tidings_store_reads_total").get(k, 0)
                    for k, v in sum_metric(after, "tidings_store_reads_total").items()
                }
                rounds.append(
                    {
                        "version": target,
                        "store_reads": reads,
                        "polls": polls,
                        "app_cpu_s": round(cpu, 3),
                        "app_served_ms": served_ms,
                        "listen_overflows_machine": overflows,
                        "push_cpu_s": round(push_cpu, 3),
                        "clients_cpu_s": round(clients_cpu, 3),
                        "wall_s": round(wall, 3),
                        "commands": metric(after, "tidings_commands_total", outcome="applied")
                        - metric(before, "tidings_commands_total", outcome="applied"),
                    }
                )
                log(
                    f"{store} {name} round {r + 1}: events reads {reads.get('events', 0):.0f}, "
                    f"polls {sum(polls.values()):.0f}, all current in {wall:.2f} s, "
                    f"app done after {served_ms / 1000:.2f} s; "
                    f"CPU app {cpu:.2f} s, push {push_cpu:.2f} s, clients {clients_cpu:.2f} s"
                )
            data = crowd.report(work / "crowd-report.json")
        by_version: dict[int, list[int]] = {}
        for _, _, v, ms, _ in data["samples"]:
            by_version.setdefault(v, []).append(ms)
        for rnd in rounds:
            ms = by_version.get(rnd["version"], [])
            rnd["clients_current"] = len(ms)
            rnd["commit_to_current_ms"] = {
                "p50": percentile(ms, 50),
                "p99": percentile(ms, 99),
                "last": max(ms) if ms else None,
            }
        return summarize(rounds, args.clients, collapsing, poke_delay)
    finally:
        for proc in reversed(procs):
            proc.stop()
        if pg is not None:
            pg.stop()


def summarize(
    rounds: list[dict[str, Any]], clients: int, collapsing: bool, poke_delay: float
) -> dict[str, Any]:
    def med(values: list[float]) -> float:
        return round(statistics.median(values), 3)

    return {
        "collapsing": collapsing,
        "poke_delay_s": poke_delay,
        "clients": clients,
        "rounds": rounds,
        "events_reads": med([r["store_reads"].get("events", 0) for r in rounds]),
        "all_reads": med([sum(r["store_reads"].values()) for r in rounds]),
        "polls_served": med([sum(r["polls"].values()) for r in rounds]),
        "polls_with_events": med([r["polls"].get("events", 0) for r in rounds]),
        "commit_to_current_ms_p50": med([r["commit_to_current_ms"]["p50"] for r in rounds]),
        "commit_to_current_ms_p99": med([r["commit_to_current_ms"]["p99"] for r in rounds]),
        "commit_to_current_ms_last": med([r["commit_to_current_ms"]["last"] or 0 for r in rounds]),
        "app_cpu_s": med([r["app_cpu_s"] for r in rounds]),
        "app_served_ms": med([r["app_served_ms"] for r in rounds]),
        "listen_overflows_machine": med([r["listen_overflows_machine"] for r in rounds]),
        "push_cpu_s": med([r["push_cpu_s"] for r in rounds]),
        "clients_cpu_s": med([r["clients_cpu_s"] for r in rounds]),
        "every_client_current": all(r["clients_current"] == clients for r in rounds),
    }


def plot(results: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    stores = list(results["stores"])
    names = list(next(iter(results["stores"].values())))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    width = 0.8 / max(1, len(stores))
    panels = (
        ("events_reads", "event-store reads per herd (log)", True),
        ("commit_to_current_ms_last", "commit -> last client current, ms", False),
        ("app_cpu_s", "app CPU per herd, s", False),
    )
    for ax, (key, title, log_scale) in zip(axes, panels, strict=True):
        for n, store in enumerate(stores):
            xs = [j + n * width for j in range(len(names))]
            ax.bar(xs, [results["stores"][store][c][key] for c in names], width, label=store)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(names))], names, rotation=15)
        ax.set_title(title)
        if log_scale:
            ax.set_yscale("log")
        ax.legend()
    fig.suptitle(f"tidings herd: {results['params']['clients']} clients of one project, one edit")
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3, help="edits (herds) per configuration")
    parser.add_argument("--stores", default="sqlite,postgres", help="comma-separated")
    parser.add_argument(
        "--connections",
        choices=("warm", "cold"),
        default="warm",
        help="warm: each client holds a kept-alive connection when poked (a load balancer's "
        "case); cold: each poll connects anew (the app's listen queue takes the herd)",
    )
    parser.add_argument(
        "--configs", default=",".join(c[0] for c in CONFIGS), help="comma-separated subset"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "herd")
    args = parser.parse_args()
    results: dict[str, Any] = {
        "benchmark": "herd",
        "machine": describe(),
        "params": {
            "clients": args.clients,
            "rounds": args.rounds,
            "poke_delay_s": POKE_DELAY,
            "connections": args.connections,
        },
        "stores": {},
    }
    with tempfile.TemporaryDirectory(prefix="tidings-herd-") as tmp:
        for store in args.stores.split(","):
            results["stores"][store] = {}
            for name, collapsing, delay in CONFIGS:
                if name not in args.configs.split(","):
                    continue
                results["stores"][store][name] = run_config(
                    store, name, collapsing, delay, args, Path(tmp)
                )
    print(
        f"\n{'store':<9} {'collapsing':<10} {'jitter':<6} {'events reads':>12} {'polls':>7} "
        f"{'p50 ms':>8} {'p99 ms':>8} {'last ms':>8} {'app done ms':>11} {'app CPU s':>9}"
    )
    goals = []
    for store, configs in results["stores"].items():
        for name, r in configs.items():
            print(
                f"{store:<9} {'on' if r['collapsing'] else 'off':<10} "
                f"{'on' if r['poke_delay_s'] else 'off':<6} "
                f"{r['events_reads']:>12.0f} {r['polls_served']:>7.0f} "
                f"{r['commit_to_current_ms_p50']:>8.0f} {r['commit_to_current_ms_p99']:>8.0f} "
                f"{r['commit_to_current_ms_last']:>8.0f} {r['app_served_ms']:>11.0f} "
                f"{r['app_cpu_s']:>9.2f}"
            )
            if r["collapsing"]:
                # Every client was at the same version: one distinct (project, since).
                per_distinct = r["events_reads"] / 1
                goals.append(
                    {
                        "store": store,
                        "config": name,
                        "reads_per_distinct_since": per_distinct,
                        "met": per_distinct == 1,
                    }
                )
    results["goals"] = goals
    print("\ngoal: one event-store read per distinct (project, since) with collapsing")
    for g in goals:
        verdict = "met" if g["met"] else "MISSED"
        print(f"  {g['store']:<9} {g['config']:<24} {g['reads_per_distinct_since']:.0f}  {verdict}")
    save(results, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
