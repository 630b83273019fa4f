"""bench/signin.py runs at a tiny size against a real app. Not a timed test: it
checks that both configurations ran, that the probe was answered throughout,
and that the sign-in loops were served (the limits do not refuse many users
signing in from a few addresses)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")


def test_signin_quick(tmp_path: Path) -> None:
    data = run_bench(
        "signin.py",
        tmp_path / "signin",
        *("--duration", "0.5", "--loops", "1", "--accounts-per-loop", "1"),
    )
    configs = data["configs"]
    assert [c["password_threads"] for c in configs.values()] == [0, 2]
    for name, result in configs.items():
        for phase in ("idle", "signing_in"):
            assert result[phase]["probe_requests"] > 0, (name, phase)
        assert set(result["signing_in"]["sign_in_statuses"]) == {"200"}, (name, result)
    assert data["ratio_p50_loop_over_pool"] > 0
    assert len(data["goals"]) == 1
