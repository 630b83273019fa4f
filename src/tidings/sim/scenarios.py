"""The scenarios: what happens to the fleet, and the figures each run is summed up by.

``steady``: the three modes side by side. ``crash``: one push server dies.
``deploy``: a rolling restart, with the jittered drain and without it (window
0: every client told to reconnect at once). ``compare``: the steady modes with
a measured run's parameters (bench/results/freshness.json).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from tidings.sim.clock import EPOCH
from tidings.sim.metrics import percentile
from tidings.sim.world import Mode, SimConfig, World

Progress = Callable[[str, World, float], None]

#: Redis series summed into ``redis_msgs_per_s``.
REDIS_SERIES = (
    "redis_publish",
    "redis_deliver",
    "redis_subscribe",
    "redis_unsubscribe",
    "redis_read",
    "redis_control",
)


@dataclass(slots=True)
class Run:
    """One world's outcome: its summary figures and its per-second series."""

    label: str
    summary: dict[str, Any]
    series: dict[str, list[float]]
    staleness_ms: list[int] = field(repr=False, default_factory=list)


def summarize(world: World, wall: float) -> dict[str, Any]:
    cfg = world.cfg
    rec = world.recorder
    hours = rec.window / 3600
    stale = rec.all_staleness()
    redis = {name.removeprefix("redis_"): round(rec.rate(name), 2) for name in REDIS_SERIES}
    per_client_hour = cfg.clients * hours
    idle = sum(1 for c in world.clients if c.idle) * cfg.weight
    out: dict[str, Any] = {
        "mode": str(cfg.mode),
        "clients": cfg.clients,
        "real_controllers": cfg.real_clients,
        "weight": round(cfg.weight, 3),
        "projects": cfg.projects,
        "servers": cfg.servers,
        "edits_per_s": round(rec.rate("edits"), 3),
        "staleness_samples": len(stale),
        "staleness_p50_ms": percentile(stale, 50),
        "staleness_p90_ms": percentile(stale, 90),
        "staleness_p99_ms": percentile(stale, 99),
        "staleness_max_ms": max(stale) if stale else None,
        "poke_delivery_p50_ms": percentile(rec.deliveries, 50),
        "poke_delivery_p99_ms": percentile(rec.deliveries, 99),
        "app_requests_per_s": round(rec.rate("app_requests"), 2),
        "app_polls_per_s": round(rec.rate("app_polls"), 2),
        "app_tokens_per_s": round(rec.rate("app_tokens"), 2),
        "app_telemetry_per_s": round(rec.rate("app_telemetry"), 2),
        "redis_msgs_per_s": round(sum(redis.values()), 2),
        "redis": redis,
        "push_msgs_per_s": round(rec.rate("push_messages"), 2),
        "polls_per_client_hour": round(rec.totals.get("app_polls", 0.0) / per_client_hour, 2),
        "bytes_per_client_hour": round(
            (rec.totals.get("app_bytes", 0.0) + rec.totals.get("push_bytes", 0.0)) / per_client_hour
        ),
        "idle_bytes_per_client_hour": (
            round(rec.totals.get("idle_bytes", 0.0) / (idle * hours)) if idle else None
        ),
        "missed_pokes": rec.totals.get("missed_pokes", 0.0),
        "unconverged_clients": len(world.unconverged()) * cfg.weight,
        "simulated_s": round(cfg.end - EPOCH, 1),
        "wall_s": round(wall, 1),
        "events_processed": world.queue.processed,
    }
    return out


def run_world(
    label: str,
    cfg: SimConfig,
    progress: Progress | None,
    setup: Callable[[World], None] | None = None,
) -> Run:
    world = World(cfg)
    if setup is not None:
        setup(world)
    step = max(5.0, (cfg.end - EPOCH) / 20)
    wall = world.run(None if progress is None else (lambda w, t: progress(label, w, t)), step=step)
    return Run(
        label,
        summarize(world, wall),
        dict(world.recorder.series),
        world.recorder.all_staleness(),
    )


# -- steady ---------------------------------------------------------------------

STEADY_MODES = (Mode.POLL, Mode.POKE, Mode.FULL)


