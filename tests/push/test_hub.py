"""The hub with a fake clock: no sockets, no sleeps (``now`` monotonic, ``WALL + now`` epoch)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tidings.protocol.errors import BadToken, CloseCode, Forbidden, Unavailable
from tidings.protocol.poke import Poke
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import KeyRing, sign_push_token
from tidings.push.hub import HEARTBEAT_GROUPS, MIN_GROUP_CAP, Hub
from tidings.push.settings import PushSettings

from .fakes import FakeBroker, FakeConn

WALL = 1_800_000_000.0
KEYS = KeyRing({"k1": b"k" * 32})


class Rig:
    def __init__(self, **settings: object) -> None:
        self.now = 0.0
        self.broker = FakeBroker()
        self.settings = PushSettings().with_(**settings)
        self.hub = Hub(self.settings, KEYS, self.broker, now=self.now)

    def conn(self, projects: dict[int, int], *, user: int = 1, ttl: float = 600) -> FakeConn:
        conn = FakeConn()
        self.hub.attach(conn, self.now)
        self.subscribe(conn, projects, user=user, ttl=ttl)
        return conn

    def subscribe(
        self,
        conn: FakeConn,
        projects: dict[int, int],
        *,
        user: int = 1,
        ttl: float = 600,
        refresh: bool = False,
        allowed: list[int] | None = None,
    ) -> None:
        token, _ = sign_push_token(
            KEYS, user, allowed or sorted(projects) or [1], now=WALL + self.now, ttl=ttl
        )
        claims = self.hub.authorize(token, projects, WALL + self.now)
        self.hub.subscribe(conn, claims, projects, self.now, WALL + self.now, refresh=refresh)

    def poke(self, project: int, version: int, events: list[dict[str, Any]] | None = None) -> None:
        evs = tuple(events) if events else None
        self.hub.on_poke(Poke(project, version, WALL + self.now, evs))

    def advance(self, seconds: float, step: float = 0.25) -> None:
        end = self.now + seconds
        while self.now < end:
            self.now = min(end, self.now + step)
            self.hub.tick(self.now)


def test_broker_subscription_follows_first_and_last_local_watcher() -> None:
    rig = Rig()
    a = rig.conn({7: 1})
    b = rig.conn({7: 1, 9: 1})
    assert rig.broker.subscribed == [7, 9]
    rig.hub.detach(a)
    assert rig.broker.unsubscribed == []
    rig.hub.detach(b)
    assert sorted(rig.broker.unsubscribed) == [7, 9]
    assert rig.hub.subscribed_projects() == 0


def test_subscribe_is_answered_then_pokes_reach_only_their_projects_watchers() -> None:
    rig = Rig()
    a, b = rig.conn({7: 1}), rig.conn({9: 1})
    assert a.messages[0] == {
        "type": "subscribed",
        "projects": {"7": 1},
        "state": "ok",
        "heartbeat": 25.0,
    }
    rig.poke(7, 2)
    assert a.pokes() == [(7, 2)]
    assert b.pokes() == []


def test_a_poke_is_encoded_once_and_the_same_bytes_go_to_every_connection() -> None:
    rig = Rig()
    conns = [rig.conn({7: 1}) for _ in range(50)]
    rig.poke(7, 2)
    messages = {id(c.raw[-1]) for c in conns}
    assert len(messages) == 1
    assert rig.hub.counters.pokes_sent == 50


def test_stale_and_duplicate_pokes_are_not_forwarded() -> None:
    rig = Rig()
    a = rig.conn({7: 1})
    rig.poke(7, 3)
    rig.poke(7, 3)
    rig.poke(7, 2)
    assert a.pokes() == [(7, 3)]
    assert rig.hub.counters.pokes_stale == 2


def test_a_client_behind_the_last_seen_poke_is_poked_at_once_on_subscribe() -> None:
    rig = Rig()
    rig.conn({7: 1})
    rig.poke(7, 5)
    late = rig.conn({7: 3})
    up_to_date = rig.conn({7: 5})
    assert late.pokes() == [(7, 5)]
    assert up_to_date.pokes() == []


def test_version_keys_newer_than_held_versions_poke_the_clients_behind() -> None:
    rig = Rig()
    behind, current = rig.conn({7: 3}), rig.conn({7: 8})
    assert rig.broker.checks == [{7}, {7}]
    rig.hub.on_versions({7: 8, 99: 4}, WALL)
    assert behind.pokes() == [(7, 8)]
    assert behind.of_type("poke")[0]["ts"] == WALL
    assert current.pokes() == []
    assert rig.hub.counters.recovery_pokes == 1
    # The broker's own poke for the same version is now stale.
    rig.poke(7, 8)
    assert behind.pokes() == [(7, 8)]


def test_after_link_recovery_every_watched_project_is_rechecked() -> None:
    rig = Rig()
    rig.conn({7: 1, 9: 1})
    rig.broker.checks.clear()
    rig.hub.recheck_all()
    assert rig.broker.checks == [{7, 9}]


def test_a_paused_connection_gets_only_the_latest_version_per_project() -> None:
    rig = Rig()
    slow, fast = rig.conn({7: 1, 9: 1}), rig.conn({7: 1})
    rig.hub.paused(slow, rig.now)
    for version in (2, 3, 4):
        rig.poke(7, version)
    rig.poke(9, 2)
    assert fast.pokes() == [(7, 2), (7, 3), (7, 4)]
    assert slow.pokes() == []
    rig.hub.resumed(slow)
    assert slow.pokes() == [(7, 4), (9, 2)]
    assert rig.hub.counters.pokes_coalesced == 2


def test_a_connection_paused_past_the_limit_is_closed_as_slow_and_others_go_on() -> None:
    rig = Rig(slow_consumer_timeout=10.0)
    slow, fast = rig.conn({7: 1}), rig.conn({7: 1})
    rig.hub.paused(slow, rig.now)
    rig.poke(7, 2)
    rig.advance(9.0)
    assert slow.closed is None
    rig.advance(1.5)
    assert slow.closed is not None and slow.closed[0] == CloseCode.SLOW_CONSUMER
    assert rig.hub.counters.slow_closes == 1
    assert rig.hub.counters.pokes_dropped == 1
    rig.poke(7, 3)
    assert fast.pokes() == [(7, 2), (7, 3)]
    assert rig.hub.watchers(7) == 1


def test_heartbeats_every_interval_and_at_once_on_state_change() -> None:
    rig = Rig(heartbeat_interval=25.0)
    conn = rig.conn({7: 1})
    rig.advance(25.0)
    assert conn.of_type("heartbeat") == [{"type": "heartbeat", "state": "ok"}]
    rig.hub.set_state(ServerState.DEGRADED, rig.now)
    assert conn.of_type("heartbeat")[-1] == {"type": "heartbeat", "state": "degraded"}
    rig.hub.set_state(ServerState.DEGRADED, rig.now)
    assert len(conn.of_type("heartbeat")) == 2
    rig.advance(25.0)
    assert conn.of_type("heartbeat")[2:] == [{"type": "heartbeat", "state": "degraded"}]


def test_heartbeats_after_a_drain_began_say_draining() -> None:
    rig = Rig(heartbeat_interval=10.0)
    conn = rig.conn({7: 1})
    rig.advance(10.0)
    assert conn.of_type("heartbeat") == [{"type": "heartbeat", "state": "ok"}]
    rig.hub.drain(rig.now, window=60.0, rand=lambda: 1.0)
    rig.advance(10.0)
    assert conn.of_type("heartbeat")[1:] == [{"type": "heartbeat", "state": "draining"}]


def test_heartbeats_are_spread_over_the_interval_one_per_connection_each_round() -> None:
    """A round to every connection at one instant would hold up pokes behind it."""
    rig = Rig(heartbeat_interval=10.0)
    conns = [rig.conn({7: 1}) for _ in range(1000)]
    most = 0
    for _ in range(3 * 40):  # three intervals in steps of 0.25 s
        before = sum(len(c.of_type("heartbeat")) for c in conns)
        rig.advance(0.25)
        most = max(most, sum(len(c.of_type("heartbeat")) for c in conns) - before)
    assert sorted({len(c.of_type("heartbeat")) for c in conns}) == [3]
    # 1,000 connections that came at once fill groups of MIN_GROUP_CAP (64), 0.2 s
    # apart: at most two groups per 0.25 s step, against 1,000 in one go before.
    assert most <= 2 * MIN_GROUP_CAP
    # Gone connections leave their group; a stall of many intervals sends one round.
    for conn in conns[:500]:
        rig.hub.detach(conn)
    rig.now += 100.0
    rig.hub.tick(rig.now)
    assert sorted({len(c.of_type("heartbeat")) for c in conns[500:]}) == [4]
    rig.advance(10.0)
    assert sorted({len(c.of_type("heartbeat")) for c in conns[500:]}) == [5]


def test_token_warning_before_expiry_then_4401_once_expired() -> None:
    rig = Rig(token_warning=60.0)
    conn = rig.conn({7: 1}, ttl=600)
    rig.advance(539.0)
    assert conn.of_type("token_expiring") == []
    rig.advance(1.0)
    (warning,) = conn.of_type("token_expiring")
    assert warning["expires_at"] == WALL + 600
    # Closed at exp plus the 5 s of clock-skew leeway the verifier allows.
    rig.advance(64.0)
    assert conn.closed is None
    rig.advance(1.0)
    assert conn.closed == (CloseCode.UNAUTHORIZED, "token expired")
    assert rig.hub.watchers(7) == 0
    assert rig.hub.counters.token_expiries == 1


def test_refresh_replaces_the_token_without_a_gap() -> None:
    rig = Rig(token_warning=60.0)
    conn = rig.conn({7: 1}, ttl=600)
    rig.advance(545.0)
    rig.subscribe(conn, {}, ttl=600, refresh=True, allowed=[7, 9])
    rig.advance(100.0)
    assert conn.closed is None
    rig.poke(7, 2)
    assert conn.pokes() == [(7, 2)]
    assert [m["type"] for m in conn.messages].count("subscribed") == 2
    rig.advance(510.0)  # the new token's exp (1145) plus leeway
    assert conn.closed is not None and conn.closed[0] == CloseCode.UNAUTHORIZED


def test_refresh_drops_projects_the_new_token_no_longer_names() -> None:
    rig = Rig()
    conn = rig.conn({7: 1, 9: 1})
    rig.subscribe(conn, {}, refresh=True, allowed=[9])
    assert rig.hub.watchers(7) == 0 and rig.hub.watchers(9) == 1


def test_subscribe_replaces_the_watched_set() -> None:
    rig = Rig()
    conn = rig.conn({7: 1, 9: 1})
    rig.subscribe(conn, {9: 4, 11: 0})
    assert rig.hub.watchers(7) == 0
    assert rig.hub.watchers(11) == 1


def test_tokens_are_checked_for_projects_signature_and_expiry() -> None:
    rig = Rig()
    token, _ = sign_push_token(KEYS, 1, [7], now=WALL)
    with pytest.raises(Forbidden) as exc:
        rig.hub.authorize(token, [7, 8], WALL)
    assert exc.value.extra == {"projects": [8]}
    with pytest.raises(BadToken):
        rig.hub.authorize(token, [7], WALL + 700)
    other, _ = sign_push_token(KeyRing({"k1": b"x" * 32}), 1, [7], now=WALL)
    with pytest.raises(BadToken):
        rig.hub.authorize(other, [7], WALL)


def test_a_token_for_another_user_cannot_take_over_a_connection() -> None:
    rig = Rig()
    conn = rig.conn({7: 1}, user=1)
    with pytest.raises(Forbidden):
        rig.subscribe(conn, {7: 1}, user=2, refresh=True)


def test_full_push_events_are_forwarded_or_stripped_by_setting() -> None:
    events: list[dict[str, Any]] = [{"version": 2, "type": "story_created", "data": {}}]
    on, off = Rig(forward_events=True), Rig(forward_events=False)
    a, b = on.conn({7: 1}), off.conn({7: 1})
    on.poke(7, 2, events)
    off.poke(7, 2, events)
    assert a.of_type("poke")[0]["events"] == events
    assert "events" not in b.of_type("poke")[0]


def test_drain_spreads_reconnect_delays_uniformly_and_closes_each_at_its_delay() -> None:
    rig = Rig()
    conns = [rig.conn({7: 1}) for _ in range(400)]
    rig.hub.drain(rig.now, 30.0, random.Random(3).random)
    delays = sorted(c.of_type("drain")[0]["reconnect_after"] for c in conns)
    assert delays[0] >= 0 and delays[-1] < 30.0
    # Uniform: each 10 s third of the window holds about a third of the clients.
    thirds = [sum(1 for d in delays if k * 10 <= d < (k + 1) * 10) for k in range(3)]
    assert all(100 < n < 170 for n in thirds), thirds
    assert rig.hub.state is ServerState.DRAINING
    closed_by: list[int] = []
    for _ in range(3):
        rig.advance(10.0)
        closed_by.append(sum(1 for c in conns if c.closed is not None))
    assert closed_by[0] == thirds[0]
    assert closed_by[-1] == 400
    for conn in conns:
        assert conn.closed is not None and conn.closed[0] == CloseCode.GOING_AWAY
    # Each connection is closed at the end of its own delay, not before.
    assert len(rig.hub) == 0


def test_no_new_connections_or_subscriptions_while_draining() -> None:
    rig = Rig()
    conn = rig.conn({7: 1})
    rig.hub.drain(rig.now, 30.0, lambda: 0.5)
    with pytest.raises(Unavailable):
        rig.hub.attach(FakeConn(), rig.now)
    with pytest.raises(Unavailable):
        rig.subscribe(conn, {7: 1})
    rig.hub.set_state(ServerState.OK, rig.now)
    assert rig.hub.state is ServerState.DRAINING


def test_a_closed_connection_gets_nothing_more() -> None:
    rig = Rig()
    conn = rig.conn({7: 1})
    rig.hub.detach(conn)
    rig.hub.detach(conn)
    rig.poke(7, 2)
    rig.advance(30.0)
    assert conn.pokes() == []
    assert rig.hub.connections == {"fake": 0}


# -- revocations (docs/PROTOCOL.md 3.2 `revoke`, 4.1 `revoked`) ---------------------


def _subscribe_with_token_from(
    rig: Rig,
    conn: FakeConn,
    projects: dict[int, int],
    issued: float,
    *,
    refresh: bool = False,
    names: list[int] | None = None,
) -> None:
    """Subscribe with a token issued at ``issued`` (relative seconds), naming ``projects``."""
    named = sorted(projects) if names is None else names
    token, _ = sign_push_token(KEYS, 1, named, now=WALL + issued)
    claims = rig.hub.authorize(token, projects, WALL + rig.now)
    rig.hub.subscribe(conn, claims, projects, rig.now, WALL + rig.now, refresh=refresh)


def test_a_revocation_stops_that_users_connections_watching_the_project_at_once() -> None:
    rig = Rig()
    removed, other_user = rig.conn({7: 1, 9: 1}, user=1), rig.conn({7: 1}, user=2)
    rig.hub.on_revoke(1, 7, WALL + rig.now, WALL + rig.now)
    assert removed.of_type("revoked") == [{"type": "revoked", "project": 7}]
    assert removed.closed is None
    rig.poke(7, 2)
    rig.poke(9, 2)
    assert removed.pokes() == [(9, 2)]
    assert other_user.pokes() == [(7, 2)]
    assert other_user.of_type("revoked") == []
    assert rig.hub.watchers(7) == 1
    assert rig.hub.counters.revocations_received == 1
    assert rig.hub.counters.revoked_subscriptions == 1


def test_the_last_revoked_watcher_unsubscribes_the_server_from_the_project() -> None:
    rig = Rig()
    rig.conn({7: 1})
    rig.hub.on_revoke(1, 7, WALL, WALL)
    assert rig.broker.unsubscribed == [7]
    assert rig.hub.subscribed_projects() == 0


def test_a_token_issued_before_the_revocation_is_refused_for_that_project_only() -> None:
    rig = Rig()
    rig.advance(100.0)
    rig.hub.on_revoke(1, 7, WALL + 50.0, WALL + rig.now)
    conn = FakeConn()
    rig.hub.attach(conn, rig.now)
    _subscribe_with_token_from(rig, conn, {7: 1, 9: 1}, issued=40.0)
    assert [m["type"] for m in conn.messages] == ["subscribed", "revoked"]
    assert conn.messages[0]["projects"] == {"9": 1}
    assert conn.messages[1] == {"type": "revoked", "project": 7}
    rig.poke(7, 2)
    rig.poke(9, 2)
    assert conn.pokes() == [(9, 2)]
    assert rig.hub.watchers(7) == 0


def test_a_token_issued_within_the_leeway_after_the_revocation_is_refused_too() -> None:
    # Another app process's clock may be ahead by the leeway: such a token may
    # still have been signed from a read made before the removal committed.
    rig = Rig()
    rig.advance(100.0)
    rig.hub.on_revoke(1, 7, WALL + 50.0, WALL + rig.now)
    refused, accepted = FakeConn(), FakeConn()
    rig.hub.attach(refused, rig.now)
    rig.hub.attach(accepted, rig.now)
    _subscribe_with_token_from(rig, refused, {7: 1}, issued=55.0)
    _subscribe_with_token_from(rig, accepted, {7: 1}, issued=56.0)
    assert refused.of_type("revoked") == [{"type": "revoked", "project": 7}]
    assert accepted.of_type("revoked") == []
    assert accepted.messages[0]["projects"] == {"7": 1}


def test_a_late_revocation_leaves_a_connection_whose_token_came_after_it() -> None:
    # Removed, added back, subscribed with a new token; the removal's revoke
    # arrives only now (a slow broker): the new membership stands.
    rig = Rig()
    rig.advance(100.0)
    conn = FakeConn()
    rig.hub.attach(conn, rig.now)
    _subscribe_with_token_from(rig, conn, {7: 1}, issued=90.0)
    rig.hub.on_revoke(1, 7, WALL + 80.0, WALL + rig.now)
    assert conn.of_type("revoked") == []
    rig.poke(7, 2)
    assert conn.pokes() == [(7, 2)]


def test_a_refresh_with_a_token_from_before_the_revocation_drops_the_project() -> None:
    rig = Rig()
    rig.advance(100.0)
    conn = FakeConn()
    rig.hub.attach(conn, rig.now)
    _subscribe_with_token_from(rig, conn, {7: 1, 9: 1}, issued=90.0)
    rig.hub.on_revoke(1, 7, WALL + 95.0, WALL + rig.now)
    conn.messages.clear()
    # The refresh names no projects: it keeps those the (old) token names, less the revoked.
    _subscribe_with_token_from(rig, conn, {}, issued=92.0, refresh=True, names=[7, 9])
    assert [m["type"] for m in conn.messages] == ["subscribed"]
    assert conn.messages[0]["projects"] == {"9": 1}
    assert rig.hub.watchers(7) == 0


def test_a_paused_connection_gets_the_revocation_and_never_the_projects_queued_poke() -> None:
    rig = Rig()
    conn = rig.conn({7: 1, 9: 1})
    rig.hub.paused(conn, rig.now)
    rig.poke(7, 2)
    rig.poke(9, 2)
    rig.hub.on_revoke(1, 7, WALL + rig.now, WALL + rig.now)
    assert conn.pokes() == []
    rig.hub.resumed(conn)
    assert conn.pokes() == [(9, 2)]
    assert conn.of_type("revoked") == [{"type": "revoked", "project": 7}]
    assert rig.hub.counters.pokes_sent == 1


def test_revocations_are_kept_for_the_longest_token_lifetime_plus_leeway() -> None:
    rig = Rig(max_token_lifetime=600.0)
    rig.hub.on_revoke(1, 7, WALL, WALL)
    rig.now = 603.0
    conn = FakeConn()
    rig.hub.attach(conn, rig.now)
    # Issued just before the revocation: accepted until 599 s + 5 s of leeway.
    _subscribe_with_token_from(rig, conn, {7: 1}, issued=-1.0)
    assert conn.of_type("revoked") != []
    revocations = rig.hub.revocations
    # Kept for the last such token (issued at the leeway, accepted to 610 s).
    assert revocations.revokes(1, 7, WALL + 5.0, WALL + 609.0)
    assert not revocations.revokes(1, 7, WALL + 5.0, WALL + 610.0)
    # The next revocation sweeps the expired one out.
    rig.hub.on_revoke(2, 7, WALL + 610.0, WALL + 610.0)
    assert len(revocations) == 1


def test_the_revocation_set_is_bounded_and_forgets_the_oldest_first() -> None:
    rig = Rig()
    revocations = rig.hub.revocations
    revocations.limit = 3
    for user in range(1, 6):
        rig.hub.on_revoke(user, 7, WALL, WALL)
    assert len(revocations) == 3
    assert rig.hub.counters.revocations_evicted == 2
    assert not revocations.revokes(1, 7, WALL, WALL)
    assert not revocations.revokes(2, 7, WALL, WALL)
    assert revocations.revokes(5, 7, WALL, WALL)


def test_a_first_heartbeat_comes_about_an_interval_after_connecting_at_the_phase() -> None:
    # Servers started together pick different phases, so they do not write
    # their heartbeat groups at the same moments.
    settings = PushSettings(heartbeat_interval=10.0)
    slot = 10.0 / HEARTBEAT_GROUPS
    hub = Hub(settings, KEYS, FakeBroker(), now=100.0, heartbeat_phase=0.25)
    conn = FakeConn()
    hub.attach(conn, 100.0)  # joins the group served last: the one due in ~10 s
    hub.tick(100.0 + 49.24 * slot)
    assert conn.of_type("heartbeat") == []
    hub.tick(100.0 + 49.26 * slot)
    assert len(conn.of_type("heartbeat")) == 1
    hub.tick(110.0 + 49.24 * slot)
    assert len(conn.of_type("heartbeat")) == 1
    hub.tick(110.0 + 49.26 * slot)
    assert len(conn.of_type("heartbeat")) == 2


def test_a_version_key_out_of_range_is_counted_and_skipped_and_the_others_still_poke() -> None:
    rig = Rig()
    a = rig.conn({7: 1, 9: 1})
    # Before: orjson could not encode 2**64 + 1, and the exception killed the reader.
    rig.hub.on_versions({7: 2**64 + 1, 9: 4}, WALL)
    assert a.pokes() == [(9, 4)]
    assert rig.hub.counters.broker_invalid == 1
    rig.hub.on_versions({7: 2**53 + 1}, WALL)
    rig.poke(7, 2)
    assert a.pokes() == [(9, 4), (7, 2)]
    assert rig.hub.counters.broker_invalid == 2


def test_a_poke_out_of_range_does_not_make_later_real_pokes_stale() -> None:
    rig = Rig()
    a = rig.conn({7: 1})
    rig.poke(7, 2**64 - 1)
    rig.poke(7, 2)
    assert a.pokes() == [(7, 2)]
    assert rig.hub.counters.broker_invalid == 1
    assert rig.hub.known_version(7) == 2


def test_a_poke_whose_events_were_refused_goes_out_as_a_plain_poke_and_is_counted() -> None:
    rig = Rig(forward_events=True)
    a = rig.conn({7: 1})
    rig.hub.on_poke(Poke(7, 2, WALL, None, "story.story_type: not a story type"))
    assert a.pokes() == [(7, 2)]
    assert "events" not in a.of_type("poke")[0]
    assert rig.hub.counters.broker_invalid == 1


def test_a_revocation_dated_in_the_future_lasts_only_as_long_as_one_from_now() -> None:
    rig = Rig(max_token_lifetime=600.0)
    revocations = rig.hub.revocations
    rig.hub.on_revoke(1, 7, WALL + 10**9, WALL)
    assert revocations.revokes(1, 7, WALL, WALL + 1.0)
    # Kept as if dated now (plus the leeway): gone once a token from now has expired.
    assert not revocations.revokes(1, 7, WALL, WALL + 5.0 + revocations.retention)
    # And a token issued after that is not refused meanwhile.
    assert not revocations.revokes(1, 7, WALL + 60.0, WALL + 60.0)


def test_a_forged_poke_in_range_silences_a_project_only_until_the_key_is_read_twice() -> None:
    rig = Rig()
    a = rig.conn({7: 1})
    rig.poke(7, 2**53)  # within bounds, but no commit ever had it: its key never did
    rig.poke(7, 2)  # a real commit: stale next to 2**53
    assert a.pokes() == [(7, 2**53)]
    # One read below the poked version is a read that raced a poke: nothing changes.
    rig.hub.on_versions({7: 2}, WALL)
    rig.poke(7, 3)
    assert a.pokes() == [(7, 2**53)]
    # Twice for the same version: the key is believed again (its poke, dropped as
    # stale, is made now), and real pokes flow.
    rig.hub.on_versions({7: 3}, WALL)
    assert rig.hub.known_version(7) == 3
    assert rig.hub.counters.broker_invalid == 1
    assert a.pokes() == [(7, 2**53), (7, 3)]
    rig.poke(7, 4)
    assert a.pokes() == [(7, 2**53), (7, 3), (7, 4)]
    late = rig.conn({7: 3})
    assert late.pokes() == [(7, 4)]
    rig.poke(7, 5)
    assert late.pokes() == [(7, 4), (7, 5)]


def test_a_read_that_raced_a_poke_changes_nothing() -> None:
    rig = Rig()
    a = rig.conn({7: 1})
    rig.poke(7, 5)
    rig.hub.on_versions({7: 4}, WALL)  # the read left before 5's key was set
    rig.hub.on_versions({7: 5}, WALL)  # the next read sees it
    rig.hub.on_versions({7: 4}, WALL)  # another race, later: still once per version
    assert rig.hub.known_version(7) == 5
    assert rig.hub.counters.broker_invalid == 0
    rig.poke(7, 5)
    assert a.pokes() == [(7, 5)]


def _group_by_the_rule(hub: Hub, groups: list[set[Any]]) -> int:
    """``_group_for_new`` as documented, recomputed from scratch: the group served
    last, else the one before it, and so on, the first with fewer than the cap
    (counting the connection being attached)."""
    cap = max(MIN_GROUP_CAP, 2 * (len(hub) + 1) // HEARTBEAT_GROUPS)
    group = (hub._beat_next_group - 1) % HEARTBEAT_GROUPS
    for _ in range(HEARTBEAT_GROUPS - 1):
        if len(groups[group]) < cap:
            break
        group = (group - 1) % HEARTBEAT_GROUPS
    return group


def test_new_connections_join_the_group_the_rule_picks_through_arrivals_leaves_and_beats() -> None:
    rig = Rig(heartbeat_interval=10.0)
    rng = random.Random(16)
    live: list[FakeConn] = []
    groups = rig.hub._beat_groups
    for _ in range(6000):
        roll = rng.random()
        if roll < 0.2 and live:
            rig.hub.detach(live.pop(rng.randrange(len(live))))
        elif roll < 0.23:
            rig.advance(0.2)
        else:
            expected = _group_by_the_rule(rig.hub, groups)
            conn = FakeConn()
            rig.hub.attach(conn, rig.now)
            assert conn.beat_group == expected
            live.append(conn)
    assert len(live) > 3000  # past the point where the cap grows with the count
