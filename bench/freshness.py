"""Freshness economics: staleness against polls and bytes, poll-only vs push.

A real ``tidings app`` on PostgreSQL (pinned to core 0), a private Redis, one
``tidings push`` process, N lean clients across M projects (bench/lib/crowd.py:
the real sync controller on raw sockets, one WebSocket and its own HTTP
connections per client, every byte counted, HTTP headers and WebSocket framing
included) and a writer committing a steady stream of edits (``rename_project``
on a random non-idle project; a tenth of the projects are never edited: their
clients give the idle cost). Each client records commit -> applied for every
event it applies (the event's ``ts`` is its commit time). Four modes, each with
fresh app, push server and clients on the same database:

- ``poll``: the kill switch off (``tidings flags push off``): poll at the short interval;
- ``poke``: push on: poll at the long interval and at once (after the poke jitter) on a poke;
- ``full``: ``TIDINGS_FULL_PUSH=1``: the events ride on the pokes, no poll needed;
- ``poke_push_killed``: as ``poke``, the push server killed (-9) a third of the way
  in and restarted at two thirds (staleness before / during / after).

Writes bench/results/freshness.json and .png.

    .venv/bin/python bench/freshness.py [--clients 2000] [--projects 200] [--duration 180]
"""

from __future__ import annotations

import argparse
import os
import random
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
    Postgres,
    Process,
    Redis,
    log,
    percentile,
    source_addresses,
    tidings_cli,
    wait_until,
)
from machine import describe
from report import finish, pyplot, save

from tidings.protocol.tokens import KeyRing

RESULTS = Path(__file__).resolve().parent / "results"
MODES = ("poll", "poke", "full", "poke_push_killed")
#: Clients per crowd process (each holds two sockets per client, far under the
#: 20,000 open files a process may have here; smaller crowds queue less).
CLIENTS_PER_CROWD = 1000
HOUR = 3600.0


class Writer(threading.Thread):
    """Commits ``rate`` edits per second on random projects until stopped."""

    def __init__(self, base: str, token: str, projects: list[int], rate: float) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        self.projects = projects
        self.rate = rate
        self.halt = threading.Event()
        self.done = 0
        self.failed = 0
        self.rng = random.Random(7)

    def run(self) -> None:
        next_at = time.monotonic()
        while not self.halt.is_set():
            project = self.rng.choice(self.projects)
            try:
                r = self.http.post(
                    f"/api/projects/{project}/commands",
                    json={"command": {"type": "rename_project", "name": f"p{self.done}"}},
                )
                if r.status_code == 200:
                    self.done += 1
                else:
                    self.failed += 1
            except httpx.HTTPError:
                self.failed += 1
            next_at += 1 / self.rate
            self.halt.wait(max(0.0, next_at - time.monotonic()))
        self.http.close()


