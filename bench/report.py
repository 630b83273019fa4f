"""What every benchmark writes when it is done: its results as JSON and its plot
as PNG, side by side under one name (``bench/results/<name>.json`` / ``.png``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
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
