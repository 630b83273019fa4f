"""Deciding a command: check it against the current state and the actor's role,
and return the one event it produces (without version and time, which the
store assigns inside the transaction). Pure: no I/O, no clock. It reads the
state through a narrow view (domain/view.py): the store loads only what the
command names; a whole snapshot works too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tidings.domain import commands as c
from tidings.domain.project import (
    MAX_COMMENTS_PER_STORY,
    MAX_MEMBERS,
    MAX_STORIES,
    MAX_TASKS_PER_STORY,
    Snapshot,
    find,
)
from tidings.domain.view import ProjectView, SnapshotView
from tidings.protocol.errors import Forbidden, Invalid, NotFound


@dataclass(frozen=True, slots=True)
class Actor:
    user_id: int
    role: c.Role


@dataclass(frozen=True, slots=True)
class Decision:
    type: str
    data: dict[str, Any]
    #: The id of what the command created, returned to the caller.
    created_id: int | None = None


@dataclass(frozen=True, slots=True)
class KnownUser:
    """A user resolved by the caller (add_member names users by email)."""

    user_id: int
    name: str


def _story(state: ProjectView, story_id: int) -> dict[str, Any]:
    story = state.story(story_id)
    if story is None:
        raise NotFound(f"story {story_id} not found", field="story_id")
    return story


def _item(items: list[dict[str, Any]], item_id: int, what: str) -> dict[str, Any]:
    index = find(items, "id", item_id)
    if index is None:
        raise NotFound(f"{what} {item_id} not found", field=f"{what}_id")
    return items[index]


def _check_owner_member(state: ProjectView, owner_id: int | None) -> None:
    if owner_id is not None and state.member(owner_id) is None:
        raise Invalid("story owner must be a project member", field="owner_id")


def _check_before(state: ProjectView, before_id: int | None, moving: int | None = None) -> None:
    if before_id is None:
        return
    if before_id == moving:
        raise Invalid("a story cannot be moved before itself", field="before_id")
    _story(state, before_id)


def decide(
    state: ProjectView | Snapshot,
    command: c.Command,
    actor: Actor,
    *,
    target: KnownUser | None = None,
) -> Decision:
    """The event ``command`` produces, or Forbidden/NotFound/Invalid. ``state``
    must answer for what ``view.needs(command)`` names."""
    if isinstance(state, dict):
        state = SnapshotView(state)
    if actor.role == c.Role.VIEWER:
        raise Forbidden("viewers cannot change a project")
    if command.type in c.OWNER_ONLY and actor.role != c.Role.OWNER:
        raise Forbidden(f"only owners may {command.type.replace('_', ' ')}")
    next_id = state.next_id
    match command:
        case c.RenameProject(name=name):
            return Decision("project_renamed", {"name": name})
        case c.AddMember(role=role):
            if target is None:
                raise NotFound("no user with that email", field="email")
            known = state.member(target.user_id)
            if known is None and len(state.members()) >= MAX_MEMBERS:
                raise Invalid(f"a project has at most {MAX_MEMBERS} members")
            if known is not None and role != c.Role.OWNER:
                _check_not_last_owner(state, target.user_id)
            return Decision(
                "member_added",
                {"user_id": target.user_id, "role": role.value, "name": target.name},
                target.user_id,
            )
        case c.SetRole(user_id=user_id, role=role):
            member = state.member(user_id)
            if member is None:
                raise NotFound(f"user {user_id} is not a member", field="user_id")
            if member["role"] == role.value:
                raise Invalid(f"user {user_id} is already {role.value}", field="role")
            if role != c.Role.OWNER:
                _check_not_last_owner(state, user_id)
            # The event add_member gives for a member already there: one event for
            # "this member now has this role", whichever command said so.
            return Decision(
                "member_added", {"user_id": user_id, "role": role.value, "name": member["name"]}
            )
        case c.RemoveMember(user_id=user_id):
            if state.member(user_id) is None:
                raise NotFound(f"user {user_id} is not a member", field="user_id")
            _check_not_last_owner(state, user_id)
            return Decision("member_removed", {"user_id": user_id})
        case c.CreateStory():
            if state.story_count >= MAX_STORIES:
                raise Invalid(f"a project has at most {MAX_STORIES} stories")
            _check_owner_member(state, command.owner_id)
            _check_before(state, command.before_id)
            story: dict[str, Any] = {
                "id": next_id,
                "title": command.title,
                "description": command.description,
                "story_type": command.story_type.value,
                "state": command.state.value,
                "estimate": command.estimate,
                "owner_id": command.owner_id,
                "labels": list(dict.fromkeys(command.labels)),
            }
            data: dict[str, Any] = {
                "story": story,
                "before_id": command.before_id,
                "next_id": next_id + 1,
            }
            return Decision("story_created", data, next_id)
        case c.UpdateStory(story_id=story_id):
            story = _story(state, story_id)
            changes = command.model_dump(
                include=command.model_fields_set - {"type", "story_id"}, mode="json"
            )
            for required in ("title", "description", "story_type", "state", "labels"):
                if required in changes and changes[required] is None:
                    raise Invalid(f"{required} cannot be null", field=required)
            if "labels" in changes:
                changes["labels"] = list(dict.fromkeys(changes["labels"]))
            if "owner_id" in changes:
                _check_owner_member(state, changes["owner_id"])
            changes = {k: v for k, v in changes.items() if story.get(k) != v}
            if not changes:
                raise Invalid("update changes nothing")
            return Decision("story_updated", {"story_id": story_id, "changes": changes})
        case c.MoveStory(story_id=story_id, before_id=before_id):
            _story(state, story_id)
            _check_before(state, before_id, moving=story_id)
            data = {"story_id": story_id, "before_id": before_id}
            if command.state is not None:
                data["state"] = command.state.value
            return Decision("story_moved", data)
        case c.DeleteStory(story_id=story_id):
            _story(state, story_id)
            return Decision("story_deleted", {"story_id": story_id})
        case c.AddComment(story_id=story_id, text=text):
            story = _story(state, story_id)
            if len(story["comments"]) >= MAX_COMMENTS_PER_STORY:
                raise Invalid(f"a story has at most {MAX_COMMENTS_PER_STORY} comments")
            comment = {"id": next_id, "author_id": actor.user_id, "text": text}
            data = {"story_id": story_id, "comment": comment, "next_id": next_id + 1}
            return Decision("comment_added", data, next_id)
        case c.EditComment(story_id=story_id, comment_id=comment_id, text=text):
            comment = _item(_story(state, story_id)["comments"], comment_id, "comment")
            _check_author(comment, actor)
            return Decision(
                "comment_edited", {"story_id": story_id, "comment_id": comment_id, "text": text}
            )
        case c.DeleteComment(story_id=story_id, comment_id=comment_id):
            comment = _item(_story(state, story_id)["comments"], comment_id, "comment")
            _check_author(comment, actor)
            return Decision("comment_deleted", {"story_id": story_id, "comment_id": comment_id})
        case c.AddTask(story_id=story_id, text=text):
            story = _story(state, story_id)
            if len(story["tasks"]) >= MAX_TASKS_PER_STORY:
                raise Invalid(f"a story has at most {MAX_TASKS_PER_STORY} tasks")
            task = {"id": next_id, "text": text, "done": False}
            data = {"story_id": story_id, "task": task, "next_id": next_id + 1}
            return Decision("task_added", data, next_id)
        case c.EditTask(story_id=story_id, task_id=task_id, text=text):
            task = _item(_story(state, story_id)["tasks"], task_id, "task")
            if task["text"] == text:
                raise Invalid("edit changes nothing", field="text")
            return Decision("task_edited", {"story_id": story_id, "task_id": task_id, "text": text})
        case c.CompleteTask(story_id=story_id, task_id=task_id, done=done):
            _item(_story(state, story_id)["tasks"], task_id, "task")
            return Decision(
                "task_completed", {"story_id": story_id, "task_id": task_id, "done": done}
            )
        case c.ReorderTask(story_id=story_id, task_id=task_id, position=position):
            tasks = _story(state, story_id)["tasks"]
            _item(tasks, task_id, "task")
            if position >= len(tasks):
                raise Invalid(f"position must be below {len(tasks)}", field="position")
            return Decision(
                "task_reordered",
                {"story_id": story_id, "task_id": task_id, "position": position},
            )
        case c.DeleteTask(story_id=story_id, task_id=task_id):
            _item(_story(state, story_id)["tasks"], task_id, "task")
            return Decision("task_deleted", {"story_id": story_id, "task_id": task_id})
    raise Invalid(f"unknown command {command.type!r}")  # pragma: no cover


def _check_not_last_owner(state: ProjectView, user_id: int) -> None:
    owners = [m["user_id"] for m in state.members() if m["role"] == c.Role.OWNER.value]
    if owners == [user_id]:
        raise Invalid("a project must keep at least one owner", field="user_id")


def _check_author(comment: dict[str, Any], actor: Actor) -> None:
    if comment["author_id"] != actor.user_id and actor.role != c.Role.OWNER:
        raise Forbidden("only the author or an owner may change a comment")