def run_mode(
    mode: str,
    args: argparse.Namespace,
    base_env: dict[str, str],
    token: str,
    projects: list[int],
    idle: list[int],
    work: Path,
) -> dict[str, Any]:
    env = dict(base_env)
    if mode == "full":
        env["TIDINGS_FULL_PUSH"] = "1"
    tidings_cli("flags", "push", "off" if mode == "poll" else "on", env=env)
    procs: list[Any] = []
    writer: Writer | None = None
    try:
        push = Process("push", env, 1, ["--log-level", "WARNING"])
        procs.append(push)
        env["TIDINGS_PUSH_URL"] = push.base
        app = Process("app", env, 0, [])
        procs.append(app)
        advice = httpx.get(
            app.base + "/api/client-config",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        ).json()["advice"]
        # Poll-only may run fewer clients (--poll-clients): its per-client figures
        # are set by the interval alone, as long as the app keeps up.
        n_clients = args.poll_clients if mode == "poll" and args.poll_clients else args.clients
        start_over = args.start_over * n_clients / args.clients
        plan = [[projects[n % len(projects)], None] for n in range(n_clients)]
        # Shuffled: which crowd a client is in, and when it starts, must not depend on
        # its project (otherwise the idle projects' clients would all start last, and
        # their long polls fall outside the measured window).
        random.Random(7).shuffle(plan)
        crowds: list[Crowd] = []
        sources = source_addresses(n_clients)
        for start in range(0, n_clients, CLIENTS_PER_CROWD):
            spec = {
                "app_host": "127.0.0.1",
                "app_port": app.port,
                "push_host": "127.0.0.1",
                "push_port": push.port,
                "api_token": token,
                "advice": advice,
                "clients": plan[start : start + CLIENTS_PER_CROWD],
                "index_base": start,
                "sources": sources,
                "idle_projects": idle,
                "controller": {"poke_delay": args.poke_delay},
                "seed": 11 + start,
                # Every crowd spreads its clients over the whole start_over: the
                # clients' poll phases end up spread as a live population's are.
                "start_over": start_over,
            }
            crowd = Crowd(spec, 1, work)
            crowds.append(crowd)
            procs.append(crowd)
        want = "polling_push_off" if mode == "poll" else "live"

        def ready() -> bool:
            return sum(c.progress.get("status", {}).get(want, 0) for c in crowds) == n_clients

        took = wait_until(ready, start_over + 120, f"{n_clients} clients {want}")
        log(f"{mode}: {n_clients} clients {want} after {took:.1f} s; warming up")
        writer = Writer(app.base, token, [p for p in projects if p not in idle], args.edits_per_s)
        writer.start()
        time.sleep(args.warmup)
        marks = ["start"]
        edits0 = writer.done
        cpu0 = app.cpu()
        t0 = time.time()
        for c in crowds:
            c.mark("start")
        if mode == "poke_push_killed":
            third = args.duration / 3
            time.sleep(third)
            # Phases are dated by the driver's clock at the event: the crowds read
            # the mark late while they handle thousands of lost connections.
            killed_at = time.time()
            push.kill()
            for c in crowds:
                c.mark("killed", killed_at)
            log(f"{mode}: push server killed (-9)")
            time.sleep(third)
            restarted_at = time.time()
            push = Process("push", env, 1, ["--log-level", "WARNING"], port=push.port)
            # First in the list, so stopped last, after its clients: a push server
            # stopped with clients on it drains them over its whole window.
            procs.insert(0, push)
            for c in crowds:
                c.mark("restarted", restarted_at)
            log(f"{mode}: push server restarted")
            time.sleep(third)
            marks += ["killed", "restarted"]
        else:
            deadline = time.monotonic() + args.duration
            while time.monotonic() < deadline:
                time.sleep(min(10.0, deadline - time.monotonic()))
                statuses: dict[str, int] = {}
                for c in crowds:
                    for k, v in c.progress.get("status", {}).items():
                        statuses[k] = statuses.get(k, 0) + v
                log(f"{mode}: {writer.done} edits so far; clients {statuses}")
        for c in crowds:
            c.mark("end")
        marks.append("end")
        elapsed = time.time() - t0
        app_cpu = app.cpu() - cpu0
        edits_in_run = writer.done - edits0
        writer.halt.set()
        writer.join(timeout=15)
        reports = [c.report(work / f"report-{mode}-{n}.json") for n, c in enumerate(crowds)]
    finally:
        if writer is not None:
            writer.halt.set()
        for proc in reversed(procs):
            proc.stop()
    return summarize(mode, args, reports, marks, elapsed, app_cpu, edits_in_run)


def _add(total: dict[str, Any], part: dict[str, Any]) -> None:
    for key, value in part.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        else:
            total[key] = total.get(key, 0) + value


