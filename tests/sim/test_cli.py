"""``tidings sim`` end to end at a tiny size: the table, the JSON and the plot of each scenario."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tidings.cli import main

TINY = ["--clients", "200", "--projects", "4", "--servers", "2", "--duration", "10", "--quiet"]


@pytest.mark.parametrize("scenario", ["steady", "crash", "deploy", "pause"])
def test_each_scenario_writes_its_json_and_plot(
    scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    extra = {"deploy": ["--drain-window", "5"], "pause": ["--pause", "5"]}.get(scenario, [])
    assert main(["sim", scenario, *TINY, *extra, "--out", str(tmp_path)]) == 0
    body = json.loads((tmp_path / f"{scenario}.json").read_text())
    assert (tmp_path / f"{scenario}.png").stat().st_size > 10_000
    assert body["params"]["clients"] == 200
    runs = body["runs"]
    expected = {
        "steady": {"poll", "poke", "full"},
        "crash": {"crash"},
        "deploy": {"drain 5 s", "drain 0 s"},
        "pause": {"pause"},
    }[scenario]
    assert set(runs) == expected
    for run in runs.values():
        assert run["summary"]["unconverged_clients"] == 0
        assert run["summary"]["staleness_samples"] > 0
    printed = capsys.readouterr().out
    assert "unconverged" in printed and f"{scenario}.json" in printed


def test_compare_prints_measured_and_simulated_side_by_side(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    measured: dict[str, Any] = {
        "params": {
            "clients": 200,
            "projects": 4,
            "edits_per_s": 1.0,
            "poll_interval_s": 5,
            "poll_interval_push_s": 60,
            "jitter_s": 0.2,
            "duration_s": 20,
            "idle_projects": 1,
        },
        "modes": {
            "poll": {
                "staleness_p50_ms": 2500,
                "staleness_p99_ms": 5000,
                "app_requests_per_s": 41,
                "polls_per_client_hour": 720,
                "bytes_per_client_hour": 300000,
                "idle_bytes_per_client_hour": 250000,
            },
            "poke": {
                "staleness_p50_ms": 200,
                "staleness_p99_ms": 400,
                "app_requests_per_s": 50,
                "polls_per_client_hour": 900,
                "bytes_per_client_hour": 400000,
                "idle_bytes_per_client_hour": 20000,
            },
        },
    }
    path = tmp_path / "freshness.json"
    path.write_text(json.dumps(measured))
    out = tmp_path / "out"
    assert main(["sim", "compare", str(path), "--quiet", "--out", str(out)]) == 0
    rows = json.loads((out / "compare_rows.json").read_text())
    assert {(r["mode"], r["metric"]) for r in rows} == {
        (m, k) for m in ("poll", "poke") for k in measured["modes"]["poll"]
    }
    by = {(r["mode"], r["metric"]): r for r in rows}
    poll_p50 = by[("poll", "staleness_p50_ms")]
    # Polling every 5 s (+-20%) leaves a change waiting 2.5 s on average.
    assert 1500 < poll_p50["simulated"] < 3500
    assert poll_p50["ratio"] == pytest.approx(poll_p50["simulated"] / 2500, abs=1e-3)
    # The simulation used the measured parameters (and one push server, as measured).
    params = json.loads((out / "compare.json").read_text())["params"]
    assert (params["clients"], params["idle_projects"], params["servers"]) == (200, 1, 1)
    # Clients of the never-edited project cost far less in poke mode than in poll mode.
    idle_poll = by[("poll", "idle_bytes_per_client_hour")]["simulated"]
    idle_poke = by[("poke", "idle_bytes_per_client_hour")]["simulated"]
    assert idle_poke * 3 < idle_poll
    assert "sim/meas" in capsys.readouterr().out
