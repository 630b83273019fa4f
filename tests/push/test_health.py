"""The health policy on a fake clock: what makes a server degraded, what brings it
back, and what the server is asked to do (tell clients, re-check, log, look for apps)."""

from __future__ import annotations

from tidings.protocol.push import ServerState
from tidings.push.health import (
    DEFAULT_LINK,
    Action,
    AppEvent,
    Health,
    LookForApps,
    StateChanged,
)

OK, DEGRADED = ServerState.OK, ServerState.DEGRADED


def health(**kw: object) -> Health:
    settings: dict[str, object] = {
        "link_deaf_after": 3.0,
        "app_deaf_after": 3.0,
        "app_forget_after": 30.0,
        "app_gone_hold": 5.0,
        "app_check_interval": 1.0,
        "now": 0.0,
    }
    settings.update(kw)
    return Health(**settings)  # type: ignore[arg-type]


def states(actions: list[Action]) -> list[ServerState]:
    return [a.state for a in actions if isinstance(a, StateChanged)]


def events(actions: list[Action]) -> list[tuple[str, str]]:
    return [(a.event, a.app) for a in actions if isinstance(a, AppEvent)]


def test_a_server_is_degraded_until_its_own_heartbeat_comes_back_on_a_live_link() -> None:
    h = health()
    assert h.state is DEGRADED
    assert h.link_changed(True, 0.0) == []
    assert h.tick(1.0) == []
    (change,) = h.link_heard(1.1)
    assert change == StateChanged(OK, True, 0.0, 0, False)
    assert h.state is OK and h.may_audit(1.1)


def test_a_deaf_link_degrades_and_its_recovery_says_ok_once() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.link_heard(0.5)
    assert h.tick(3.4) == []  # heard 2.9 s ago: still fine
    assert states(h.tick(3.5)) == [DEGRADED]
    assert not h.may_audit(3.6) and h.tick(4.0) == []
    assert states(h.link_heard(5.0)) == [OK]
    assert h.tick(5.1) == []


def test_a_dropped_link_degrades_at_once_and_old_heartbeats_prove_nothing() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.link_heard(0.1)
    assert states(h.link_changed(False, 1.0)) == [DEGRADED]
    assert h.link_changed(True, 1.5) == []  # up again, but not heard yet
    assert states(h.link_heard(1.6)) == [OK]


def test_every_link_must_be_healthy_and_the_oldest_heartbeat_is_the_age() -> None:
    h = health(links=("shard-a", "shard-b"))
    for name in ("shard-a", "shard-b"):
        h.link_changed(True, 0.0, name)
    assert h.link_heard(0.2, "shard-a") == []
    assert states(h.link_heard(0.4, "shard-b")) == [OK]
    h.link_heard(2.5, "shard-a")
    assert h.heartbeat_age(3.0) == 3.0 - 0.4
    assert states(h.tick(3.5)) == [DEGRADED]  # shard-b deaf, shard-a fine
    assert states(h.link_heard(3.6, "shard-b")) == [OK]


def test_a_silent_app_degrades_until_heard_again_with_one_event_each_way() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0)
    h.link_heard(0.1)
    h.link_heard(3.0)
    actions = h.link_heard(3.5)
    assert events(actions) == [("app_silent", "a")] and states(actions) == [DEGRADED]
    assert events(h.link_heard(4.0)) == []  # logged once
    actions = h.app_heard("a", 4.5)
    assert events(actions) == [("app_heard", "a")] and states(actions) == [OK]


def test_a_goodbye_ends_an_apps_silence_and_forgetting_ends_it_too() -> None:
    h = health(app_forget_after=10.0)
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0)
    h.app_heard("b", 0.0)
    for t in (0.5, 2.5, 4.5):
        h.link_heard(t)
    assert h.state is DEGRADED
    actions = h.app_bye("a", 4.6)
    assert events(actions) == [("app_bye", "a")] and states(actions) == []  # b still silent
    for t in (6.5, 8.5, 10.5):
        actions = h.link_heard(t)
    assert events(actions) == [("app_forgotten", "b")] and states(actions) == [OK]


