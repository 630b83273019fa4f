"""bench/storm.py runs at a tiny size: a burst of new clients on each target is
measured, and a server of two is killed and every one of its clients subscribes
again on a survivor, for /ws, SSE and Socket.IO. Not a timed test: at 60 clients a
server no figure means much, so none is checked against a goal."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def test_storm_quick(tmp_path: Path) -> None:
    data = run_bench("storm.py", tmp_path / "storm", "--quick")
    targets = data["bursts"]["targets"]
    assert set(targets) == {"tidings-ws", "tidings-sse", "tidings-sio", "c-epoll"}, targets
    for name, t in targets.items():
        assert t["cpu_us_per_client"] > 0, (name, t)
    assert {g["value_us"] for g in data["goals"]} == {
        targets[f"tidings-{k}"]["cpu_us_per_client"] for k in ("ws", "sse", "sio")
    }
    assert [r["transport"] for r in data["storms"]] == ["ws", "sse", "sio"]
    for r in data["storms"]:
        assert r["moved_clients"] == data["clients_per_server"], r
        # Every moved client resubscribed on a survivor, none on the dead server.
        moved = sum(sum(c) for c in r["resubscribed_per_100ms"].values())
        assert moved >= r["moved_clients"], r
        assert "0" not in r["resubscribed_per_100ms"], r
        # Not before the earliest reconnect delay: the clients waited for their backoff.
        assert r["first_resubscribe_s"] >= data["reconnect_window_s"][0], r
        assert r["survivors_cpu_s"] > 0 and r["peak_accept_per_s"] > 0, r
        assert r["untouched_latency_ms"]["storm_samples"] > 0, r