def _delta(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in b.items():
        if isinstance(value, dict):
            out[key] = _delta(a.get(key, {}), value)
        else:
            out[key] = value - a.get(key, 0)
    return out


def summarize(
    mode: str,
    args: argparse.Namespace,
    reports: list[dict[str, Any]],
    marks: list[str],
    elapsed: float,
    app_cpu: float,
    edits: int,
) -> dict[str, Any]:
    # Counters summed over crowd processes at each mark; time from the first process.
    at: dict[str, dict[str, Any]] = {}
    times: dict[str, float] = {}
    clients: dict[str, int] = {}
    for report in reports:
        for m in report["marks"]:
            _add(at.setdefault(m["name"], {}), m["groups"])
            times.setdefault(m["name"], m["t"])
            if m["name"] == "start":
                _add(clients, m["clients"])
    window = _delta(at["start"], at["end"])
    hours = elapsed / HOUR
    n_all = clients["active"] + clients["idle"]

    def traffic(groups: list[str]) -> tuple[float, float, dict[str, float]]:
        total_bytes = 0.0
        requests: dict[str, float] = {}
        for g in groups:
            w = window[g]
            total_bytes += w["app_bytes_out"] + w["app_bytes_in"]
            total_bytes += w["push_bytes_out"] + w["push_bytes_in"]
            for kind, n in w["requests"].items():
                requests[kind] = requests.get(kind, 0) + n
        return total_bytes, sum(requests.values()), requests

    all_bytes, all_requests, by_kind = traffic(["active", "idle"])
    idle_bytes, _, idle_kinds = traffic(["idle"])
    push_bytes = sum(window[g]["push_bytes_in"] + window[g]["push_bytes_out"] for g in window)
    samples = [s for r in reports for s in r["samples"]]

    def committed(sample: list[Any]) -> float:
        """A sample's commit time: applied time minus staleness."""
        return float(sample[0]) - sample[3] / 1000

    def staleness(lo: float, hi: float) -> dict[str, Any]:
        # Phase by commit time.
        ms = [s[3] for s in samples if lo <= committed(s) < hi]
        vias: dict[str, int] = {}
        for s in samples:
            if lo <= committed(s) < hi:
                vias[s[4]] = vias.get(s[4], 0) + 1
        return {
            "samples": len(ms),
            "p50_ms": percentile(ms, 50),
            "p99_ms": percentile(ms, 99),
            "max_ms": max(ms) if ms else 0,
            "via": vias,
        }

    whole = staleness(times["start"], times["end"])
    result: dict[str, Any] = {
        "staleness_p50_ms": whole["p50_ms"],
        "staleness_p99_ms": whole["p99_ms"],
        "app_requests_per_s": round(all_requests / elapsed, 2),
        "polls_per_client_hour": round(by_kind.get("poll", 0) / n_all / hours, 1),
        "bytes_per_client_hour": round(all_bytes / n_all / hours, 1),
        "idle_bytes_per_client_hour": round(idle_bytes / max(1, clients["idle"]) / hours, 1),
        # Extra figures.
        "staleness": whole,
        "duration_s": round(elapsed, 1),
        "clients": clients,
        "requests_by_kind": by_kind,
        "idle_requests_by_kind": idle_kinds,
        "push_bytes_share": round(push_bytes / all_bytes, 3) if all_bytes else 0,
        "app_connects_per_s": round(sum(window[g]["app_connects"] for g in window) / elapsed, 2),
        "errors": {k: v for g in window for k, v in window[g]["errors"].items() if v},
        "edits": edits,
        "edits_per_s_measured": round(edits / elapsed, 2),
        "app_cpu_percent": round(app_cpu / elapsed * 100, 1),
    }
    if "killed" in times:
        result["phases"] = {
            "before": staleness(times["start"], times["killed"]),
            "during": staleness(times["killed"], times["restarted"]),
            "after": staleness(times["restarted"], times["end"]),
        }
        # Where the slow samples of the phase before the kill were committed,
        # seconds before the kill: losses at the kill itself, or something else.
        killed = times["killed"]
        slow = sorted(
            (round(killed - committed(s), 2), s[3])
            for s in samples
            if times["start"] <= committed(s) < killed and s[3] >= 1000
        )
        result["phases"]["before"]["slow_committed_s_before_kill"] = slow[:200]
    log(
        f"{mode}: staleness p50 {result['staleness_p50_ms']:.0f} ms p99 "
        f"{result['staleness_p99_ms']:.0f} ms; {result['app_requests_per_s']:.1f} app req/s; "
        f"{result['polls_per_client_hour']:.0f} polls and "
        f"{result['bytes_per_client_hour'] / 1024:.1f} KiB per client-hour "
        f"(idle {result['idle_bytes_per_client_hour'] / 1024:.1f} KiB)"
    )
    return result


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    m = data["modes"]
    p = data["params"]
    out = []
    for mode in ("poke", "full"):
        if mode in m:
            out.append(
                {
                    "goal": f"{mode}: staleness p99 <= 250 ms",
                    "measured": f"{m[mode]['staleness_p99_ms']:.0f} ms",
                    "met": m[mode]["staleness_p99_ms"] <= 250,
                }
            )
    if "poll" in m:
        for mode in ("poke", "full"):
            if mode not in m:
                continue
            polls = m["poll"]["polls_per_client_hour"] / max(m[mode]["polls_per_client_hour"], 1e-9)
            idle = m["poll"]["idle_bytes_per_client_hour"] / max(
                m[mode]["idle_bytes_per_client_hour"], 1e-9
            )
            out.append(
                {
                    "goal": f"{mode}: polls per client-hour >= 10x fewer than poll-only",
                    "measured": f"{polls:.1f}x",
                    "met": polls >= 10,
                }
            )
            out.append(
                {
                    "goal": f"{mode}: bytes per idle client-hour >= 20x fewer than poll-only",
                    "measured": f"{idle:.1f}x",
                    "met": idle >= 20,
                }
            )
    killed = m.get("poke_push_killed", {}).get("phases", {}).get("during")
    if killed:
        bound = p["poll_interval_s"] * (1 + p["jitter_s"]) * 1000
        out.append(
            {
                "goal": f"push down: staleness <= short interval + jitter ({bound:.0f} ms)",
                "measured": f"p99 {killed['p99_ms']:.0f} ms, max {killed['max_ms']:.0f} ms",
                "met": killed["max_ms"] <= bound,
            }
        )
    return out


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    modes = list(data["modes"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    panels = (
        (("staleness_p50_ms", "staleness_p99_ms"), "staleness, ms (log)", True),
        (("polls_per_client_hour",), "polls per client-hour", False),
        (
            ("bytes_per_client_hour", "idle_bytes_per_client_hour"),
            "bytes per client-hour (log)",
            True,
        ),
    )
    for ax, (keys, title, log_scale) in zip(axes, panels, strict=True):
        width = 0.8 / len(keys)
        for n, key in enumerate(keys):
            xs = [j + n * width for j in range(len(modes))]
            ax.bar(xs, [max(data["modes"][m][key], 1e-3) for m in modes], width, label=key)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(modes))], modes, rotation=15)
        ax.set_title(title)
        if log_scale:
            ax.set_yscale("log")
        ax.legend(fontsize=7)
    p = data["params"]
    fig.suptitle(
        f"tidings freshness: {p['clients']} clients, {p['projects']} projects, "
        f"{p['edits_per_s']} edits/s, poll {p['poll_interval_s']} s / {p['poll_interval_push_s']} s"
    )
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument(
        "--poll-clients",
        type=int,
        default=None,
        help="clients in the poll-only mode (default: --clients); for sizes whose "
        "poll-only load is more than the app serves on this machine",
    )
    parser.add_argument("--projects", type=int, default=200)
    parser.add_argument("--edits-per-s", type=float, default=5.0)
    parser.add_argument("--poll-interval", type=float, default=5.0, help="short interval, s")
    parser.add_argument("--poll-interval-push", type=float, default=300.0, help="long interval, s")
    parser.add_argument("--jitter", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=180.0, help="measured seconds per mode")
    parser.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring")
    parser.add_argument(
        "--start-over", type=float, default=None, help="seconds over which all clients start"
    )
    parser.add_argument("--idle-fraction", type=float, default=0.1)
    parser.add_argument(
        "--poke-delay", type=float, default=0.1, help="client poke jitter, s (documented: 0.1)"
    )
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--out", type=Path, default=RESULTS / "freshness")
    args = parser.parse_args()
    if args.start_over is None:
        args.start_over = args.clients / 250
    data: dict[str, Any] = {
        "benchmark": "freshness",
        "machine": describe(),
        "params": {
            "clients": args.clients,
            "poll_clients": args.poll_clients or args.clients,
            "projects": args.projects,
            "edits_per_s": args.edits_per_s,
            "poll_interval_s": args.poll_interval,
            "poll_interval_push_s": args.poll_interval_push,
            "jitter_s": args.jitter,
            "duration_s": args.duration,
            "idle_projects": max(1, round(args.projects * args.idle_fraction)),
            "warmup_s": args.warmup,
            "poke_delay_s": args.poke_delay,
            "store": "postgres",
        },
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="tidings-fresh-") as tmp:
        work = Path(tmp)
        redis = Redis(work)
        pg = Postgres()
        try:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "REDIS_"))}
            env.update(
                {
                    "TIDINGS_DATABASE_URL": pg.url,
                    "REDIS_URL": redis.url,
                    "TIDINGS_PUSH_KEYS": KeyRing.generate().spec(),
                    "TIDINGS_POLL_INTERVAL": str(args.poll_interval),
                    "TIDINGS_POLL_INTERVAL_PUSH": str(args.poll_interval_push),
                    "TIDINGS_POLL_JITTER": str(args.jitter),
                    "TIDINGS_PUSH_IP_RATE": "0",
                    "TIDINGS_TELEMETRY_LIMITS": "0",  # one user stands for every client
                    "TIDINGS_PUSH_MAX_CONNECTIONS": "19500",
                }
            )
            tidings_cli("db", "upgrade", env=env)
            tidings_cli("users", "add", "fresh@x.io", "Fresh", "--password", "password1", env=env)
            token = tidings_cli("tokens", "create", "fresh@x.io", env=env)
            setup = Process("app", env, 0, [])
            try:
                with httpx.Client(
                    base_url=setup.base, headers={"Authorization": f"Bearer {token}"}, timeout=30
                ) as http:
                    projects = [
                        http.post("/api/projects", json={"name": f"p{n}"}).json()["project"]
                        for n in range(args.projects)
                    ]
            finally:
                setup.stop()
            idle = projects[-data["params"]["idle_projects"] :]
            log(f"{len(projects)} projects ({len(idle)} idle), {args.clients} clients")
            for mode in args.modes.split(","):
                data["modes"][mode] = run_mode(mode, args, env, token, projects, idle, work)
        finally:
            redis.stop()
            pg.stop()
    data["goals"] = goals(data)
    print(
        f"\n{'mode':<18} {'stale p50':>9} {'p99 ms':>7} {'app req/s':>9} {'polls/c-h':>9} "
        f"{'KiB/c-h':>8} {'idle KiB/c-h':>12}"
    )
    for mode, r in data["modes"].items():
        print(
            f"{mode:<18} {r['staleness_p50_ms']:>9.0f} {r['staleness_p99_ms']:>7.0f} "
            f"{r['app_requests_per_s']:>9.1f} {r['polls_per_client_hour']:>9.0f} "
            f"{r['bytes_per_client_hour'] / 1024:>8.1f} "
            f"{r['idle_bytes_per_client_hour'] / 1024:>12.1f}"
        )
        for phase, s in r.get("phases", {}).items():
            print(f"  {phase:<16} {s['p50_ms']:>9.0f} {s['p99_ms']:>7.0f}  (max {s['max_ms']} ms)")
    print("\ngoals:")
    for g in data["goals"]:
        print(f"  {'met   ' if g['met'] else 'MISSED'} {g['goal']}: {g['measured']}")
    save(data, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
