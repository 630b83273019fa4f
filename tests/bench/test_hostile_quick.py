"""bench/hostile.py runs at a tiny size: a quiet baseline and one attack on one
server, with every attacker connection closed by the server with its code. Not a
timed test: the latency bound is the hostile suite's (tests/push/hostile)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]


def test_hostile_quick(tmp_path: Path) -> None:
    data = run_bench(
        "hostile.py", tmp_path / "hostile", "--quick", "--attacks", "tiny-frames-socketio"
    )
    none, attack = data["rows"]
    assert none["attack"] == "none" and none["connections"] == 0, none
    assert attack["attack"] == "tiny-frames-socketio", attack
    assert attack["connections"] > 0 and attack["closed"] == attack["connections"], attack
    assert list(attack["close_codes"]) == ["1008 too many frames: over 8 at 0.2 per second"]
    for row in data["rows"]:
        assert row["pokes"] > 0 and row["lost"] == 0, row
        assert row["healthz_failures"] == 0 and row["states"] == ["ok"], row
    assert data["machine"]["cores"], data["machine"]
