"""What ``decide`` may look at: a narrow view of a project's state, so the store
loads only the pieces a command checks (the stories it names, the members it
names) instead of the whole project. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from tidings.domain import commands as c
from tidings.domain.project import Snapshot, find

Story = dict[str, Any]
Member = dict[str, Any]


class ProjectView(Protocol):
    """The state ``decide`` reads. ``story`` and ``member`` answer for the ids
    ``needs`` named; ``members`` only when it asked for all of them."""

    @property
    def next_id(self) -> int: ...

    @property
    def story_count(self) -> int: ...

    def story(self, story_id: int) -> Story | None: ...

    def member(self, user_id: int) -> Member | None: ...

    def members(self) -> list[Member]: ...


@dataclass(frozen=True, slots=True)
class SnapshotView:
    """A whole snapshot seen as a view (tests, the simulator, the client)."""

    state: Snapshot

    @property
    def next_id(self) -> int:
        return int(self.state["next_id"])

    @property
    def story_count(self) -> int:
        return len(self.state["stories"])

    def story(self, story_id: int) -> Story | None:
        index = find(self.state["stories"], "id", story_id)
        return None if index is None else self.state["stories"][index]

    def member(self, user_id: int) -> Member | None:
        index = find(self.state["members"], "user_id", user_id)
        return None if index is None else self.state["members"][index]

    def members(self) -> list[Member]:
        return list(self.state["members"])


@dataclass(frozen=True, slots=True)
class Needs:
    """The pieces of state one command reads or changes: what the store loads."""

    #: Stories whose documents are read (and perhaps rewritten).
    stories: frozenset[int] = frozenset()
    #: Members looked up by id (a story's new owner).
    members: frozenset[int] = frozenset()
    #: Every member (membership commands: counts, the last-owner rule).
    all_members: bool = False
    #: The command puts a story on the board: load the ranks of the stories
    #: before ``stories`` (two each) and of the last two stories.
    board: bool = False
    #: Stories owned by this user are rewritten (removing a member unassigns them).
    owned_by: int | None = None


def needs(command: c.Command) -> Needs:
    """What ``command`` touches; ``decide`` asks the view for nothing else."""
    match command:
        case c.RenameProject():
            return Needs()
        case c.AddMember():
            return Needs(all_members=True)
        case c.SetRole():
            return Needs(all_members=True)
        case c.RemoveMember(user_id=user_id):
            return Needs(all_members=True, owned_by=user_id)
        case c.CreateStory(before_id=before_id, owner_id=owner_id):
            return Needs(stories=_ids(before_id), members=_ids(owner_id), board=True)
        case c.UpdateStory(story_id=story_id, owner_id=owner_id):
            return Needs(stories=_ids(story_id), members=_ids(owner_id))
        case c.MoveStory(story_id=story_id, before_id=before_id):
            return Needs(stories=_ids(story_id, before_id), board=True)
        case c.DeleteStory(story_id=story_id):
            return Needs(stories=_ids(story_id))
        case _:
            return Needs(stories=_ids(command.story_id))


def _ids(*ids: int | None) -> frozenset[int]:
    return frozenset(i for i in ids if i is not None)
