"""Tables on stdout, JSON and PNG plots per scenario (matplotlib, Agg backend)."""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tidings.sim.metrics import percentile
from tidings.sim.scenarios import Run

#: Series kept in the JSON (the others are plotted or summed, not written).
SERIES_IN_JSON = ("push_connects", "connected", "app_requests", "app_polls", "edits")


def machine() -> dict[str, Any]:
    """What the run took its wall-clock time on (CPU is shared: see docs/SIMULATION.md)."""
    return {
        "cores": os.cpu_count(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
    }


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value != value:  # NaN
            return "-"
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def table(runs: Sequence[Run], columns: Sequence[tuple[str, str]]) -> str:
    """A plain-text table: one row per run, ``columns`` as (summary key, heading)."""
    rows = [["run", *(h for _, h in columns)]]
    for run in runs:
        rows.append([run.label, *(_fmt(run.summary.get(k)) for k, _ in columns)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, row in enumerate(rows):
        cells = [
            row[0].ljust(widths[0]),
            *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True)),
        ]
        lines.append("  ".join(cells))
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def staleness_histogram(values: list[int]) -> dict[str, Any]:
    """Percentiles and a log-spaced histogram (bucket upper bounds in ms)."""
    bounds = [10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000, 120000]
    counts = [0] * (len(bounds) + 1)
    for v in values:
        for k, b in enumerate(bounds):
            if v <= b:
                counts[k] += 1
                break
        else:
            counts[-1] += 1
    return {
        "percentiles_ms": {str(q): percentile(values, q) for q in (10, 25, 50, 75, 90, 99, 99.9)},
        "bucket_le_ms": [*bounds, "inf"],
        "counts": counts,
    }


def write_json(
    out: Path, scenario: str, command: str, params: dict[str, Any], runs: Sequence[Run]
) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    body = {
        "scenario": scenario,
        "command": command,
        "machine": machine(),
        "params": params,
        "runs": {
            run.label: {
                "summary": run.summary,
                "staleness": staleness_histogram(run.staleness_ms),
                "series_per_s": {
                    k: [None if x != x else round(x, 2) for x in run.series.get(k, [])]
                    for k in SERIES_IN_JSON
                },
            }
            for run in runs
        },
    }
    path = out / f"{scenario}.json"
    path.write_text(json.dumps(body, indent=1, allow_nan=False, default=_nan_free))
    return path


def _nan_free(value: Any) -> Any:
    raise TypeError(f"not JSON: {value!r}")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(out: Path, scenario: str, runs: Sequence[Run], title: str) -> Path:
    plt = _pyplot()
    path = out / f"{scenario}.png"
    if scenario in ("steady", "compare", "fanout"):
        fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
        ax = axes[0]
        for run in runs:
            data = sorted(run.staleness_ms)
            if data:
                ys = [(k + 1) / len(data) for k in range(len(data))]
                ax.plot([max(v, 1) for v in data], ys, label=run.label)
        ax.set_xscale("log")
        ax.set_xlabel("staleness, ms (commit to applied)")
        ax.set_ylabel("fraction of applied events")
        ax.set_title("staleness CDF")
        ax.grid(True, alpha=0.3)
        ax.legend()
        labels = [r.label for r in runs]
        for ax, key, name in (
            (axes[1], "app_requests_per_s", "app requests/s"),
            (axes[2], "redis_msgs_per_s", "Redis messages/s"),
        ):
            values = [float(r.summary.get(key) or 0) for r in runs]
            bars = ax.bar(labels, values, color="#4c72b0")
            ax.bar_label(bars, fmt="%.0f")
            ax.set_title(name)
            ax.grid(True, axis="y", alpha=0.3)
    else:
        fig, axes = plt.subplots(3, 1, figsize=(12, 9), sharex=True)
        for run in runs:
            for ax, key in zip(axes, ("push_connects", "connected", "app_requests"), strict=True):
                ys = run.series.get(key, [])
                ax.plot(range(len(ys)), ys, label=run.label, linewidth=1)
        axes[0].set_ylabel("push (re)connects / s")
        axes[1].set_ylabel("clients connected")
        axes[2].set_ylabel("app requests / s")
        axes[2].set_xlabel("simulated seconds")
        for run in runs:
            even = run.summary.get("even_spread_per_s")
            if even:
                axes[0].axhline(even, linestyle="--", color="grey", linewidth=0.8)
        for ax in axes:
            ax.grid(True, alpha=0.3)
        axes[0].legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
