"""What every benchmark writes when it is done: its results as JSON and its plot
as PNG, side by side under one name (``bench/results/<name>.json`` / ``.png``),
and its goals, met or missed."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any


def save(
    data: dict[str, Any],
    out: Path,
    plot: Callable[[dict[str, Any], Path], None],
    *,
    indent: int = 2,
) -> None:
    """Write ``out``.json, draw ``out``.png with ``plot``, and say where."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(data, indent=indent))
    plot(data, out.with_suffix(".png"))
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.png')}")


def pyplot() -> ModuleType:
    """matplotlib's pyplot, drawing to files only (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def finish(fig: Any, path: Path, title: str = "", machine: dict[str, Any] | None = None) -> None:
    """Title the figure (``title``, then the machine it ran on and its load, if
    given), lay it out, write it to ``path`` and free it."""
    if machine is not None:
        load = machine["load_average_at_start"]
        title += f"{'; ' if title else ''}{machine['cpu']}, {machine['cores']} cores, "
        title += f"load {load} (shared machine)"
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    pyplot().close(fig)


def print_goals(data: dict[str, Any]) -> None:
    """One line per goal of ``data["goals"]``: met or MISSED."""
    for goal in data["goals"]:
        print(f"goal: {goal['goal']}: {'met' if goal['met'] else 'MISSED'}")
