"""The project aggregate's state and how events change it: a pure projector.

The same function builds the stored snapshot (inside the command's transaction)
and replays history in tests, so "events since 0 reproduce the snapshot" holds
by construction and is checked by property tests. The browser applies the same
events with the same rules (src/tidings/app/static/js/project.js).
"""

from __future__ import annotations

import copy
from typing import Any

Snapshot = dict[str, Any]
Event = dict[str, Any]

#: Bounds on one project's size; commands past them are refused (422).
#: 10,000 stories: the write path reads and writes only the stories a command
#: names (store/events.py), so this bounds the snapshot a client loads (~4.4 MB
#: at ~440 bytes a story), not the cost of a command.
MAX_STORIES = 10_000
MAX_COMMENTS_PER_STORY = 500
MAX_TASKS_PER_STORY = 100
MAX_MEMBERS = 1_000

#: The state whose entry time is kept (``accepted_at``): velocity counts accepted points.
ACCEPTED = "accepted"


def empty(project_id: int) -> Snapshot:
    return {
        "id": project_id,
        "name": "",
        "version": 0,
        "next_id": 1,
        "members": [],
        "stories": [],
    }


def find(items: list[dict[str, Any]], key: str, value: Any) -> int | None:
    for index, item in enumerate(items):
        if item[key] == value:
            return index
    return None


def _story(snapshot: Snapshot, story_id: int) -> dict[str, Any]:
    index = find(snapshot["stories"], "id", story_id)
    assert index is not None, f"event names unknown story {story_id}"
    story: dict[str, Any] = snapshot["stories"][index]
    return story


def _insert_before(
    items: list[dict[str, Any]], item: dict[str, Any], before_id: int | None
) -> None:
    index = find(items, "id", before_id) if before_id is not None else None
    if index is None:
        items.append(item)
    else:
        items.insert(index, item)


def apply(snapshot: Snapshot, event: Event) -> Snapshot:
    """Return the state after ``event``; ``snapshot`` is left untouched."""
    state = copy.deepcopy(snapshot)
    apply_in_place(state, event)
    return state


#: Events that change one story's own fields, comments or tasks (and nothing else).
STORY_EVENTS = frozenset(
    {
        "story_updated",
        "story_moved",
        "comment_added",
        "comment_edited",
        "comment_deleted",
        "task_added",
        "task_edited",
        "task_completed",
        "task_reordered",
        "task_deleted",
    }
)


def new_story(event: Event) -> dict[str, Any]:
    """The story a ``story_created`` event adds."""
    story = event["data"]["story"]
    return dict(
        story,
        created_at=event["ts"],
        updated_at=event["ts"],
        accepted_at=event["ts"] if story.get("state") == ACCEPTED else None,
        comments=[],
        tasks=[],
    )


def _set_state(story: dict[str, Any], state: str, ts: float) -> None:
    """A new state; ``accepted_at`` is when the story last became accepted (None unless it is).
    Only a change of state touches it, so a story accepted before the field existed keeps
    no time rather than gaining its next edit's."""
    if state != story.get("state"):
        story["accepted_at"] = ts if state == ACCEPTED else None
    story["state"] = state


def change_story(story: dict[str, Any], event: Event) -> None:
    """Apply one of STORY_EVENTS to its story (its place on the board aside): the
    one rule shared by the whole-snapshot projector and the store's rows."""
    kind, data, ts = event["type"], event["data"], event["ts"]
    if kind == "story_updated":
        changes = data["changes"]
        if "state" in changes:
            _set_state(story, changes["state"], ts)
        story.update(changes)
        story["updated_at"] = ts
    elif kind == "story_moved":
        if data.get("state") is not None:
            _set_state(story, data["state"], ts)
        story["updated_at"] = ts
    elif kind == "comment_added":
        story["comments"].append(dict(data["comment"], created_at=ts, edited_at=None))
    elif kind == "comment_edited":
        comments = story["comments"]
        index = find(comments, "id", data["comment_id"])
        assert index is not None
        comments[index]["text"] = data["text"]
        comments[index]["edited_at"] = ts
    elif kind == "comment_deleted":
        story["comments"] = [c for c in story["comments"] if c["id"] != data["comment_id"]]
    elif kind == "task_added":
        story["tasks"].append(dict(data["task"]))
    elif kind == "task_edited":
        tasks = story["tasks"]
        index = find(tasks, "id", data["task_id"])
        assert index is not None
        tasks[index]["text"] = data["text"]
    elif kind == "task_completed":
        tasks = story["tasks"]
        index = find(tasks, "id", data["task_id"])
        assert index is not None
        tasks[index]["done"] = data["done"]
    elif kind == "task_reordered":
        tasks = story["tasks"]
        index = find(tasks, "id", data["task_id"])
        assert index is not None
        task = tasks.pop(index)
        tasks.insert(min(data["position"], len(tasks)), task)
    elif kind == "task_deleted":
        story["tasks"] = [t for t in story["tasks"] if t["id"] != data["task_id"]]
    else:  # pragma: no cover - callers dispatch on STORY_EVENTS
        raise ValueError(f"{kind!r} does not change one story")


def apply_in_place(state: Snapshot, event: Event) -> None:
    kind, data = event["type"], event["data"]
    if event["version"] != state["version"] + 1:
        raise ValueError(f"event {event['version']} does not follow version {state['version']}")
    state["version"] = event["version"]
    state["next_id"] = max(state["next_id"], data.get("next_id", 0))
    if kind == "project_created":
        state["name"] = data["name"]
        owner = data["owner"]
        state["members"] = [{"user_id": owner["user_id"], "role": "owner", "name": owner["name"]}]
    elif kind == "project_renamed":
        state["name"] = data["name"]
    elif kind == "member_added":
        index = find(state["members"], "user_id", data["user_id"])
        member = {"user_id": data["user_id"], "role": data["role"], "name": data["name"]}
        if index is None:
            state["members"].append(member)
        else:
            state["members"][index] = member
    elif kind == "member_removed":
        state["members"] = [m for m in state["members"] if m["user_id"] != data["user_id"]]
        for story in state["stories"]:
            if story["owner_id"] == data["user_id"]:
                story["owner_id"] = None
    elif kind == "story_created":
        _insert_before(state["stories"], new_story(event), data.get("before_id"))
    elif kind == "story_moved":
        stories = state["stories"]
        index = find(stories, "id", data["story_id"])
        assert index is not None
        story = stories.pop(index)
        change_story(story, event)
        _insert_before(stories, story, data.get("before_id"))
    elif kind == "story_deleted":
        state["stories"] = [s for s in state["stories"] if s["id"] != data["story_id"]]
    elif kind in STORY_EVENTS:
        change_story(_story(state, data["story_id"]), event)
    else:
        raise ValueError(f"unknown event type {kind!r}")


def replay(project_id: int, events: list[Event]) -> Snapshot:
    state = empty(project_id)
    for event in events:
        apply_in_place(state, event)
    return state
