"""bench/board.py runs at a tiny size: a project grown through the API, the board loaded
in Chromium, remote changes painted and timed from their pokes, the app's performance
measures read. Not a timed test: no figure is checked against a goal."""

from __future__ import annotations

from pathlib import Path

from tests.bench.runner import run_bench
from tests.browser.test_browser import require_browser


def test_board_quick(tmp_path: Path) -> None:
    require_browser()
    data = run_bench(
        "board.py",
        tmp_path / "board",
        *("--sizes", "40", "--loads", "1", "--changes", "2"),
    )
    assert [row["stories"] for row in data["sizes"]] == [40]
    for row in data["sizes"]:
        (r,) = row["variants"]
        assert r["variant"] == "current"
        assert r["missed"] == 0, r
        assert len(r["first_screen_ms"]) == 1 and r["first_screen_ms"][0] > 0, r
        # Every change was seen arriving by push, then painted.
        assert len(r["paint_after_poke_ms"]) == 2 and min(r["paint_after_poke_ms"]) > 0, r
        # And Chromium's own paint times (Element Timing) for the first card and each change.
        assert r["first_card_painted_ms"][0] is not None and r["first_card_painted_ms"][0] > 0, r
        assert len(r["rendered_after_poke_ms"]) == 2 and min(r["rendered_after_poke_ms"]) > 0, r
        assert r["rendered_cards"] > 0 and r["dom_nodes"] > r["rendered_cards"], r
        assert {"tidings:board-render", "tidings:remote-apply"} <= set(r["app_marks"]), r
    assert data["machine"]["cores"] >= 1
