"""bench/snapshot_gzip.py runs at a tiny size. Not a timed test: it checks that every
level was measured and that compression shrinks a snapshot."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import run_bench


def test_snapshot_gzip_quick(tmp_path: Path) -> None:
    data = run_bench(
        "snapshot_gzip.py", tmp_path / "snapshot_gzip", "--stories", "200", "--repeat", "1"
    )
    assert [row["level"] for row in data["levels"]] == list(range(1, 10))
    assert all(row["bytes"] < data["raw_bytes"] / 2 for row in data["levels"])
    assert 1 <= data["app_level"] <= 9
    # The kept runs' stream, beside the single one: measured at each run length.
    assert [row["mean_stories"] for row in data["kept_runs"]][:2] == [32, 64]
    assert all(row["vs_single_stream"] >= 1 for row in data["kept_runs"])
