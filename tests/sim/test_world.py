"""The simulated fleet with the real controllers and hubs: conservation, determinism,
a crash, and what the drain window does to reconnects."""

from __future__ import annotations

from collections import Counter

import pytest

from tidings.client.controller import PushState
from tidings.sim.clock import EPOCH
from tidings.sim.scenarios import (
    CrashPlan,
    DeployPlan,
    crash,
    deploy,
    fanout,
    pause,
    run_world,
)
from tidings.sim.world import Mode, SimConfig, World

SMALL = SimConfig(
    clients=600, projects=12, servers=3, edits_per_s=4.0, ramp=10, settle=15, duration=20, tail=20
)


def applied_samples_expected(world: World) -> int:
    """Every edit committed in the measured window, once per client watching its project."""
    watchers = Counter(c.project for c in world.clients)
    rec = world.recorder
    total = 0
    for project, events in enumerate(world.app._events):
        for e in events:
            if rec.measure_from <= e["ts"] < rec.measure_to:
                total += watchers[project]
    return total


@pytest.mark.parametrize("mode", [Mode.POLL, Mode.POKE, Mode.FULL])
def test_every_edit_reaches_every_watching_clients_controller(mode: Mode) -> None:
    world = World(SMALL.with_(mode=mode))
    world.run()
    assert world.recorder.totals["edits"] > 40
    assert world.unconverged() == []
    assert len(world.recorder.all_staleness()) == applied_samples_expected(world)


def test_push_makes_changes_arrive_faster_than_polling_alone() -> None:
    p50 = {}
    for mode in (Mode.POLL, Mode.POKE, Mode.FULL):
        run = run_world(str(mode), SMALL.with_(mode=mode), None)
        p50[mode] = run.summary["staleness_p50_ms"]
    # Poll-only waits half the 5 s fallback interval on average; a poke costs the
    # poke delay (<= 250 ms) plus a poll round trip; full push only the delivery.
    assert p50[Mode.POLL] > 1500
    assert p50[Mode.FULL] < p50[Mode.POKE] < 600


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    def figures(seed: int) -> tuple[object, ...]:
        run = run_world("poke", SMALL.with_(seed=seed), None)
        s = run.summary
        return (
            s["staleness_p50_ms"],
            s["staleness_p99_ms"],
            s["app_requests_per_s"],
            s["redis_msgs_per_s"],
            s["events_processed"],
            tuple(run.staleness_ms),
        )

    assert figures(7) == figures(7)
    assert figures(7) != figures(8)


def test_after_a_push_server_crash_every_client_is_connected_again() -> None:
    cfg = SMALL.with_(duration=40, edits_per_s=2.0)
    (run,) = crash(cfg, CrashPlan(at=5.0, reset=True), None)
    s = run.summary
    assert s["clients_on_crashed_server"] > 100
    # One reconnect per client of the dead server (full jitter: 1 to 2 s for the first).
    assert s["reconnects"] == s["clients_on_crashed_server"]
    assert s["seconds_to_reconnect_all"] is not None and s["seconds_to_reconnect_all"] <= 5
    assert s["unconverged_clients"] == 0


def test_silent_crash_is_noticed_through_missed_heartbeats() -> None:
    cfg = SMALL.with_(duration=90, edits_per_s=1.0)
    world = World(cfg)
    killed: list[int] = []

    def kill(_: object) -> None:
        victim = world.servers[0]
        killed.extend(id(c) for c in victim.hub)
        victim.crash(reset=False)

    world.queue.at(cfg.measure_from + 5, kill)
    world.run()
    assert killed
    # Nobody told them: 2.5 heartbeats (62.5 s) after the last one each got (each
    # connection at its own phase, up to one interval before the crash) they
    # reconnected elsewhere.
    states = Counter(c.ctl.inspect()["push"] for c in world.clients)
    assert states == {PushState.HEALTHY: cfg.clients}
    connects = world.recorder.series["push_connects"]
    crash_at = int(cfg.measure_from - EPOCH) + 5
    assert sum(connects[crash_at : crash_at + 37]) == 0
    assert sum(connects[crash_at + 37 :]) == len(killed)


