"""bench/publish.py runs at a tiny size against the shared Redis. Not a timed
test: it checks that every configuration ran all its pokes, none of them stale
(each poke is a new version), and that the ratios were computed."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import run_bench


def test_publish_quick(tmp_path: Path, redis_url: str) -> None:
    data = run_bench(
        "publish.py",
        tmp_path / "publish",
        *("--count", "40", "--projects", "8", "--concurrency", "4", "--redis-url", redis_url),
    )
    configs = data["configs"]
    assert list(configs) == ["bare PUBLISH", "sync poke", "async poke", "async poke x4"]
    assert [c["count"] for c in configs.values()] == [40, 40, 40, 40]
    assert all(c.get("stale", 0) == 0 for c in configs.values())
    assert data["ratio_p50_sync_poke_over_publish"] > 0
    assert data["ratio_p50_async_poke_over_publish"] > 0
