"""What a publisher on Redis sends, fuzzed: pokes (with and without events), control
messages and version-key values. Every input ends in a refusal the server counts, or a
value within the protocol's bounds that the hub forwards without raising."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import orjson
from hypothesis import strategies as st

from tidings.protocol import control
from tidings.protocol.errors import BadMessage
from tidings.protocol.events import check_events
from tidings.protocol.poke import decode_poke, parse_version_key, valid_version
from tidings.protocol.push import poke as poke_message
from tidings.protocol.tokens import sign_push_token
from tidings.push.hub import Hub
from tidings.push.settings import PushSettings

from ..conftest import KEYS
from ..fakes import FakeBroker, FakeConn
from . import strategies as s
from .test_parsers_fuzz import fuzz

VECTORS = Path(__file__).parents[2] / "vectors" / "project_events.json"
EVENTS: list[dict[str, Any]] = orjson.loads(VECTORS.read_bytes())["events"]
PROJECT = 7
#: Inputs per test: built JSON costs more to generate than bytes, so a fifth of the
#: parsers' count (500 in CI; TIDINGS_FUZZ_INPUTS=10000 gives 2,000).
INPUTS = s.PARSER_INPUTS // 5

_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
_versions = st.one_of(
    st.integers(0, 200),
    st.sampled_from([2**53, 2**53 + 1, 2**63, 2**64 - 1, 2**64, -1]),
    _json,
)


def _seed(last: int, n: int) -> bytes:
    events = EVENTS[last - n : last]
    body = {"type": "poke", "project": PROJECT, "version": last, "ts": 1.5, "events": events}
    return orjson.dumps(body)


SEEDS = [_seed(last, n) for last, n in ((1, 1), (5, 2), (40, 3), (len(EVENTS), 1))]


def _poke(version: Any, ts: Any, events: Any, extra: dict[str, Any]) -> bytes:
    body = {"type": "poke", "project": PROJECT, "version": version, "ts": ts, **extra}
    if events is not None:
        body["events"] = events
    return json.dumps(body).encode()  # orjson cannot write integers beyond 64 bits


def _event_edit(index: int, path: list[str], value: Any) -> list[Any]:
    """A valid event with one field (at any depth) replaced."""
    event = orjson.loads(orjson.dumps(EVENTS[index % len(EVENTS)]))
    target = event
    for key in path[:-1]:
        if not isinstance(target.get(key), dict):
            break
        target = target[key]
    target[path[-1]] = value
    return [event]


_fields = st.sampled_from(
    [
        "version",
        "type",
        "data",
        "actor",
        "ts",
        "story",
        "story_type",
        "title",
        "labels",
        "story_id",
        "changes",
        "text",
        "done",
        "position",
        "user_id",
        "role",
        "name",
    ]
)
broker_messages = st.one_of(
    s.mutated(SEEDS, max_edits=3),
    st.builds(
        _poke,
        _versions,
        st.one_of(st.floats(allow_nan=False), st.integers(-5, 2**41), _json),
        st.one_of(
            st.none(),
            _json,
            st.builds(
                _event_edit, st.integers(0, 200), st.lists(_fields, min_size=1, max_size=3), _json
            ),
        ),
        st.dictionaries(st.text(max_size=6), _json, max_size=2),
    ),
    st.binary(max_size=64),
)


def _hub() -> tuple[Hub, FakeConn]:
    hub = Hub(PushSettings(), KEYS, FakeBroker(), now=0.0)
    conn = FakeConn()
    hub.attach(conn, 0.0)
    token, _ = sign_push_token(KEYS, 1, [PROJECT], now=1_800_000_000.0)
    claims = hub.authorize(token, [PROJECT], 1_800_000_000.0)
    hub.subscribe(conn, claims, {PROJECT: 0}, 0.0, 1_800_000_000.0)
    return hub, conn


def test_broker_pokes_are_refused_or_forwarded_within_bounds() -> None:
    hub, conn = _hub()

    @fuzz(broker_messages, INPUTS)
    def check(data: bytes) -> None:
        try:
            poke = decode_poke(data)
        except BadMessage:
            return
        assert valid_version(poke.version) and valid_version(poke.project)
        if poke.events is not None:
            assert check_events(list(poke.events), poke.version) == poke.events
        orjson.loads(poke_message(poke))  # encodes, and is JSON again
        if poke.project == PROJECT:
            hub.on_poke(poke)

    check()
    assert conn.attached and hub.known_version(PROJECT) is not None


def test_control_messages_are_parsed_or_ignored_never_raised() -> None:
    @fuzz(
        st.one_of(
            broker_messages,
            s.mutated(
                [
                    control.revoke(12, 7, 1732780200.5),
                    control.app_heartbeat("a1", 3, push_off=True, client="tidings-app:a1"),
                    control.app_bye("a1"),
                    control.link_heartbeat("s1", 4),
                ]
            ),
        ),
        INPUTS,
    )
    def check(data: bytes) -> None:
        control.parse_revoke(data)
        control.parse_app_heartbeat(data)
        control.parse_app_bye(data)
        control.parse_link_heartbeat(data)
        control.parse_push_stats(data)

    check()


def test_version_key_values_read_as_versions_or_absent_and_the_hub_takes_any() -> None:
    hub, conn = _hub()

    @fuzz(
        st.one_of(
            st.binary(max_size=40), st.integers(-(2**70), 2**70).map(lambda n: str(n).encode())
        )
    )
    def check(raw: bytes) -> None:
        value = parse_version_key(raw)
        assert value is None or valid_version(value)
        try:
            number = int(raw)
        except ValueError:
            return
        hub.on_versions({PROJECT: number}, 1_800_000_000.0)  # never raises, whatever it is

    check()
    assert conn.attached
