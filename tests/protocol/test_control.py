"""Control-channel messages: what the builders write, the parsers read back, and
what the parsers refuse (never by raising: a bad control message is ignored)."""

from __future__ import annotations

import pytest

from tidings.protocol import control


def test_a_revoke_round_trips() -> None:
    data = control.revoke(12, 7, 1732780200.5)
    assert control.parse_revoke(data) == (12, 7, 1732780200.5)
    assert control.parse_link_heartbeat(data) is None
    assert control.parse_push_stats(data) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"[]",
        b'{"type": "revoke"}',
        b'{"type": "revoke", "user": 1, "project": 7}',
        b'{"type": "revoke", "user": "1", "project": 7, "at": 1}',
        b'{"type": "revoke", "user": 1, "project": 0, "at": 1}',
        b'{"type": "revoke", "user": 1, "project": 7.0, "at": 1}',
        b'{"type": "revoke", "user": true, "project": 7, "at": 1}',
        b'{"type": "revoke", "user": 1, "project": 7, "at": -1}',
        b'{"type": "revoke", "user": 1, "project": 7, "at": true}',
        b'{"type": "revoke", "user": 1, "project": 7, "at": 1e300}',
        b'{"type": "revoke", "user": 1, "project": 99999999999999999999, "at": 1}',
        b'{"type": "link_heartbeat", "server": "a", "seq": 1}',
        b'{"type": "revoke", "user": 1, "project": 7, "at": 1, "pad": "'
        + b"x" * control.MAX_CONTROL_MESSAGE_BYTES
        + b'"}',
    ],
)
def test_a_malformed_revoke_is_ignored_not_raised(data: bytes) -> None:
    assert control.parse_revoke(data) is None


def test_link_heartbeat_and_push_stats_are_not_taken_for_each_other() -> None:
    beat = control.link_heartbeat("s1", 3)
    stats = control.push_stats("s1", 1.0, {"state": "ok", "connections": {"ws": 1}})
    assert control.parse_link_heartbeat(beat) == ("s1", 3)
    assert control.parse_push_stats(beat) is None
    assert control.parse_link_heartbeat(stats) is None
    assert control.parse_revoke(stats) is None


def test_app_heartbeat_and_bye_round_trip_and_are_not_taken_for_others() -> None:
    beat = control.app_heartbeat("a1b2c3", 41)
    bye = control.app_bye("a1b2c3")
    assert control.parse_app_heartbeat(beat) == ("a1b2c3", 41, False, None, 0)
    off = control.app_heartbeat("a1b2c3", 42, push_off=True)
    assert control.parse_app_heartbeat(off) == ("a1b2c3", 42, True, None, 0)
    named = control.app_heartbeat("a1b2c3", 43, client="tidings-app:a1b2c3")
    assert control.parse_app_heartbeat(named) == ("a1b2c3", 43, False, "tidings-app:a1b2c3", 0)
    # "push" is optional and only "off" switches push off (another language's publisher).
    for extra, push_off in ((b"", False), (b',"push":"on"', False), (b',"push":false', False)):
        other = b'{"type":"app_heartbeat","app":"x","seq":1' + extra + b"}"
        assert control.parse_app_heartbeat(other) == ("x", 1, push_off, None, 0)
    # A client name Redis would refuse is ignored, not the heartbeat.
    for bad in (b'"has space"', b'""', b"7", b'"' + b"x" * 200 + b'"', rb'"caf\u00e9"'):
        other = b'{"type":"app_heartbeat","app":"x","seq":1,"client":' + bad + b"}"
        assert control.parse_app_heartbeat(other) == ("x", 1, False, None, 0), bad
    assert control.parse_app_bye(bye) == "a1b2c3"
    assert control.parse_app_bye(beat) is None
    assert control.parse_app_heartbeat(bye) is None
    # A push server's own heartbeat is not an app's, nor the other way round.
    assert control.parse_link_heartbeat(beat) is None
    assert control.parse_app_heartbeat(control.link_heartbeat("a1b2c3", 41)) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"{",
        b'{"type": "app_heartbeat"}',
        b'{"type": "app_heartbeat", "app": "a", "seq": "1"}',
        b'{"type": "app_heartbeat", "app": "a", "seq": true}',
        b'{"type": "app_heartbeat", "app": "a", "seq": -1}',
        b'{"type": "app_heartbeat", "app": "a", "seq": 1.0}',
        b'{"type": "app_heartbeat", "app": "", "seq": 1}',
        b'{"type": "app_heartbeat", "app": 7, "seq": 1}',
        b'{"type": "app_heartbeat", "app": "' + b"x" * 65 + b'", "seq": 1}',
        b'{"type": "app_heartbeat", "app": "a", "seq": 1, "pad": "'
        + b"x" * control.MAX_CONTROL_MESSAGE_BYTES
        + b'"}',
    ],
)
def test_a_malformed_app_heartbeat_is_ignored_not_raised(data: bytes) -> None:
    assert control.parse_app_heartbeat(data) is None


@pytest.mark.parametrize(
    "data",
    [b'{"type": "app_bye"}', b'{"type": "app_bye", "app": ""}', b'{"type": "app_bye", "app": []}'],
)
def test_a_malformed_app_bye_is_ignored_not_raised(data: bytes) -> None:
    assert control.parse_app_bye(data) is None


def test_an_app_heartbeat_says_how_many_publishes_are_failing() -> None:
    beat = control.parse_app_heartbeat(control.app_heartbeat("a1", 1, failing=7))
    assert beat is not None and beat.failing == 7
    assert b"publish_failing" not in control.app_heartbeat("a1", 2)
    garbled = b'{"type":"app_heartbeat","app":"a1","seq":3,"publish_failing":"many"}'
    beat = control.parse_app_heartbeat(garbled)
    assert beat is not None and beat.failing == 1  # something fails: never taken for 0
