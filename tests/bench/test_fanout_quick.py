"""bench/fanout.py runs at a tiny size: every client of tidings /ws and of the
Python floor gets every poke. Not a timed test: no figure is checked."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset"),
]


def test_fanout_quick(tmp_path: Path) -> None:
    data = run_bench(
        "fanout.py", tmp_path / "fanout", "--quick", "--servers", "tidings-ws,python-lean"
    )
    assert set(data["results"]) == {"tidings-ws", "python-lean"}
    for name, result in data["results"].items():
        assert "error" not in result, (name, result)
        assert result["clients_ready"] == 200, (name, result)
        assert result["every_client_got_every_poke"], (name, result["per_poke"])
        assert [p["received"] for p in result["per_poke"]] == [200, 200, 200], name
