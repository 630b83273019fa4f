"""bench/command_cpu.py runs a few commands through the app's ASGI stack and the
floor's, on both stores. Not a timed test: it checks that every command was
answered 200 (the benchmark stops at any other status) and every round measured."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.runner import run_bench


@pytest.mark.parametrize("store", ["sqlite", "postgres"])
def test_command_cpu_quick(tmp_path: Path, store: str) -> None:
    data = run_bench(
        "command_cpu.py",
        tmp_path / "command_cpu",
        *("--store", store, "--rounds", "2", "--commands", "40"),
    )
    assert data["store"] == store
    for target in ("app", "floor"):
        assert len(data["rounds"][target]) == 2
        assert all(us > 0 for us in data["rounds"][target])
    assert data["ratio"] > 0
