"""Running one benchmark at a tiny size, as the test suite does for each of them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def run_bench(script: str, out: Path, *args: str) -> dict[str, Any]:
    """Run ``bench/<script>`` writing to ``out``; return its JSON once it exited 0
    and wrote its plot."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / script), *args, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert out.with_suffix(".png").is_file()
    data: dict[str, Any] = json.loads(out.with_suffix(".json").read_text())
    return data