def test_push_switched_off_degrades_as_a_policy_not_a_fault() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.link_heard(0.1)
    assert states(h.app_heard("a", 0.5, push_off=True)) == [DEGRADED]
    assert h.switched_off_only
    h.link_changed(False, 1.0)
    assert not h.switched_off_only  # now a fault as well
    h.link_changed(True, 1.1)
    h.link_heard(1.2)
    # What a said before the drop is stale: not "only switched off" until heard again.
    assert not h.switched_off_only and h.state is DEGRADED
    h.app_heard("a", 1.3, push_off=True)
    assert h.switched_off_only and h.state is DEGRADED
    assert states(h.app_heard("a", 1.5)) == [OK] and not h.switched_off_only


def test_silent_apps_that_named_their_connection_are_looked_for_at_most_every_interval() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0, client="tidings-app-a")
    h.app_heard("b", 0.0)  # names no connection: cannot be looked for
    h.link_heard(2.0)
    assert [a for a in h.tick(3.5) if isinstance(a, LookForApps)] == [
        LookForApps({"a": "tidings-app-a"})
    ]
    assert not any(isinstance(a, LookForApps) for a in h.tick(4.0))
    assert any(isinstance(a, LookForApps) for a in h.tick(4.5))


def test_an_app_found_gone_stays_silent_for_the_hold_then_leaves_without_another_event() -> None:
    h = health(app_gone_hold=2.0)
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0, client="tidings-app-a")
    h.link_heard(3.2)
    h.tick(3.5)
    # Still held by Redis: nothing happens.
    assert h.apps_found({"a": "tidings-app-a"}, {"tidings-app-a"}, 3.6) == []
    actions = h.apps_found({"a": "tidings-app-a"}, {"other"}, 3.7)
    assert actions == [AppEvent("app_gone", "a", "tidings-app-a")]
    assert h.state is DEGRADED and "a" not in h.apps
    h.link_heard(4.9)
    assert h.tick(4.9) == []  # silent until 0 + 3 (deaf) + 2 (hold)
    assert states(h.tick(5.0)) == [OK] and events(h.tick(5.1)) == []


def test_an_app_heard_again_while_the_answer_was_on_its_way_is_not_gone() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0, client="tidings-app-a")
    h.link_heard(3.2)
    h.tick(3.5)
    h.app_heard("a", 3.6, client="tidings-app-a2")  # restarted with a new connection
    assert events(h.apps_found({"a": "tidings-app-a"}, set(), 3.7)) == []
    assert "a" in h.apps


def test_our_link_coming_back_gives_every_app_time_to_be_heard_again() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0)
    h.link_heard(0.1)
    h.link_changed(False, 1.0)
    h.link_changed(True, 5.0)  # a was not heard for 5 s, but neither was anything else
    # Not silent, but not ok on what a said before the drop either: ok once heard.
    assert events(h.link_heard(5.1)) == [] and h.state is DEGRADED
    actions = h.app_heard("a", 5.6)
    assert events(actions) == [] and states(actions) == [OK]


def test_an_app_unheard_since_our_link_came_back_falls_silent_after_deaf_after() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.app_heard("a", 0.0)
    h.link_heard(0.1)
    h.link_changed(False, 1.0)
    h.link_changed(True, 2.0)
    h.link_heard(2.1)
    assert h.apps.unheard(2.1) == ["a"] and h.apps.silent(2.1) == []
    h.link_heard(4.5)
    actions = h.tick(5.1)
    assert events(actions) == [("app_silent", "a")] and h.state is DEGRADED
    assert h.apps.unheard(5.1) == []  # counted once, as silent


def test_draining_is_final() -> None:
    h = health()
    h.link_changed(True, 0.0)
    h.link_heard(0.1)
    h.drain()
    assert h.draining and not h.may_audit(0.2)
    assert h.link_changed(False, 0.3) == [] and h.link_heard(0.4) == []
    assert h.state is ServerState.DRAINING


def test_the_default_link_has_a_name_the_server_and_the_simulator_share() -> None:
    assert list(health().links) == [DEFAULT_LINK]
