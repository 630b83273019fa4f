"""Write project_events.json: a history of every event type and the snapshot after each.

The Python projector (tidings.domain.project) is the reference; the browser's
twin (src/tidings/app/static/js/project.js) must reproduce every snapshot
(tests/js/project.test.mjs). Commands are chosen at random from a fixed seed and
decided by tidings.domain.decide, so the events are ones the app could produce.
Run: .venv/bin/python tests/vectors/make_project_fixture.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from tidings.domain import commands as c
from tidings.domain.decide import Actor, KnownUser, decide
from tidings.domain.project import apply, empty
from tidings.protocol.errors import TidingsError

OUT = Path(__file__).resolve().parent / "project_events.json"
PROJECT = 7
SEED = 1
EVENTS = 120
USERS = {1: "Ada", 2: "Grace", 3: "Edsger", 4: "Barbara"}
COMMAND = TypeAdapter(c.Command)


def _ids(state: dict[str, Any], key: str) -> list[int]:
    return [item["id"] for item in state[key]]


def _random_command(rng: random.Random, state: dict[str, Any]) -> dict[str, Any]:
    stories = state["stories"]
    story = rng.choice(stories) if stories else None
    member_ids = [m["user_id"] for m in state["members"]]
    states = [s.value for s in c.StoryState]
    kinds: list[str] = ["create_story"] * 2 + ["rename_project", "add_member", "remove_member"]
    kinds += ["set_role"]
    if story is not None:
        kinds += ["update_story"] * 2 + ["move_story"] * 2 + ["delete_story", "add_comment"] * 2
        kinds += ["add_task"] * 2
        if story["comments"]:
            kinds += ["edit_comment", "delete_comment"]
        if story["tasks"]:
            kinds += ["edit_task", "complete_task", "reorder_task", "delete_task"]
    kind = rng.choice(kinds)
    sid = story["id"] if story else 0
    if kind == "create_story":
        body: dict[str, Any] = {"title": f"Story {rng.randint(1, 999)}"}
        if rng.random() < 0.5:
            body["state"] = rng.choice(states)
            body["estimate"] = rng.choice([None, 1, 2, 3, 5, 8])
            body["owner_id"] = rng.choice([None, *member_ids])
            body["labels"] = rng.sample(["ui", "api", "bug", "perf", "ui"], k=rng.randint(0, 3))
        if stories and rng.random() < 0.4:
            body["before_id"] = rng.choice(_ids(state, "stories"))
        return {"type": kind, **body}
    if kind == "rename_project":
        return {"type": kind, "name": f"Project {rng.randint(1, 99)}"}
    if kind == "add_member":
        return {
            "type": kind,
            "email": "x@example.com",
            "role": rng.choice(["owner", "member", "viewer"]),
        }
    if kind == "set_role":
        role = rng.choice(["owner", "member", "viewer"])
        return {"type": kind, "user_id": rng.choice(list(USERS)), "role": role}
    if kind == "remove_member":
        return {"type": kind, "user_id": rng.choice(list(USERS))}
    if kind == "update_story":
        changes: dict[str, Any] = rng.choice(
            [
                {"title": f"Renamed {rng.randint(1, 999)}"},
                {"state": rng.choice(states)},
                {"estimate": rng.choice([None, 0, 3, 13])},
                {"owner_id": rng.choice([None, *member_ids])},
                {"labels": ["perf"], "description": "why it matters"},
                {"story_type": rng.choice(["feature", "bug", "chore", "release"])},
            ]
        )
        return {"type": kind, "story_id": sid, **changes}
    if kind == "move_story":
        others = [i for i in _ids(state, "stories") if i != sid]
        body = {"before_id": rng.choice([None, *others])}
        if rng.random() < 0.5:
            body["state"] = rng.choice(states)
        return {"type": kind, "story_id": sid, **body}
    if kind == "delete_story":
        return {"type": kind, "story_id": sid}
    assert story is not None
    if kind == "add_comment":
        return {"type": kind, "story_id": sid, "text": f"comment {rng.randint(1, 999)}"}
    if kind in ("edit_comment", "delete_comment"):
        comment = rng.choice(story["comments"])["id"]
        extra = {"text": "edited"} if kind == "edit_comment" else {}
        return {"type": kind, "story_id": sid, "comment_id": comment, **extra}
    if kind == "add_task":
        return {"type": kind, "story_id": sid, "text": f"task {rng.randint(1, 99)}"}
    task = rng.choice(story["tasks"])["id"]
    if kind == "edit_task":
        text = f"edited {rng.randint(1, 99)}"
        return {"type": kind, "story_id": sid, "task_id": task, "text": text}
    if kind == "complete_task":
        return {"type": kind, "story_id": sid, "task_id": task, "done": rng.random() < 0.7}
    if kind == "reorder_task":
        return {
            "type": kind,
            "story_id": sid,
            "task_id": task,
            "position": rng.randrange(len(story["tasks"])),
        }
    return {"type": "delete_task", "story_id": sid, "task_id": task}


def build() -> dict[str, Any]:
    rng = random.Random(SEED)
    ts = 1732780000.0
    created = {
        "version": 1,
        "type": "project_created",
        "data": {"name": "Website", "owner": {"user_id": 1, "name": USERS[1]}},
        "actor": 1,
        "ts": ts,
    }
    state = apply(empty(PROJECT), created)
    events, snapshots = [created], [state]
    while len(events) < EVENTS:
        raw = _random_command(rng, state)
        actor_id = rng.choice([m["user_id"] for m in state["members"] if m["role"] != "viewer"])
        role = next(m["role"] for m in state["members"] if m["user_id"] == actor_id)
        target_id = rng.choice(list(USERS))
        try:
            decision = decide(
                state,
                COMMAND.validate_python(raw),
                Actor(actor_id, c.Role(role)),
                target=KnownUser(target_id, USERS[target_id]),
            )
        except TidingsError:
            continue
        ts = round(ts + rng.uniform(0.1, 90.0), 3)
        event = {
            "version": state["version"] + 1,
            "type": decision.type,
            "data": decision.data,
            "actor": actor_id,
            "ts": ts,
        }
        state = apply(state, event)
        events.append(event)
        snapshots.append(state)
    return {"project": PROJECT, "events": events, "snapshots": snapshots}


def main() -> None:
    fixture = build()
    kinds = {e["type"] for e in fixture["events"]}
    OUT.write_text(json.dumps(fixture, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(fixture['events'])} events, {len(kinds)} event types)")


if __name__ == "__main__":
    main()
