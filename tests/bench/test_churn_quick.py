"""bench/churn.py runs at a tiny size: every connect/subscribe/disconnect cycle
completes, and the server's descriptors and tasks are sampled (the task gauge is in
/metrics). Not a timed test: no figure is checked, and at this size neither is drift."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def test_churn_quick(tmp_path: Path) -> None:
    data = run_bench("churn.py", tmp_path / "churn", "--quick")
    assert data["cycles"] == 2000 and data["failed"] == 0, data["failed_by_kind"]
    warm, end = data["after_warmup"], data["end"]
    assert warm["tasks"] > 0 and warm["fds"] > 0, warm
    assert warm["connections"] == end["connections"] == 0, (warm, end)
    assert end["fds_but_redis"] <= warm["fds_but_redis"], (warm, end)
    assert end["tasks"] <= warm["tasks"], (warm, end)
    # The sampler ran during the cycles and read the server's gauges each time.
    # (Not "saw a connection open": on a quiet machine a cycle lasts about a
    # millisecond and every sample can fall between two.)
    assert any(0 < s["cycles"] < 2000 for s in data["samples"]), data["samples"]
    assert all(s["tasks"] > 0 and s["open_sockets"] >= 0 for s in data["samples"])
