"""bench/herd.py runs at a tiny size against a real app, Redis and push server.
Not a timed test: it checks that every client of the herd became current in
every round, that collapsing served the herd with one event read and that
without it every poll read the store."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def test_herd_quick(tmp_path: Path) -> None:
    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is missing (./dev test installs it)")
    data = run_bench(
        "herd.py",
        tmp_path / "herd",
        *("--clients", "60", "--rounds", "1", "--stores", "sqlite"),
        *("--configs", "collapse+jitter,neither"),
    )
    configs = data["stores"]["sqlite"]
    assert set(configs) == {"collapse+jitter", "neither"}
    for name, result in configs.items():
        assert result["every_client_current"], (name, result["rounds"])
        assert result["polls_served"] >= 60, (name, result)
        assert 0 < result["commit_to_current_ms_p50"] <= result["commit_to_current_ms_last"]
    assert configs["collapse+jitter"]["events_reads"] == 1
    assert configs["neither"]["events_reads"] == configs["neither"]["polls_with_events"] == 60
    assert [g["met"] for g in data["goals"]] == [True]
