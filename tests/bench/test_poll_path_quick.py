"""bench/poll_path.py runs at a tiny size against a real app with wrk. Not a timed
test: it checks that every scenario ran and every answer was a success."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_poll_path_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is missing (./dev test installs it)")
    out = tmp_path / "poll_path"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "poll_path.py"),
            "--duration",
            "1",
            "--configs",
            "sqlite",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").is_file()
    scenarios = data["configs"]["sqlite"]
    assert set(scenarios) == {"up_to_date", "events_10", "multi_5_up_to_date", "command"}
    for name, result in scenarios.items():
        assert result["requests"] > 0 and result["non_2xx"] == 0, (name, result)
    assert data["machine"]["cores"] >= 1