def steady(
    cfg: SimConfig, progress: Progress | None = None, modes: tuple[Mode, ...] = STEADY_MODES
) -> list[Run]:
    return [run_world(str(m), cfg.with_(mode=m), progress) for m in modes]


# -- crash ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CrashPlan:
    #: Seconds into the measured window.
    at: float = 10.0
    #: True: the process dies and its TCP connections reset (clients know at once);
    #: False: the host vanishes (clients notice after 2.5 missed heartbeats).
    reset: bool = True
    #: Start a replacement this long after the crash; None: never.
    restart_after: float | None = None


def crash(cfg: SimConfig, plan: CrashPlan, progress: Progress | None = None) -> list[Run]:
    facts: dict[str, float] = {}

    def setup(world: World) -> None:
        when = cfg.measure_from + plan.at

        def kill(_: object) -> None:
            victim = world.servers[0]
            facts["clients_on_crashed_server"] = len(victim.hub) * world.weight
            facts["connected_before"] = sum(len(s.hub) for s in world.servers) * world.weight
            victim.crash(reset=plan.reset)

        def restart(_: object) -> None:
            world.servers[0] = world.new_server(0)

        world.queue.at(when, kill)
        if plan.restart_after is not None:
            world.queue.at(when + plan.restart_after, restart)

    run = run_world("crash", cfg, progress, setup)
    start = int(plan.at + cfg.measure_from - EPOCH)
    run.summary.update(facts)
    run.summary.update(_reconnect_figures(run.series, start, facts.get("connected_before", 0)))
    run.summary["crash_at_s"] = start
    run.summary["crash_kind"] = "reset" if plan.reset else "silent"
    return [run]


def _reconnect_figures(series: dict[str, list[float]], start: int, before: float) -> dict[str, Any]:
    connects = series.get("push_connects", [])[start:]
    connected = series.get("connected", [])
    back = None
    for t in range(start + 1, len(connected)):
        if connected[t] >= before * 0.999:
            back = t - start
            break
    peak = max(connects) if connects else 0.0
    return {
        "reconnects": round(sum(connects)),
        "peak_reconnects_per_s": peak,
        "seconds_to_reconnect_all": back,
    }


# -- pause ----------------------------------------------------------------------


def pause(
    cfg: SimConfig, seconds: float, progress: Progress | None = None, at: float | None = None
) -> list[Run]:
    """Redis stops answering for ``seconds``, ``at`` seconds into the measured window
    (default: a third of it):
    each push server's health policy (push/health.py) misses its link heartbeat and
    tells its clients ``degraded``, they poll at the short interval, and on recovery
    every watched project is re-checked from the version keys."""

    at = cfg.duration / 3 if at is None else at

    def setup(world: World) -> None:
        start = cfg.measure_from + at

        def set_paused(paused: bool) -> None:
            world.broker.paused = paused

        world.queue.at(start, set_paused, True)
        world.queue.at(start + seconds, set_paused, False)

    run = run_world("pause", cfg, progress, setup)
    degraded = run.series.get("servers_degraded", [])
    first = int(cfg.measure_from - EPOCH + at)
    run.summary["pause_at_s"] = first
    run.summary["pause_s"] = seconds
    run.summary["pokes_lost"] = round(sum(run.series.get("pokes_lost", [])))
    run.summary["server_seconds_degraded"] = sum(degraded[first:])
    return [run]


# -- deploy ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeployPlan:
    #: Seconds into the measured window when the first server gets SIGTERM.
    at: float = 10.0
    #: Drain windows to compare (0: no jitter, everyone reconnects at once).
    windows: tuple[float, ...] = (30.0, 0.0)
    #: Seconds a new process takes to start and accept connections.
    boot: float = 5.0
    #: Servers restarted at a time (the next batch starts when these are back).
    batch: int = 1


