"""The commands a project accepts, validated at the edge (pydantic, so they also
document themselves in the OpenAPI spec). Deciding what they do is decide.py's job.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints


def _no_nul(value: str) -> str:
    """PostgreSQL text cannot hold U+0000, and a project's name is a column of its
    own: refused here, as a 422, rather than failing in the database as a 500.
    (Story text lives in JSON documents, where it is escaped, and may hold it.)"""
    if "\x00" in value:
        raise ValueError("must not contain the NUL character")
    return value


Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
#: A project's name.
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_no_nul),
]
Text = Annotated[str, StringConstraints(max_length=20_000)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Labels = Annotated[list[Label], Field(max_length=20)]
Estimate = Annotated[int, Field(ge=0, le=100)]
Id = Annotated[int, Field(ge=1, le=2**53)]


class StoryType(StrEnum):
    FEATURE = "feature"
    BUG = "bug"
    CHORE = "chore"
    RELEASE = "release"


class StoryState(StrEnum):
    UNSCHEDULED = "unscheduled"
    UNSTARTED = "unstarted"
    STARTED = "started"
    FINISHED = "finished"
    DELIVERED = "delivered"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class Role(StrEnum):
    OWNER = "owner"
    MEMBER = "member"
    VIEWER = "viewer"


class _Command(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RenameProject(_Command):
    type: Literal["rename_project"]
    name: Name


class AddMember(_Command):
    """Add a user (by email) or change an existing member's role."""

    type: Literal["add_member"]
    email: Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=254)]
    role: Role = Role.MEMBER


class SetRole(_Command):
    """Change a member's role, naming them by id (the board lists members by id and
    name; their emails are not in the snapshot)."""

    type: Literal["set_role"]
    user_id: Id
    role: Role


class RemoveMember(_Command):
    type: Literal["remove_member"]
    user_id: Id


class CreateStory(_Command):
    type: Literal["create_story"]
    title: Title
    description: Text = ""
    story_type: StoryType = StoryType.FEATURE
    state: StoryState = StoryState.UNSCHEDULED
    estimate: Estimate | None = None
    owner_id: Id | None = None
    labels: Labels = Field(default_factory=list)
    before_id: Id | None = Field(default=None, description="Place before this story; end if null.")


class UpdateStory(_Command):
    """Change only the fields given; ``estimate`` and ``owner_id`` may be set to null."""

    type: Literal["update_story"]
    story_id: Id
    title: Title | None = None
    description: Text | None = None
    story_type: StoryType | None = None
    state: StoryState | None = None
    estimate: Estimate | None = None
    owner_id: Id | None = None
    labels: Labels | None = None


class MoveStory(_Command):
    type: Literal["move_story"]
    story_id: Id
    before_id: Id | None = Field(default=None, description="Move before this story; end if null.")
    state: StoryState | None = None


class DeleteStory(_Command):
    type: Literal["delete_story"]
    story_id: Id


class AddComment(_Command):
    type: Literal["add_comment"]
    story_id: Id
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class EditComment(_Command):
    type: Literal["edit_comment"]
    story_id: Id
    comment_id: Id
    text: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=10_000)]


class DeleteComment(_Command):
    type: Literal["delete_comment"]
    story_id: Id
    comment_id: Id


class AddTask(_Command):
    type: Literal["add_task"]
    story_id: Id
    text: ShortText


class EditTask(_Command):
    type: Literal["edit_task"]
    story_id: Id
    task_id: Id
    text: ShortText


class CompleteTask(_Command):
    type: Literal["complete_task"]
    story_id: Id
    task_id: Id
    done: bool = True


class ReorderTask(_Command):
    type: Literal["reorder_task"]
    story_id: Id
    task_id: Id
    position: Annotated[int, Field(ge=0, le=10_000)]


class DeleteTask(_Command):
    type: Literal["delete_task"]
    story_id: Id
    task_id: Id


Command = Annotated[
    RenameProject
    | AddMember
    | SetRole
    | RemoveMember
    | CreateStory
    | UpdateStory
    | MoveStory
    | DeleteStory
    | AddComment
    | EditComment
    | DeleteComment
    | AddTask
    | EditTask
    | CompleteTask
    | ReorderTask
    | DeleteTask,
    Field(discriminator="type"),
]


class CommandRequest(BaseModel):
    """A command with its optional concurrency guard."""

    model_config = ConfigDict(extra="forbid")

    command: Command
    expected_version: Annotated[int, Field(ge=0, le=2**53)] | None = Field(
        default=None, description="Refuse with 409 unless the project is at this version."
    )


#: Which roles may issue which commands; viewers issue none.
OWNER_ONLY = frozenset({"rename_project", "add_member", "set_role", "remove_member"})
