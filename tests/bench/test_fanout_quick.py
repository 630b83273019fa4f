"""bench/fanout.py runs at a tiny size: every client of tidings /ws and of the
Python floor gets every poke. Not a timed test: no figure is checked."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
    pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset"),
]


def test_fanout_quick(tmp_path: Path) -> None:
    out = tmp_path / "fanout"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "fanout.py"),
            "--quick",
            "--servers",
            "tidings-ws,python-lean",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads(out.with_suffix(".json").read_text())
    assert out.with_suffix(".png").is_file()
    assert set(data["results"]) == {"tidings-ws", "python-lean"}
    for name, result in data["results"].items():
        assert "error" not in result, (name, result)
        assert result["clients_ready"] == 200, (name, result)
        assert result["every_client_got_every_poke"], (name, result["per_poke"])
        assert [p["received"] for p in result["per_poke"]] == [200, 200, 200], name
