"""bench/scale.py runs at a tiny size: several push processes on one port, every
client gets every poke to all, and the soak's pokes reach their groups. Not a timed
test: no figure is checked."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from tests.bench.runner import run_bench

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler"),
]


def test_scale_quick(tmp_path: Path) -> None:
    data = run_bench("scale.py", tmp_path / "scale", "--quick")
    assert data["setup"]["ready"] == 600 and data["setup"]["failed"] == 0, data["setup"]
    assert data["headline"]["every_client_got_every_poke"], data["headline"]["pokes"]
    assert [p["received"] for p in data["headline"]["pokes"]] == [600, 600]
    soak = data["soak"]
    assert soak["pokes_sent"] >= 4 and soak["clients_lost"] == 0, soak["pokes"]
    assert {p["target"] for p in soak["pokes"]} >= {"all"}
    assert soak["pokes_fully_delivered"] == soak["pokes_sent"], soak["pokes"]
    assert len(soak["samples"][0]["rss_kb_each"]) == data["servers"] == 2
