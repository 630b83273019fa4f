"""Simulated against measured: the steady modes run with a measured run's parameters.

The measured side is bench/results/freshness.json (bench/freshness.py): real app,
Redis, push server and clients on this machine. Each figure is printed side by
side with the simulation's and their ratio (simulated / measured).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tidings.sim.scenarios import Progress, Run, run_world
from tidings.sim.world import Mode, SimConfig

#: The figures compared, as both sides name them.
METRICS = (
    "staleness_p50_ms",
    "staleness_p99_ms",
    "app_requests_per_s",
    "polls_per_client_hour",
    "bytes_per_client_hour",
    "idle_bytes_per_client_hour",
)


def config_from(params: dict[str, Any], base: SimConfig) -> SimConfig:
    """The measured run's parameters; ``jitter_s`` is the advice's jitter fraction when
    below 1, else seconds on the push interval (turned into the fraction)."""
    advice = base.advice
    interval = float(params.get("poll_interval_push_s", advice.interval))
    fallback = float(params.get("poll_interval_s", advice.fallback_interval))
    jitter = float(params.get("jitter_s", advice.jitter))
    if jitter >= 1:
        jitter = min(0.9, jitter / interval)
    return base.with_(
        clients=int(params.get("clients", base.clients)),
        projects=int(params.get("projects", base.projects)),
        edits_per_s=float(params.get("edits_per_s", base.edits_per_s)),
        idle_projects=int(params.get("idle_projects", base.idle_projects)),
        duration=float(params.get("duration_s", base.duration)),
        poke_delay=float(params["poke_delay_s"]) if "poke_delay_s" in params else base.poke_delay,
        advice=advice.__class__(
            push=True, interval=interval, fallback_interval=fallback, jitter=jitter
        ),
    )


def compare(
    path: Path, base: SimConfig, progress: Progress | None = None
) -> tuple[list[dict[str, Any]], list[Run], SimConfig]:
    measured: dict[str, Any] = json.loads(path.read_text())
    cfg = config_from(measured.get("params", {}), base)
    rows: list[dict[str, Any]] = []
    runs: list[Run] = []
    for name, figures in measured.get("modes", {}).items():
        try:
            mode = Mode(name)
        except ValueError:
            continue
        busy = run_world(name, cfg.with_(mode=mode), progress)
        runs.append(busy)
        for metric in METRICS:
            m = figures.get(metric)
            s = busy.summary.get(metric)
            ratio = None
            if isinstance(m, int | float) and isinstance(s, int | float) and m:
                ratio = round(s / m, 3)
            rows.append(
                {"mode": name, "metric": metric, "measured": m, "simulated": s, "ratio": ratio}
            )
    return rows, runs, cfg


def rows_table(rows: list[dict[str, Any]]) -> str:
    head = f"{'mode':<18}{'metric':<30}{'measured':>14}{'simulated':>14}{'sim/meas':>10}"
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['mode']:<18}{r['metric']:<30}{_n(r['measured']):>14}{_n(r['simulated']):>14}"
            f"{_n(r['ratio']):>10}"
        )
    return "\n".join(lines)


def _n(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.2f}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v:,}" if isinstance(v, int) else str(v)
