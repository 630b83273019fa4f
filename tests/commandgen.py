"""Random valid commands for property tests: abstract steps resolved against the
current snapshot (so ids exist), as a hypothesis strategy."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from pydantic import TypeAdapter

from tidings.domain import commands as c
from tidings.domain.decide import Decision

COMMAND = TypeAdapter(c.Command)

KINDS = (
    "create_story",
    "create_story",
    "update_story",
    "move_story",
    "delete_story",
    "add_comment",
    "edit_comment",
    "delete_comment",
    "add_task",
    "edit_task",
    "complete_task",
    "reorder_task",
    "delete_task",
    "rename_project",
)

step = st.tuples(
    st.sampled_from(KINDS),
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), min_size=1, max_size=12),
    st.sampled_from([s.value for s in c.StoryState]),
)
steps = st.lists(step, min_size=1, max_size=25)


def resolve(state: dict[str, Any], raw: tuple[str, int, int, str, str]) -> c.Command | None:
    """Turn an abstract step into a command valid against ``state`` (None if none fits)."""
    kind, a, b, text, story_state = raw
    text = text.strip() or "x"
    stories = state["stories"]
    if kind == "rename_project":
        # A project's name refuses U+0000 (domain/commands.py); story text takes it.
        return COMMAND.validate_python({"type": kind, "name": text.replace("\x00", "") or "x"})
    if kind == "create_story":
        before = stories[a % len(stories)]["id"] if stories and b % 2 else None
        return COMMAND.validate_python(
            {
                "type": kind,
                "title": text,
                "state": story_state,
                "before_id": before,
                "estimate": a % 9,
                "labels": [text[:5]],
            }
        )
    if not stories:
        return None
    story = stories[a % len(stories)]
    sid = story["id"]
    if kind == "update_story":
        return COMMAND.validate_python(
            {"type": kind, "story_id": sid, "title": text + "!", "state": story_state}
        )
    if kind == "move_story":
        others = [s["id"] for s in stories if s["id"] != sid]
        before = others[b % len(others)] if others and b % 3 else None
        return COMMAND.validate_python({"type": kind, "story_id": sid, "before_id": before})
    if kind == "delete_story":
        return COMMAND.validate_python({"type": kind, "story_id": sid})
    if kind == "add_comment":
        return COMMAND.validate_python({"type": kind, "story_id": sid, "text": text})
    if kind == "add_task":
        return COMMAND.validate_python({"type": kind, "story_id": sid, "text": text})
    comments, tasks = story["comments"], story["tasks"]
    if kind in ("edit_comment", "delete_comment"):
        if not comments:
            return None
        cid = comments[b % len(comments)]["id"]
        body = {"type": kind, "story_id": sid, "comment_id": cid}
        if kind == "edit_comment":
            body["text"] = text + "?"
        return COMMAND.validate_python(body)
    if not tasks:
        return None
    tid = tasks[b % len(tasks)]["id"]
    if kind == "edit_task":
        return COMMAND.validate_python(
            {"type": kind, "story_id": sid, "task_id": tid, "text": text + "."}
        )
    if kind == "complete_task":
        return COMMAND.validate_python(
            {"type": kind, "story_id": sid, "task_id": tid, "done": bool(a % 2)}
        )
    if kind == "reorder_task":
        return COMMAND.validate_python(
            {"type": kind, "story_id": sid, "task_id": tid, "position": a % len(tasks)}
        )
    return COMMAND.validate_python({"type": "delete_task", "story_id": sid, "task_id": tid})


def event_of(state: dict[str, Any], decision: Decision, ts: float) -> dict[str, Any]:
    """The stored event of ``decision`` on ``state`` (the next version, actor 1)."""
    return {
        "version": state["version"] + 1,
        "type": decision.type,
        "data": decision.data,
        "actor": 1,
        "ts": ts,
    }
