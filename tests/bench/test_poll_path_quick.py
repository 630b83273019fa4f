"""bench/poll_path.py runs at a tiny size against a real app with wrk, beside its
bare-ASGI floor. Not a timed test: it checks that every scenario ran, every answer
was a success, and the up-to-date poll is compared with the floor."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bench.runner import run_bench


def test_poll_path_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is missing (./dev test installs it)")
    data = run_bench(
        "poll_path.py",
        tmp_path / "poll_path",
        *("--duration", "1", "--rounds", "1", "--configs", "sqlite"),
    )
    scenarios = data["configs"]["sqlite"]
    assert set(scenarios) == {"events_10", "multi_5_up_to_date", "command"}
    for name, result in scenarios.items():
        assert result["requests"] > 0 and result["non_2xx"] == 0, (name, result)
    (round_,) = data["up_to_date"]["rounds"]
    assert set(round_) == {"sqlite", "asgi-floor"}
    for name, result in round_.items():
        # wrk counts a 304 as a success: non_2xx counts 4xx and 5xx only.
        assert result["requests"] > 0 and result["non_2xx"] == 0, (name, result)
    assert data["up_to_date"]["ratios"]["sqlite_cpu_vs_floor"] > 0
    assert data["machine"]["cores"] >= 1
