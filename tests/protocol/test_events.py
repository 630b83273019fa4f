"""The event format as push servers check it before forwarding full-push events:
everything the domain commits passes, and hostile or malformed events are refused."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings

from tests.commandgen import COMMAND, event_of, resolve, steps
from tidings.domain import project
from tidings.domain.commands import Role
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.protocol.errors import Invalid
from tidings.protocol.events import EVENT_TYPES, BadEvent, check_event, check_events
from tidings.protocol.poke import decode_poke

VECTORS = Path(__file__).parents[1] / "vectors" / "project_events.json"
EVENTS: list[dict[str, Any]] = orjson.loads(VECTORS.read_bytes())["events"]
CREATED = EVENTS[0]
OWNER = Actor(1, Role.OWNER)


def test_every_event_of_the_vector_history_passes_and_covers_every_type() -> None:
    assert check_events(EVENTS, EVENTS[-1]["version"]) == tuple(EVENTS)
    assert {e["type"] for e in EVENTS} == EVENT_TYPES


@settings(max_examples=100, deadline=None)
@given(steps)
def test_every_event_the_domain_decides_passes(raw_steps: list[Any]) -> None:
    state = project.replay(1, [CREATED])
    # Membership needs a known user: the longest name the users table holds.
    member = COMMAND.validate_python({"type": "add_member", "email": "b@x.y"})
    for raw in [*raw_steps, None]:
        command = member if raw is None else resolve(state, raw)
        if command is None:
            continue
        try:
            decision = decide(state, command, OWNER, target=KnownUser(2, "B" * 200))
        except Invalid:
            continue  # e.g. an update that changes nothing
        event = event_of(state, decision, 1732780000.5)
        check_event(event)
        state = project.apply(state, event)


def story_created(**story: Any) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in EVENTS if e["type"] == "story_created"))
    event["data"]["story"].update(story)
    return event


def with_data(kind: str, **data: Any) -> dict[str, Any]:
    event = copy.deepcopy(next(e for e in EVENTS if e["type"] == kind))
    event["data"].update(data)
    return event


HTML = '<img src=x onerror="fetch(`/api/me/tokens`,{method:`POST`})">'

HOSTILE = {
    "html_story_type": story_created(story_type=HTML),
    "html_state": story_created(state=HTML),
    "story_type_number": story_created(story_type=1),
    "id_as_string": story_created(id="3"),
    "id_as_bool": story_created(id=True),
    "id_as_float": story_created(id=3.0),
    "id_zero": story_created(id=0),
    "id_huge": story_created(id=2**64),
    "title_too_long": story_created(title="x" * 201),
    "title_blank": story_created(title="   "),
    "title_object": story_created(title={"__proto__": {"x": 1}}),
    "labels_too_many": story_created(labels=["a"] * 21),
    "label_too_long": story_created(labels=["a" * 51]),
    "labels_not_list": story_created(labels="a"),
    "estimate_out_of_range": story_created(estimate=101),
    "extra_story_field": story_created(html=HTML),
    "role_html": with_data("member_added", role=HTML),
    "name_too_long": with_data("member_added", name="x" * 201),
    "done_as_int": with_data("task_completed", done=1),
    "position_negative": with_data("task_reordered", position=-1),
    "changes_title_null": with_data("story_updated", changes={"title": None}),
    "changes_html_story_type": with_data("story_updated", changes={"story_type": HTML}),
    "moved_state_null": with_data("story_moved", state=None),
    "changes_unknown_field": with_data("story_updated", changes={"innerHTML": HTML}),
    "comment_too_long": with_data("comment_edited", text="x" * 10_001),
    "extra_data_field": with_data("story_deleted", html=HTML),
    "unknown_type": {**CREATED, "type": HTML},
    "type_missing": {k: v for k, v in CREATED.items() if k != "type"},
    "data_not_object": {**CREATED, "data": [HTML]},
    "actor_string": {**CREATED, "actor": "1"},
    "ts_string": {**CREATED, "ts": "now"},
    "ts_huge": {**CREATED, "ts": 1e300},
    "version_zero": {**CREATED, "version": 0},
    "extra_envelope_field": {**CREATED, "html": HTML},
    "not_an_object": HTML,
    "null": None,
}


@pytest.mark.parametrize("event", list(HOSTILE.values()), ids=list(HOSTILE))
def test_a_malformed_or_hostile_event_is_refused(event: Any) -> None:
    with pytest.raises(BadEvent):
        check_event(event)
    version = event.get("version", 1) if isinstance(event, dict) else 1
    with pytest.raises(BadEvent):
        check_events([event], version if isinstance(version, int) else 1)


@pytest.mark.parametrize(
    ("events", "version"),
    [
        ([], 1),
        (None, 1),
        ({"0": CREATED}, 1),
        ([CREATED], 2),  # does not end at the poke's version
        ([CREATED, EVENTS[2]], 3),  # 1, 3: not consecutive
        ([EVENTS[1], CREATED], 1),  # out of order
        ([CREATED, CREATED], 2),
    ],
)
def test_events_must_be_consecutive_and_end_at_the_pokes_version(events: Any, version: int) -> None:
    with pytest.raises(BadEvent):
        check_events(events, version)


def test_a_poke_with_bad_events_keeps_its_version_and_loses_its_events() -> None:
    good = decode_poke(
        orjson.dumps({"type": "poke", "project": 7, "version": 1, "ts": 1, "events": [CREATED]})
    )
    assert good.events == (CREATED,) and good.events_refused is None
    data = orjson.dumps(
        {
            "type": "poke",
            "project": 7,
            "version": 2,
            "ts": 1,
            "events": [HOSTILE["html_story_type"]],
        }
    )
    poke = decode_poke(data)
    assert (poke.project, poke.version, poke.events) == (7, 2, None)
    assert poke.events_refused is not None and "story_type" in poke.events_refused
    assert "events" not in poke.to_json()
