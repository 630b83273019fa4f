"""bench/poll_path.py runs at a tiny size against a real app with wrk. Not a timed
test: it checks that every scenario ran and every answer was a success."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bench.runner import run_bench


def test_poll_path_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is missing (./dev test installs it)")
    data = run_bench(
        "poll_path.py", tmp_path / "poll_path", "--duration", "1", "--configs", "sqlite"
    )
    scenarios = data["configs"]["sqlite"]
    assert set(scenarios) == {"up_to_date", "events_10", "multi_5_up_to_date", "command"}
    for name, result in scenarios.items():
        assert result["requests"] > 0 and result["non_2xx"] == 0, (name, result)
    assert data["machine"]["cores"] >= 1
