"""The library's pure parts: advice from flags, the retry policy, the messages."""

from __future__ import annotations

import random

import orjson
import pytest

from tidings.protocol.advice import Advice
from tidings.protocol.control import parse_revoke
from tidings.protocol.poke import MAX_FULL_PUSH_BYTES, decode_poke
from tidings.publish import ADVICE_HEADER, Cadence, Outcome, PublishFailed, PushFlags, Retry, advise
from tidings.publish.advice import rollout_bucket
from tidings.publish.outcome import (
    MAX_ATTEMPTS,
    AppBeats,
    Attempts,
    poke_message,
    revoke_message,
)


def test_advice_follows_the_kill_switch_the_rollout_and_project_overrides() -> None:
    cadence = Cadence(interval_push=120, interval=4, jitter=0.1)
    inside = next(u for u in range(1, 1000) if rollout_bucket(u) < 25)
    outside = next(u for u in range(1, 1000) if rollout_bucket(u) >= 25)
    flags = PushFlags(rollout_percent=25, projects={7: False, 8: True})
    assert advise(flags, inside, None, cadence).push
    assert not advise(flags, outside, None, cadence).push
    assert not advise(flags, inside, 7, cadence).push
    assert advise(flags, outside, 8, cadence).push
    off = PushFlags(enabled=False, projects={8: True})
    assert not any(advise(off, u, 8, cadence).push for u in range(1, 200))


def test_advice_header_and_body_say_the_same_and_parse_back() -> None:
    advice = advise(PushFlags(), 1, 3, Cadence(interval_push=300, interval=5, jitter=0.2))
    assert ADVICE_HEADER == "Tidings-Advice"
    assert advice.header() == "push=1, interval=300, fallback=5, jitter=0.2"
    assert Advice.parse_header(advice.header()) == advice
    assert Advice.from_json(orjson.loads(orjson.dumps(advice.to_json()))) == advice


def test_cadence_refuses_what_a_client_cannot_use() -> None:
    with pytest.raises(ValueError, match="positive"):
        Cadence(interval=0)
    with pytest.raises(ValueError, match="jitter"):
        Cadence(jitter=1.0)


def test_retry_is_bounded_and_its_waits_stay_under_the_cap() -> None:
    with pytest.raises(ValueError):
        Retry(attempts=0)
    with pytest.raises(ValueError):
        Retry(attempts=MAX_ATTEMPTS + 1)
    waits = list(Retry(attempts=MAX_ATTEMPTS, base=0.05, cap=0.3).delays(random.Random(1)))
    assert len(waits) == MAX_ATTEMPTS - 1
    assert all(0 <= w <= 0.3 for w in waits)
    assert list(Retry(attempts=1).delays()) == []


def test_attempts_wait_between_tries_then_give_up_with_the_last_error() -> None:
    attempts = Attempts("poke project=1 version=2", Retry(attempts=3, base=0.5, cap=0.5))
    assert 0 <= attempts.failed(ConnectionError("one")) <= 0.5
    assert 0 <= attempts.failed(ConnectionError("two")) <= 0.5
    last = ConnectionError("three")
    with pytest.raises(PublishFailed, match=r"poke project=1 version=2: .*3 attempt") as failed:
        attempts.failed(last)
    assert failed.value.__cause__ is last
    bad = ValueError("no such project")
    with pytest.raises(ValueError) as raised:
        Attempts("x", Retry()).failed(bad)
    assert raised.value is bad


def test_app_beats_are_numbered_and_name_the_connection() -> None:
    beats = AppBeats.named("a1")
    assert beats.client_name is not None and "a1" in beats.client_name
    first, second = orjson.loads(beats.beat()), orjson.loads(beats.beat(push_off=True))
    assert (first["seq"], second["seq"]) == (1, 2)
    assert (first["push"], second["push"]) == ("on", "off")
    assert orjson.loads(beats.bye())["app"] == "a1"


def test_outcome_is_stale_only_when_the_key_held_a_later_version() -> None:
    assert Outcome(1, 5, 5).published
    assert Outcome(1, 5, 4).published  # cannot happen after a CAS, but is not stale
    assert Outcome(1, 5, 6).stale and not Outcome(1, 5, 6).published


def test_messages_are_the_protocols_and_refuse_bad_ids() -> None:
    poke = decode_poke(poke_message(42, 7, ts=1_800_000_000.5))
    assert (poke.project, poke.version, poke.ts, poke.events) == (42, 7, 1_800_000_000.5, None)
    assert parse_revoke(revoke_message(3, 42, 1_800_000_000.0)) == (3, 42, 1_800_000_000.0)
    for project, version in ((0, 1), (1, -1), (2**53 + 1, 1), (1, 2**53 + 1)):
        with pytest.raises(ValueError):
            poke_message(project, version)
    with pytest.raises(ValueError):
        revoke_message(0, 1, 1.0)


def test_full_push_events_past_the_cap_are_left_for_the_poll() -> None:
    event = {"v": 7, "type": "story_created", "ts": 1.0, "actor": 1, "data": {}}
    big = {**event, "data": {"title": "x" * MAX_FULL_PUSH_BYTES}}
    assert b'"events"' not in poke_message(42, 7, events=[big])
    small = poke_message(42, 7, events=[event])
    assert orjson.loads(small)["events"] == [event] and len(small) < MAX_FULL_PUSH_BYTES