def deploy(cfg: SimConfig, plan: DeployPlan, progress: Progress | None = None) -> list[Run]:
    runs = []
    for window in plan.windows:
        # Long enough for every server to drain (window + the hard-stop slack) and reboot.
        per_server = window + 2 * cfg.push.tick_interval + 1.0 + plan.boot
        needed = plan.at + -(-cfg.servers // plan.batch) * per_server + 15.0
        run_cfg = cfg.with_(duration=max(cfg.duration, needed))
        runs.append(_rolling(run_cfg, plan, window, progress))
    return runs


def _rolling(cfg: SimConfig, plan: DeployPlan, window: float, progress: Progress | None) -> Run:
    per_server: list[float] = []
    starts: list[int] = []

    def setup(world: World) -> None:
        def drain_batch(first: int) -> None:
            slots = list(range(first, min(first + plan.batch, len(world.servers))))
            if not slots:
                return
            # One "drain" per batch: its clients, against the window.
            per_server.append(sum(len(world.servers[k].hub) for k in slots) * world.weight)
            starts.append(int(world.queue.now - EPOCH))
            booted: set[int] = set()
            for slot in slots:
                drain_slot(slot, slots, booted)

        def drain_slot(slot: int, batch: list[int], booted: set[int]) -> None:
            server = world.servers[slot]
            stopped = False

            def stop(_: object) -> None:
                nonlocal stopped
                if stopped:
                    return
                stopped = True
                server.stop()
                world.queue.at(world.queue.now + plan.boot, boot, None)

            def boot(_: object) -> None:
                world.servers[slot] = world.new_server(slot)
                booted.add(slot)
                if len(booted) == len(batch):
                    drain_batch(batch[-1] + 1)

            server.on_empty = stop
            server.drain(window)
            # Like the real server: give up waiting after the window plus two ticks and 1 s.
            world.queue.at(world.queue.now + window + 2 * cfg.push.tick_interval + 1.0, stop)

        world.queue.at(cfg.measure_from + plan.at, lambda _: drain_batch(0))

    label = f"drain {window:g} s"
    run = run_world(label, cfg, progress, setup)
    connects = run.series.get("push_connects", [])
    first = starts[0] if starts else 0
    # Each drain (a batch of servers) against its own even spread (its clients /
    # the window), over the seconds until the next drain starts.
    ratios1: list[float] = []
    ratios5: list[float] = []
    bounds = [*starts[1:], len(connects)]
    for start, stop, clients in zip(starts, bounds, per_server, strict=True):
        if window <= 0 or clients <= 0:
            continue
        even = clients / window
        part = connects[start:stop]
        bins5 = [sum(part[t : t + 5]) / 5 for t in range(0, len(part), 5)]
        ratios1.append(max(part, default=0.0) / even)
        ratios5.append(max(bins5, default=0.0) / even)
    bins5_all = [sum(connects[t : t + 5]) / 5 for t in range(first, len(connects), 5)]
    mean_clients = sum(per_server) / len(per_server) if per_server else 0.0
    run.summary.update(
        {
            "drain_window_s": window,
            "deploy_started_s": first,
            "drain_starts_s": starts,
            "clients_per_drained_server": [round(c) for c in per_server],
            "peak_reconnects_per_s": max(connects[first:], default=0.0),
            "peak_reconnects_per_s_5s_bins": max(bins5_all, default=0.0),
            "even_spread_per_s": round(mean_clients / window, 2) if window > 0 else None,
            "peak_over_even_1s": round(max(ratios1), 3) if ratios1 else None,
            "peak_over_even_5s": round(max(ratios5), 3) if ratios5 else None,
            "reconnects": round(sum(connects[first:])),
        }
    )
    return run


# -- fan-out --------------------------------------------------------------------


def fanout(
    cfg: SimConfig, pokes: int, spacing: float, progress: Progress | None = None
) -> list[Run]:
    """bench/fanout.py's setting: every client on one server watching one project,
    ``pokes`` pokes ``spacing`` s apart, loopback latency; full push, so the
    clients do not poll (the benchmark's clients only count pokes)."""
    run_cfg = cfg.with_(
        servers=1,
        projects=1,
        mode=Mode.FULL,
        regular_edits=True,
        edits_per_s=1 / spacing,
        duration=(pokes + 0.5) * spacing,
        network=replace(cfg.network, median=0.00005, sigma=0.0, loss=0.0),
    )
    return [run_world("fanout", run_cfg, progress)]
