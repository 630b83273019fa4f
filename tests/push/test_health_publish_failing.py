"""The health policy when an app is heard but says some of its pokes fail to
publish: degraded for as long as it says so, never ``ok`` by forgetting, and
never ``ok`` on what it said before our own link went down."""

from __future__ import annotations

from tidings.protocol.push import ServerState
from tidings.push.health import Action, Health, StateChanged

OK, DEGRADED = ServerState.OK, ServerState.DEGRADED


def states(actions: list[Action]) -> list[ServerState]:
    return [a.state for a in actions if isinstance(a, StateChanged)]


def healthy_server() -> Health:
    h = Health(link_deaf_after=3.0, app_deaf_after=3.0, app_forget_after=30.0, now=0.0)
    h.link_changed(True, 0.0)
    h.link_heard(0.1)
    h.app_heard("a", 0.2)
    assert h.state is OK
    return h


def test_an_app_failing_to_publish_keeps_the_server_degraded_past_forget_after() -> None:
    h = healthy_server()
    (change,) = [a for a in h.app_heard("a", 1.0, failing=3) if isinstance(a, StateChanged)]
    assert change.state is DEGRADED and change.apps_failing == 1
    for second in range(2, 100):  # heard every second, failing every time
        h.link_heard(float(second))
        assert states(h.app_heard("a", float(second), failing=1)) == []
        assert h.tick(second + 0.5) == [] and h.state is DEGRADED
    assert not h.switched_off_only
    assert states(h.app_heard("a", 100.0)) == [OK]


def test_a_failing_app_that_falls_silent_stays_degraded_as_a_silent_one() -> None:
    h = healthy_server()
    h.app_heard("a", 1.0, failing=2)
    assert h.state is DEGRADED
    h.link_heard(5.0)
    h.tick(5.0)
    assert h.state is DEGRADED
    assert h.apps.failing(5.0) == [] and h.apps.silent(5.0) == ["a"]


def test_a_failover_says_degraded_once_and_ok_once_when_the_apps_pokes_are_out() -> None:
    """The inputs of a push server during a cluster failover (the failover test
    in tests/broker): the shard that dies also carries the control channel, so
    apps are not heard until the link is back, and then say that their pokes
    are still failing. ``ok`` at the link's return, on the app's word from
    before the kill, would be followed by ``degraded`` a second later."""
    h = healthy_server()
    changes: list[StateChanged] = []

    def feed(actions: list[Action]) -> None:
        changes.extend(a for a in actions if isinstance(a, StateChanged))

    for second in (1.0, 2.0, 3.0, 4.0):
        feed(h.link_heard(second))
        feed(h.app_heard("a", second + 0.2))
    feed(h.link_changed(False, 5.0))  # the shard's master is killed
    for second in (5.5, 6.5, 7.5):  # our own heartbeat's slot is on another shard
        feed(h.link_heard(second))
        feed(h.tick(second + 0.1))
    feed(h.link_changed(True, 7.8))  # resubscribed on the promoted replica
    feed(h.link_heard(7.9))
    assert h.state is DEGRADED and h.apps.unheard(7.9) == ["a"]
    feed(h.app_heard("a", 8.3, failing=4))  # the pokes it kept during the outage
    feed(h.link_heard(8.5))
    feed(h.app_heard("a", 9.3, failing=1))  # resent; one more failed meanwhile
    feed(h.tick(9.4))
    assert h.state is DEGRADED
    feed(h.app_heard("a", 10.3))  # every poke is out
    # The old master returns as a replica: nothing changes in what the server hears.
    for second in (10.5, 11.5, 12.5, 13.5):
        feed(h.link_heard(second))
        feed(h.app_heard("a", second + 0.8))
        feed(h.tick(second + 0.9))
    assert [(c.state, c.links_ok, c.apps_failing, c.apps_unheard) for c in changes] == [
        (DEGRADED, False, 0, 1),  # the link dropped: a is unheard from now
        (OK, True, 0, 0),
    ]