def test_the_drain_window_spreads_reconnects_and_no_window_makes_a_herd() -> None:
    cfg = SMALL.with_(clients=1000, projects=10, servers=2, edits_per_s=1.0, duration=20)
    with_window, without = deploy(cfg, DeployPlan(at=5.0, windows=(30.0, 0.0), boot=2.0), None)
    s = with_window.summary
    # Server 0's clients move to server 1; then all of them move back to the new server 0.
    first, second = s["clients_per_drained_server"]
    assert second == cfg.clients
    assert s["reconnects"] == first + second
    # Reconnects arrive at about clients / window per second, never twice that.
    assert s["peak_over_even_5s"] <= 2.0
    assert s["peak_over_even_1s"] <= 2.0
    herd = without.summary
    assert herd["clients_per_drained_server"] == [first, second]
    assert herd["reconnects"] == first + second
    # Without the window the whole server reconnects within a second.
    assert herd["peak_reconnects_per_s"] >= 0.9 * second
    assert s["unconverged_clients"] == herd["unconverged_clients"] == 0


def test_a_redis_pause_degrades_every_server_and_changes_still_arrive_by_short_polls() -> None:
    """Pokes published during the pause are lost. The health policy misses its link
    heartbeat for ``link_deaf_after`` (3 s) and clients hear ``degraded``, so they
    poll every ``fallback_interval`` (5 s) instead of the 60 s long interval; when
    Redis answers again the servers are ok and re-check every project."""
    cfg = SMALL.with_(duration=30, edits_per_s=4.0)
    (run,) = pause(cfg, seconds=12.0, progress=None, at=5.0)
    s = run.summary
    assert s["pokes_lost"] > 10
    # Every server degraded for most of the pause (not before the first 3 s), then ok.
    degraded = run.series["servers_degraded"]
    start = s["pause_at_s"]
    assert degraded[start + 1] == 0 and degraded[start + 5 : start + 12] == [cfg.servers] * 7
    assert degraded[start + 14 :] == [0] * len(degraded[start + 14 :])
    # A change lost with its poke waits at most: 3 s to degraded, then one short
    # interval with its jitter (5 s + 20 %), plus round trips; never a long one.
    assert s["staleness_max_ms"] < 3_000 + 6_000 + 1_000
    assert s["unconverged_clients"] == 0


def test_sampled_mode_agrees_with_the_full_population() -> None:
    # The same edits (their own random stream) seen by all 2,000 clients, or by 500
    # real controllers standing for 4 each.
    cfg = SMALL.with_(clients=2000, projects=20, duration=30)
    full = run_world("full", cfg, None).summary
    sampled = run_world("sampled", cfg.with_(sample=500), None).summary
    assert sampled["weight"] == 4
    assert sampled["edits_per_s"] == full["edits_per_s"]
    for key in ("app_requests_per_s", "app_polls_per_s", "push_msgs_per_s", "redis_msgs_per_s"):
        assert sampled[key] == pytest.approx(full[key], rel=0.1), key
    assert sampled["staleness_p50_ms"] == pytest.approx(full["staleness_p50_ms"], rel=0.1)


def test_a_fanout_reaches_the_nth_connection_after_n_writes_of_the_servers_core() -> None:
    cfg = SMALL.with_(clients=1000, ramp=5, settle=5, tail=5)
    (run,) = fanout(cfg, pokes=8, spacing=0.25, progress=None)
    s = run.summary
    write = cfg.server.write_cost
    # Connections are written one after another: the median one waits for half of
    # them, the 99th percentile for 99 %, plus a loopback hop (50 us).
    assert s["poke_delivery_p50_ms"] == pytest.approx(500 * write * 1000, abs=2)
    assert s["poke_delivery_p99_ms"] == pytest.approx(990 * write * 1000, abs=2)
    assert s["push_msgs_per_s"] > 0 and s["unconverged_clients"] == 0
