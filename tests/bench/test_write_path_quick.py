"""bench/write_path.py runs at a tiny size on both stores against a real app and
its floor. Not a timed test: it checks that every measurement ran and every
command succeeded."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bench.runner import run_bench


def test_write_path_quick(tmp_path: Path) -> None:
    if shutil.which("wrk") is None:
        pytest.fail("wrk is missing (./dev test installs it)")
    data = run_bench(
        "write_path.py",
        tmp_path / "write_path",
        *("--sizes", "5,20", "--commands", "10", "--duration", "1", "--spread", "4"),
    )
    for store in ("sqlite", "postgres"):
        result = data["stores"][store]
        for size in ("5", "20"):
            measured = result["sizes"][size]
            assert measured["stories"] == int(size)
            assert measured["update_story"]["commands"] == 10
            assert result["floor"][size]["commands"] == 10
        for run in (result["spread"], result["floor_spread"]):
            assert run["requests"] > 0 and run["non_2xx"] == 0, run
    assert (
        data["stores"]["postgres"]["sizes"]["20"]["update_story"]["wal_bytes_per_command_min"] > 0
    )
    assert set(data["ratios"]) == {"sqlite", "postgres"}
