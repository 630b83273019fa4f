"""The pure domain: decide + apply, without a database."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings

from tests.commandgen import COMMAND, event_of, resolve, steps
from tidings.domain import project
from tidings.domain.commands import Role
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.protocol.errors import Forbidden, Invalid, NotFound

OWNER = Actor(1, Role.OWNER)


def created(project_id: int = 1) -> dict[str, Any]:
    event = {
        "version": 1,
        "type": "project_created",
        "data": {"name": "P", "owner": {"user_id": 1, "name": "Ada"}},
        "actor": 1,
        "ts": 1.0,
    }
    return project.replay(project_id, [event])


def run(
    state: dict[str, Any], body: dict[str, Any], actor: Actor = OWNER, **kw: Any
) -> dict[str, Any]:
    decision = decide(state, COMMAND.validate_python(body), actor, **kw)
    event = {
        "version": state["version"] + 1,
        "type": decision.type,
        "data": decision.data,
        "actor": actor.user_id,
        "ts": 2.0,
    }
    return project.apply(state, event)


def test_story_lifecycle_changes_the_snapshot_as_described() -> None:
    s = created()
    s = run(s, {"type": "create_story", "title": "A"})
    s = run(s, {"type": "create_story", "title": "B", "before_id": 1})
    assert [x["title"] for x in s["stories"]] == ["B", "A"]
    s = run(s, {"type": "move_story", "story_id": 2, "before_id": None, "state": "started"})
    assert [x["id"] for x in s["stories"]] == [1, 2]
    assert s["stories"][1]["state"] == "started"
    s = run(s, {"type": "add_task", "story_id": 1, "text": "t1"})
    s = run(s, {"type": "add_task", "story_id": 1, "text": "t2"})
    s = run(s, {"type": "reorder_task", "story_id": 1, "task_id": 4, "position": 0})
    assert [t["text"] for t in s["stories"][0]["tasks"]] == ["t2", "t1"]
    s = run(s, {"type": "complete_task", "story_id": 1, "task_id": 3})
    assert s["stories"][0]["tasks"][1]["done"] is True
    s = run(s, {"type": "add_comment", "story_id": 1, "text": "hi"})
    s = run(s, {"type": "edit_comment", "story_id": 1, "comment_id": 5, "text": "hello"})
    assert s["stories"][0]["comments"][0]["text"] == "hello"
    assert s["stories"][0]["comments"][0]["edited_at"] == 2.0
    s = run(s, {"type": "update_story", "story_id": 1, "estimate": 3, "labels": ["a", "a", "b"]})
    assert s["stories"][0]["estimate"] == 3 and s["stories"][0]["labels"] == ["a", "b"]
    s = run(s, {"type": "update_story", "story_id": 1, "estimate": None})
    assert s["stories"][0]["estimate"] is None
    s = run(s, {"type": "delete_story", "story_id": 2})
    assert [x["id"] for x in s["stories"]] == [1]
    assert s["version"] == 13


def test_refusals_name_what_was_wrong() -> None:
    s = run(created(), {"type": "create_story", "title": "A"})
    with pytest.raises(NotFound) as e:
        run(s, {"type": "delete_story", "story_id": 99})
    assert e.value.extra["field"] == "story_id"
    with pytest.raises(Invalid):
        run(s, {"type": "update_story", "story_id": 1, "title": "A"})  # changes nothing
    with pytest.raises(Invalid):
        run(s, {"type": "update_story", "story_id": 1, "title": None})
    with pytest.raises(Invalid):
        run(s, {"type": "move_story", "story_id": 1, "before_id": 1})
    with pytest.raises(Invalid):
        run(s, {"type": "update_story", "story_id": 1, "owner_id": 42})  # not a member
    with pytest.raises(Invalid):
        run(s, {"type": "remove_member", "user_id": 1})  # last owner


def test_roles_limit_what_each_member_may_do() -> None:
    s = run(created(), {"type": "create_story", "title": "A"})
    viewer, member = Actor(2, Role.VIEWER), Actor(3, Role.MEMBER)
    with pytest.raises(Forbidden):
        run(s, {"type": "add_comment", "story_id": 1, "text": "x"}, viewer)
    with pytest.raises(Forbidden):
        run(s, {"type": "rename_project", "name": "X"}, member)
    s = run(s, {"type": "add_comment", "story_id": 1, "text": "mine"}, Actor(1, Role.OWNER))
    with pytest.raises(Forbidden):
        run(s, {"type": "delete_comment", "story_id": 1, "comment_id": 2}, member)
    s = run(
        s,
        {"type": "add_member", "email": "g@x.io", "role": "member"},
        target=KnownUser(3, "Grace"),
    )
    assert {m["user_id"]: m["role"] for m in s["members"]} == {1: "owner", 3: "member"}
    s = run(s, {"type": "remove_member", "user_id": 3})
    assert [m["user_id"] for m in s["members"]] == [1]


@settings(max_examples=150, deadline=None)
@given(steps)
def test_any_command_sequence_replays_to_the_same_snapshot(raw_steps: list[Any]) -> None:
    state = created()
    events = [
        {
            "version": 1,
            "type": "project_created",
            "data": {"name": "P", "owner": {"user_id": 1, "name": "Ada"}},
            "actor": 1,
            "ts": 1.0,
        }
    ]
    for raw in raw_steps:
        command = resolve(state, raw)
        if command is None:
            continue
        try:
            decision = decide(state, command, OWNER)
        except Invalid:
            continue  # e.g. an update that changes nothing
        event = event_of(state, decision, float(len(events)))
        before = state["version"]
        state = project.apply(state, event)
        assert state["version"] == before + 1
        events.append(event)
    assert project.replay(1, events) == state
    ids = [s["id"] for s in state["stories"]]
    assert len(ids) == len(set(ids))


def test_an_event_out_of_order_is_refused() -> None:
    s = created()
    with pytest.raises(ValueError):
        project.apply(
            s,
            {"version": 3, "type": "project_renamed", "data": {"name": "x"}, "actor": 1, "ts": 0.0},
        )


def test_a_task_is_edited_in_place_and_an_edit_that_changes_nothing_is_refused() -> None:
    s = run(created(), {"type": "create_story", "title": "A"})
    s = run(s, {"type": "add_task", "story_id": 1, "text": "first"})
    s = run(s, {"type": "add_task", "story_id": 1, "text": "second"})
    s = run(s, {"type": "edit_task", "story_id": 1, "task_id": 2, "text": "  first, reworded "})
    assert s["stories"][0]["tasks"] == [
        {"id": 2, "text": "first, reworded", "done": False},
        {"id": 3, "text": "second", "done": False},
    ]
    with pytest.raises(Invalid):
        run(s, {"type": "edit_task", "story_id": 1, "task_id": 2, "text": "first, reworded"})
    with pytest.raises(NotFound) as e:
        run(s, {"type": "edit_task", "story_id": 1, "task_id": 9, "text": "x"})
    assert e.value.extra["field"] == "task_id"
    member = Actor(3, Role.MEMBER)
    s = run(s, {"type": "add_member", "email": "g@x.io"}, target=KnownUser(3, "Grace"))
    s = run(s, {"type": "edit_task", "story_id": 1, "task_id": 3, "text": "theirs"}, member)
    assert s["stories"][0]["tasks"][1]["text"] == "theirs"
    with pytest.raises(Forbidden):
        viewer = Actor(4, Role.VIEWER)
        run(s, {"type": "edit_task", "story_id": 1, "task_id": 3, "text": "y"}, viewer)


def test_set_role_changes_a_members_role_by_id_and_keeps_an_owner() -> None:
    s = run(created(), {"type": "add_member", "email": "g@x.io"}, target=KnownUser(3, "Grace"))
    s = run(s, {"type": "set_role", "user_id": 3, "role": "owner"})
    assert {m["user_id"]: m["role"] for m in s["members"]} == {1: "owner", 3: "owner"}
    assert [m["name"] for m in s["members"]] == ["Ada", "Grace"]
    s = run(s, {"type": "set_role", "user_id": 1, "role": "viewer"})
    with pytest.raises(Invalid) as e:
        run(s, {"type": "set_role", "user_id": 3, "role": "member"}, Actor(3, Role.OWNER))
    assert e.value.extra["field"] == "user_id"  # the last owner
    with pytest.raises(Invalid):
        run(s, {"type": "set_role", "user_id": 3, "role": "owner"})  # already
    with pytest.raises(NotFound):
        run(s, {"type": "set_role", "user_id": 42, "role": "member"}, Actor(3, Role.OWNER))
    with pytest.raises(Forbidden):
        run(s, {"type": "set_role", "user_id": 1, "role": "owner"}, Actor(5, Role.MEMBER))


def _at(state: dict[str, Any], body: dict[str, Any], ts: float) -> dict[str, Any]:
    decision = decide(state, COMMAND.validate_python(body), OWNER)
    event = {
        "version": state["version"] + 1,
        "type": decision.type,
        "data": decision.data,
        "actor": 1,
        "ts": ts,
    }
    return project.apply(state, event)


def test_accepted_at_is_when_a_story_last_became_accepted_and_only_state_changes_touch_it() -> None:
    state = _at(created(), {"type": "create_story", "title": "a", "state": "delivered"}, 10.0)
    story = state["stories"][0]
    assert story["accepted_at"] is None
    state = _at(state, {"type": "move_story", "story_id": story["id"], "state": "accepted"}, 20.0)
    assert state["stories"][0]["accepted_at"] == 20.0
    # Edits and moves within Done keep the time it was accepted.
    state = _at(state, {"type": "update_story", "story_id": story["id"], "title": "b"}, 30.0)
    state = _at(state, {"type": "move_story", "story_id": story["id"], "state": "accepted"}, 35.0)
    assert state["stories"][0]["accepted_at"] == 20.0
    state = _at(state, {"type": "update_story", "story_id": story["id"], "state": "rejected"}, 40.0)
    assert state["stories"][0]["accepted_at"] is None
    state = _at(state, {"type": "update_story", "story_id": story["id"], "state": "accepted"}, 50.0)
    assert state["stories"][0]["accepted_at"] == 50.0
    made = _at(state, {"type": "create_story", "title": "c", "state": "accepted"}, 60.0)
    assert made["stories"][-1]["accepted_at"] == 60.0


def test_a_story_stored_before_accepted_at_existed_gains_none_from_an_edit() -> None:
    state = _at(created(), {"type": "create_story", "title": "a", "state": "accepted"}, 10.0)
    del state["stories"][0]["accepted_at"]
    story_id = state["stories"][0]["id"]
    state = _at(state, {"type": "update_story", "story_id": story_id, "title": "b"}, 20.0)
    assert "accepted_at" not in state["stories"][0]
