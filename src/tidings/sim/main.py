"""``tidings sim <scenario>``: arguments, progress lines, the table, JSON and plots."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from tidings.sim.clock import EPOCH
from tidings.sim.fleet import ServerModel, calibrate_write_cost
from tidings.sim.network import NetworkModel
from tidings.sim.world import Mode, SimConfig, World

SCENARIOS = ("steady", "crash", "deploy", "pause", "compare", "fanout")

#: Measured fan-out used to calibrate push delivery when it exists (see fleet.py).
DEFAULT_FANOUT = Path("bench/results/fanout_headline.json")

COLUMNS = (
    ("staleness_p50_ms", "p50 ms"),
    ("staleness_p99_ms", "p99 ms"),
    ("app_requests_per_s", "app req/s"),
    ("redis_msgs_per_s", "Redis msg/s"),
    ("push_msgs_per_s", "push msg/s"),
    ("polls_per_client_hour", "polls/client/h"),
    ("bytes_per_client_hour", "bytes/client/h"),
    ("idle_bytes_per_client_hour", "idle B/client/h"),
    ("unconverged_clients", "unconverged"),
    ("wall_s", "wall s"),
)
FANOUT_COLUMNS = (
    ("poke_delivery_p50_ms", "delivery p50 ms"),
    ("poke_delivery_p99_ms", "delivery p99 ms"),
    ("push_msgs_per_s", "push msg/s"),
    ("wall_s", "wall s"),
)
EVENT_COLUMNS = (
    ("peak_reconnects_per_s", "peak reconn/s"),
    ("peak_reconnects_per_s_5s_bins", "peak (5 s bins)"),
    ("even_spread_per_s", "even spread/s"),
    ("reconnects", "reconnects"),
    ("seconds_to_reconnect_all", "all back after s"),
    ("app_requests_per_s", "app req/s"),
    ("unconverged_clients", "unconverged"),
    ("wall_s", "wall s"),
)


PAUSE_COLUMNS = (
    ("pause_s", "pause s"),
    ("pokes_lost", "pokes lost"),
    ("server_seconds_degraded", "server-s degraded"),
    ("staleness_p50_ms", "p50 ms"),
    ("staleness_p99_ms", "p99 ms"),
    ("staleness_max_ms", "max ms"),
    ("app_requests_per_s", "app req/s"),
    ("unconverged_clients", "unconverged"),
    ("wall_s", "wall s"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("file", nargs="?", help="compare: the measured freshness.json")
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--projects", type=int, default=None, help="default: clients / 100")
    parser.add_argument(
        "--servers", type=int, default=None, help="push servers (default 4; compare: 1)"
    )
    parser.add_argument("--duration", type=float, default=120.0, help="measured seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="sim-results", help="directory for JSON and PNG")
    parser.add_argument(
        "--sample",
        type=int,
        default=None,
        help="real controllers (the rest is represented by them); default: all, up to 200,000",
    )
    parser.add_argument("--edits-per-s", type=float, default=5.0, help="over all projects")
    parser.add_argument(
        "--idle-projects", type=int, default=0, help="projects never edited (the idle cost)"
    )
    parser.add_argument(
        "--mode", choices=[m.value for m in Mode], default="poke", help="crash and deploy"
    )
    parser.add_argument(
        "--latency-ms",
        type=float,
        default=None,
        help="median one-way (default 30; compare: 0.1, the measured runs are on loopback)",
    )
    parser.add_argument("--loss", type=float, default=0.0, help="retransmission probability")
    parser.add_argument("--drain-window", type=float, default=30.0, help="deploy")
    parser.add_argument(
        "--deploy-batch", type=int, default=1, help="deploy: servers restarted at a time"
    )
    parser.add_argument("--crash-silent", action="store_true", help="crash: no TCP reset")
    parser.add_argument("--restart-after", type=float, default=None, help="crash: seconds")
    parser.add_argument(
        "--pause", type=float, default=10.0, help="pause: seconds Redis answers nothing"
    )
    parser.add_argument(
        "--fanout",
        default=None,
        help=f"fan-out result to calibrate push delivery (default: {DEFAULT_FANOUT} if present)",
    )
    parser.add_argument("--pokes", type=int, default=20, help="fanout: pokes")
    parser.add_argument("--spacing", type=float, default=0.25, help="fanout: seconds apart")
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


#: Above this many clients the default is the sampled mode (memory and time: docs/SIMULATION.md).
MAX_REAL_DEFAULT = 200_000


def config_from_args(args: argparse.Namespace) -> tuple[SimConfig, str]:
    server = ServerModel()
    fanout = Path(args.fanout) if args.fanout else DEFAULT_FANOUT
    if fanout.exists():
        write, accept = calibrate_write_cost(fanout)
        server = replace(server, write_cost=write, accept_cost=accept)
        source = f"{fanout} (write {write * 1e6:.1f} us/conn, accept {accept * 1e6:.0f} us)"
    elif args.fanout:
        raise SystemExit(f"no such file: {args.fanout}")
    else:
        source = "built-in defaults (no fan-out result found)"
    sample = args.sample
    latency = args.latency_ms
    if latency is None:
        latency = 0.1 if args.scenario == "compare" else 30.0
    if sample is None and args.clients > MAX_REAL_DEFAULT:
        sample = MAX_REAL_DEFAULT // 2
    cfg = SimConfig(
        clients=args.clients,
        projects=args.projects or max(1, args.clients // 100),
        servers=args.servers or (1 if args.scenario == "compare" else 4),
        sample=sample,
        mode=Mode(args.mode),
        edits_per_s=args.edits_per_s,
        idle_projects=args.idle_projects,
        duration=args.duration,
        network=NetworkModel(median=latency / 1000, loss=args.loss),
        server=server,
        seed=args.seed,
    )
    return cfg, source


def _progress(label: str, world: World, wall: float) -> None:
    now = world.queue.now - EPOCH
    rec = world.recorder
    second = max(0, int(now) - 1)

    def at(name: str) -> float:
        s = rec.series.get(name, [])
        return s[second] if second < len(s) else 0.0

    connected = at("connected")
    print(
        f"[{time.strftime('%H:%M:%S')}] {label:<14} t={now:6.0f}/{world.cfg.end - EPOCH:.0f} s"
        f"  wall {wall:6.1f} s  events {world.queue.processed:>10,}"
        f"  connected {0 if connected != connected else connected:>9,.0f}"
        f"  app {at('app_requests'):>8,.0f}/s  reconnects {at('push_connects'):>7,.0f}/s",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    from tidings.sim import report, scenarios
    from tidings.sim.compare import compare, rows_table

    cfg, source = config_from_args(args)
    if args.scenario == "compare" and args.file:
        from tidings.sim.compare import config_from

        cfg = config_from(json.loads(Path(args.file).read_text()).get("params", {}), cfg)
    if args.scenario == "fanout":
        cfg = cfg.with_(servers=1, projects=1)
    out = Path(args.out)
    progress = None if args.quiet else _progress
    command = "tidings sim " + shlex.join(
        sys.argv[2:] if sys.argv[1:2] == ["sim"] else sys.argv[1:]
    )
    print(
        f"sim {args.scenario}: {cfg.clients:,} clients ({cfg.real_clients:,} real controllers,"
        f" weight {cfg.weight:g}), {cfg.projects:,} projects, {cfg.servers} push servers,"
        f" seed {cfg.seed}; push delivery calibrated from {source}",
        flush=True,
    )
    started = time.perf_counter()
    extra: dict[str, Any] = {}
    columns: tuple[tuple[str, str], ...]
    if args.scenario == "steady":
        runs = scenarios.steady(cfg, progress)
        title = "steady: poll-only, poke and full push"
        columns = COLUMNS
    elif args.scenario == "crash":
        plan = scenarios.CrashPlan(reset=not args.crash_silent, restart_after=args.restart_after)
        runs = scenarios.crash(cfg, plan, progress)
        title = f"crash of one of {cfg.servers} push servers ({runs[0].summary['crash_kind']})"
        columns = EVENT_COLUMNS
    elif args.scenario == "deploy":
        plan_d = scenarios.DeployPlan(windows=(args.drain_window, 0.0), batch=args.deploy_batch)
        runs = scenarios.deploy(cfg, plan_d, progress)
        title = f"rolling restart of {cfg.servers} push servers: drain window vs none"
        columns = EVENT_COLUMNS
    elif args.scenario == "pause":
        runs = scenarios.pause(cfg, args.pause, progress)
        title = f"Redis answers nothing for {args.pause:g} s: degraded, short polls, recovery"
        columns = PAUSE_COLUMNS
    elif args.scenario == "fanout":
        runs = scenarios.fanout(cfg, args.pokes, args.spacing, progress)
        title = f"one server, {cfg.clients:,} clients on one project, {args.pokes} pokes"
        columns = FANOUT_COLUMNS
        fanout = Path(args.fanout) if args.fanout else DEFAULT_FANOUT
        if fanout.exists():
            measured = json.loads(fanout.read_text())["results"]["tidings-ws"]
            rows = []
            for ours, theirs in (
                ("poke_delivery_p50_ms", "latency_ms_p50"),
                ("poke_delivery_p99_ms", "latency_ms_p99"),
            ):
                sim, meas = runs[0].summary[ours], float(measured[theirs])
                ratio = round(sim / meas, 3) if sim is not None and meas else None
                rows.append({"metric": ours, "measured": meas, "simulated": sim, "ratio": ratio})
                print(f"{ours:<24} measured {meas:>8.1f}  simulated {sim:>8.1f}  sim/meas {ratio}")
            extra["comparison"] = rows
            extra["measured_file"] = str(fanout)
            extra["measured_clients"] = json.loads(fanout.read_text()).get("clients")
    else:
        if not args.file:
            raise SystemExit("compare needs the measured file: tidings sim compare freshness.json")
        rows, runs, cfg = compare(Path(args.file), cfg, progress)
        print(rows_table(rows))
        extra["comparison"] = rows
        extra["measured_file"] = args.file
        title = f"simulated with the parameters of {args.file}"
        columns = COLUMNS
    print(report.table(runs, columns))
    params = {k: v for k, v in asdict(cfg).items() if k not in ("app", "server", "network", "push")}
    params.update(
        network=asdict(cfg.network),
        app=asdict(cfg.app),
        server=asdict(cfg.server),
        push_delivery_calibration=source,
        total_wall_s=round(time.perf_counter() - started, 1),
        **extra,
    )
    params["mode"] = str(cfg.mode)
    params["advice"] = cfg.advice.to_json()
    path = report.write_json(out, args.scenario, command, params, runs)
    png = report.plot(out, args.scenario, runs, title)
    print(f"wrote {path} and {png} in {params['total_wall_s']} s wall")
    if "comparison" in extra:
        (out / f"{args.scenario}_rows.json").write_text(json.dumps(extra["comparison"], indent=1))
    return 0
