"""bench/freshness.py runs at a tiny size (real app on PostgreSQL, Redis, push
server, lean clients, a writer) in all four modes. Not a timed test: it checks
the JSON the simulation reads, that edits reached clients in every mode, and
that bytes were counted."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.postgres,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

R_KEYS = {
    "staleness_p50_ms",
    "staleness_p99_ms",
    "app_requests_per_s",
    "polls_per_client_hour",
    "bytes_per_client_hour",
    "idle_bytes_per_client_hour",
}


def test_freshness_quick(tmp_path: Path, postgres_admin_url: str) -> None:
    if shutil.which("redis-server") is None or shutil.which("psql") is None:
        pytest.fail("redis-server or psql is missing (./dev test installs them)")
    data = run_bench(
        "freshness.py",
        tmp_path / "freshness",
        *("--clients", "40", "--projects", "10", "--edits-per-s", "8"),
        *("--poll-interval", "1", "--poll-interval-push", "4", "--duration", "2"),
        *("--warmup", "0.5", "--start-over", "0.3"),
    )
    params = data["params"]
    assert {k: type(params[k]) for k in ("clients", "projects")} == {
        "clients": int,
        "projects": int,
    }
    for key in ("edits_per_s", "poll_interval_s", "poll_interval_push_s", "jitter_s", "duration_s"):
        assert isinstance(params[key], float), key
    assert set(data["modes"]) == {"poll", "poke", "full", "poke_push_killed"}
    for mode, r in data["modes"].items():
        assert set(r) >= R_KEYS, mode
        assert all(isinstance(r[k], float) for k in R_KEYS), (mode, r)
        assert r["staleness"]["samples"] > 0, (mode, r)
        assert r["bytes_per_client_hour"] > 0 and r["app_requests_per_s"] > 0, (mode, r)
    # How each mode delivered: full push applies events from pokes, poll-only never does.
    assert data["modes"]["full"]["staleness"]["via"].get("full_push", 0) > 0
    assert set(data["modes"]["poll"]["staleness"]["via"]) == {"poll"}
    assert data["modes"]["poll"]["push_bytes_share"] == 0
    assert set(data["modes"]["poke_push_killed"]["phases"]) == {"before", "during", "after"}
    assert data["machine"]["cores"] >= 1
