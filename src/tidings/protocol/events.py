"""The event format (docs/PROTOCOL.md 1.2 and 1.4): what a receiver accepts as an event.

One definition: each field's type and bound is the command field it comes from
(``tidings.domain.commands``), so what the app can commit is exactly what push
servers forward in full-push pokes. Validation only: nothing here changes an
event, and events that pass are forwarded as they came.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError, field_validator

from tidings.domain import commands as c

#: An event's envelope and every object in its ``data`` have exactly these fields
#: (strict types: no "3" for 3, no true for 1), so an app that adds a field must
#: roll out push servers that know it first; until then its events are dropped
#: from pokes and clients poll for them.
_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)

Id = c.Id
Version = Annotated[int, Field(ge=1, le=2**53)]
#: A user's display name (the users table holds at most 200 characters).
UserName = Annotated[str, Field(max_length=200)]
#: Epoch seconds below 2**40, as in the poke's ``ts``.
Timestamp = Annotated[float, Field(ge=0, lt=2.0**40)]
# Enum fields take their JSON string (strict mode would want the enum object).
StoryType = Annotated[c.StoryType, Field(strict=False)]
StoryState = Annotated[c.StoryState, Field(strict=False)]
Role = Annotated[c.Role, Field(strict=False)]
CommentText = Annotated[str, c.AddComment.model_fields["text"]]
TaskText = Annotated[str, c.AddTask.model_fields["text"]]
Position = Annotated[int, c.ReorderTask.model_fields["position"]]


class _Obj(BaseModel):
    model_config = _STRICT


class Owner(_Obj):
    user_id: Id
    name: UserName


class Story(_Obj):
    id: Id
    title: c.Title
    description: c.Text
    story_type: StoryType
    state: StoryState
    estimate: c.Estimate | None
    owner_id: Id | None
    labels: c.Labels


class StoryChanges(_Obj):
    """Any of the story's fields; only ``estimate`` and ``owner_id`` may be null
    (a missing field is unchanged: the defaults are never sent)."""

    title: c.Title | None = None
    description: c.Text | None = None
    story_type: StoryType | None = None
    state: StoryState | None = None
    estimate: c.Estimate | None = None
    owner_id: Id | None = None
    labels: c.Labels | None = None

    @field_validator("title", "description", "story_type", "state", "labels", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        # Runs only for fields present: a null there would erase a required field.
        if value is None:
            raise ValueError("may be missing but not null")
        return value


class Comment(_Obj):
    id: Id
    author_id: Id
    text: CommentText


class Task(_Obj):
    id: Id
    text: TaskText
    done: StrictBool


class ProjectCreated(_Obj):
    name: c.Title
    owner: Owner


class ProjectRenamed(_Obj):
    name: c.Title


class MemberAdded(_Obj):
    user_id: Id
    role: Role
    name: UserName


class MemberRemoved(_Obj):
    user_id: Id


class StoryCreated(_Obj):
    story: Story
    before_id: Id | None
    next_id: Id


class StoryUpdated(_Obj):
    story_id: Id
    changes: StoryChanges


class StoryMoved(_Obj):
    story_id: Id
    before_id: Id | None
    state: StoryState | None = None

    @field_validator("state", mode="before")
    @classmethod
    def _not_null(cls, value: object) -> object:
        if value is None:
            raise ValueError("may be missing but not null")
        return value


class StoryRef(_Obj):
    story_id: Id


class CommentAdded(_Obj):
    story_id: Id
    comment: Comment
    next_id: Id


class CommentEdited(_Obj):
    story_id: Id
    comment_id: Id
    text: CommentText


class CommentRef(_Obj):
    story_id: Id
    comment_id: Id


class TaskAdded(_Obj):
    story_id: Id
    task: Task
    next_id: Id


class TaskEdited(_Obj):
    story_id: Id
    task_id: Id
    text: TaskText


class TaskCompleted(_Obj):
    story_id: Id
    task_id: Id
    done: StrictBool


class TaskReordered(_Obj):
    story_id: Id
    task_id: Id
    position: Position


class TaskRef(_Obj):
    story_id: Id
    task_id: Id


#: Each event type and the shape of its ``data``.
DATA: dict[str, type[_Obj]] = {
    "project_created": ProjectCreated,
    "project_renamed": ProjectRenamed,
    "member_added": MemberAdded,
    "member_removed": MemberRemoved,
    "story_created": StoryCreated,
    "story_updated": StoryUpdated,
    "story_moved": StoryMoved,
    "story_deleted": StoryRef,
    "comment_added": CommentAdded,
    "comment_edited": CommentEdited,
    "comment_deleted": CommentRef,
    "task_added": TaskAdded,
    "task_edited": TaskEdited,
    "task_completed": TaskCompleted,
    "task_reordered": TaskReordered,
    "task_deleted": TaskRef,
}

EVENT_TYPES = frozenset(DATA)


class Envelope(_Obj):
    """An event's fields around its ``data`` (whose shape depends on ``type``)."""

    version: Version
    type: str
    data: dict[str, Any]
    actor: Id
    ts: Timestamp


class BadEvent(ValueError):
    """Events that do not match the format (the message says where)."""


def check_event(event: object) -> None:
    """Return if ``event`` is a valid event; else :class:`BadEvent`."""
    try:
        envelope = Envelope.model_validate(event)
        shape = DATA.get(envelope.type)
        if shape is None:
            raise BadEvent(f"unknown event type {envelope.type[:40]!r}")
        shape.model_validate(envelope.data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BadEvent(f"{where}: {first['msg']}") from None


def check_events(events: object, version: int) -> tuple[dict[str, Any], ...]:
    """``events`` as a tuple if they are a non-empty list of valid events with
    consecutive versions ending at ``version``; else :class:`BadEvent`."""
    if not isinstance(events, list) or not events:
        raise BadEvent("'events' must be a non-empty list of events")
    first_version = version - len(events) + 1
    for offset, event in enumerate(events):
        check_event(event)
        assert isinstance(event, dict)
        if event["version"] != first_version + offset:
            raise BadEvent("'events' must be consecutive and end at 'version'")
    return tuple(events)
