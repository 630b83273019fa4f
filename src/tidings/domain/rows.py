"""The project as rows: one document per story, with its rank in board order, and
one row per member. A command loads a ``Slice`` (the rows it names), ``decide``
reads it, and ``apply_to_slice`` turns the event into row changes, so a
command's cost does not grow with the project. ``rows_of`` lays out a whole
snapshot the same way (rebuilds and migrations). Pure: no I/O.

The board order is a rank per story (an integer, sorted ascending): a story
put between two others takes a rank between theirs, so an insert or a move
changes the one story's row and a delete none besides; only when two
neighbours' ranks are adjacent is a section around them re-spaced (``Board``),
which is rare (ranks start ``GAP`` apart) and bounded by the section.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

from tidings.domain import project as domain
from tidings.domain.view import Member, Story

#: Space between neighbours' ranks where a board is laid out, or a story is added
#: at either end: 2**32 leaves 32 halvings at any one place before a renumber.
GAP = 1 << 32

#: Ranks stay within +-LIMIT (inside a signed 64-bit column, with room).
LIMIT = 1 << 62

#: A renumbered section spaces its stories at least this far apart, so that
#: renumbers stay rare where stories keep being put in one place.
MIN_STEP = 1 << 16


class NoRoom(Exception):
    """No free rank between a story's new neighbours: the store loads every rank
    of the project and the board renumbers the smallest section with room."""


class Board:
    """Part of the board: the ranks of the loaded stories (the named ones, the
    two before each of them and the last two), enough to take a story off and
    put one before any of them or at the end; or every rank (``complete``),
    enough to renumber."""

    def __init__(self, ranks: dict[int, int], complete: bool) -> None:
        self._before = dict(ranks)
        self.ranks = dict(ranks)
        self._complete = complete

    def remove(self, story_id: int) -> None:
        self.ranks.pop(story_id, None)

    def insert(self, story_id: int, before_id: int | None) -> None:
        """Put ``story_id`` before ``before_id`` (at the end when None): a rank
        between its new neighbours', or NoRoom when there is none and not every
        rank is loaded."""
        if before_id is None:
            last = max(self.ranks.values(), default=None)
            rank = 0 if last is None else last + GAP
            room = rank <= LIMIT
        else:
            upper = self.ranks[before_id]
            prev = max((r for r in self.ranks.values() if r < upper), default=None)
            if prev is None:
                rank = upper - GAP
                room = rank >= -LIMIT
            else:
                rank = prev + (upper - prev) // 2
                room = upper - prev >= 2
        if room:
            self.ranks[story_id] = rank
            return
        if not self._complete:
            raise NoRoom(story_id)
        self._renumber(story_id, before_id)

    def _renumber(self, story_id: int, before_id: int | None) -> None:
        """Re-space the smallest section around the new place that has room for
        its stories ``MIN_STEP`` apart (the whole board at worst)."""
        order = sorted(self.ranks, key=lambda sid: (self.ranks[sid], sid))
        at = len(order) if before_id is None else order.index(before_id)
        order.insert(at, story_id)
        width = 1
        while True:
            i, j = max(0, at - width), min(len(order), at + width + 1)
            lo = self.ranks[order[i - 1]] if i > 0 else None
            hi = self.ranks[order[j]] if j < len(order) else None
            count = j - i
            if lo is None and hi is None:
                first, step = 0, GAP
            elif hi is None:
                assert lo is not None
                step = min(GAP, (LIMIT - lo) // (count + 1))
                first = lo + step
            elif lo is None:
                step = min(GAP, (hi + LIMIT) // (count + 1))
                first = hi - count * step
            else:
                step = (hi - lo) // (count + 1)
                first = lo + step
            if step >= MIN_STEP or (lo is None and hi is None):
                for n, sid in enumerate(order[i:j]):
                    self.ranks[sid] = first + n * step
                return
            width *= 2

    def changed(self) -> dict[int, int]:
        """New ranks of stories on the board (a new story's included)."""
        return {sid: r for sid, r in self.ranks.items() if self._before.get(sid) != r}


@dataclass
class Slice:
    """The rows one command loaded; a ``ProjectView`` for ``decide``."""

    project_id: int
    version: int
    name: str
    next_id: int
    story_count: int
    #: Story documents by id (only the ones loaded).
    stories: dict[int, Story] = field(default_factory=dict)
    #: Ranks of the loaded part of the board (see Board).
    ranks: dict[int, int] = field(default_factory=dict)
    #: ``ranks`` holds every story's (a renumber needs them).
    all_ranks: bool = False
    #: Members by user id, with their ordering key ``seq`` (only the ones loaded).
    loaded_members: dict[int, Member] = field(default_factory=dict)
    all_members: bool = False

    def story(self, story_id: int) -> Story | None:
        return self.stories.get(story_id)

    def member(self, user_id: int) -> Member | None:
        return self.loaded_members.get(user_id)

    def members(self) -> list[Member]:
        if not self.all_members:
            raise RuntimeError("the store did not load every member for this command")
        return sorted(self.loaded_members.values(), key=lambda m: m["seq"])


@dataclass
class Changes:
    """Row changes of one event, for the store to write."""

    inserted: dict[int, Story] = field(default_factory=dict)
    updated: dict[int, Story] = field(default_factory=dict)
    deleted: set[int] = field(default_factory=set)
    #: New ranks (inserted stories' included).
    ranks: dict[int, int] = field(default_factory=dict)
    #: Members added or changed: user id -> (role, name, seq).
    members: dict[int, tuple[str, str, int]] = field(default_factory=dict)
    removed_members: set[int] = field(default_factory=set)
    #: The project row's name, next id or story count changed.
    head: bool = False


def apply_to_slice(s: Slice, event: domain.Event) -> Changes:
    """Apply ``event`` to the loaded rows (in place) and say which rows changed.
    Follows domain/project.py's ``apply_in_place`` rule for rule."""
    kind, data = event["type"], event["data"]
    if event["version"] != s.version + 1:
        raise ValueError(f"event {event['version']} does not follow version {s.version}")
    # The board first: NoRoom leaves the slice as it was.
    board = Board(s.ranks, s.all_ranks)
    if kind == "story_created":
        board.insert(data["story"]["id"], data.get("before_id"))
    elif kind == "story_moved":
        board.remove(data["story_id"])
        board.insert(data["story_id"], data.get("before_id"))
    out = Changes()
    s.version = event["version"]
    if data.get("next_id", 0) > s.next_id:
        s.next_id = data["next_id"]
        out.head = True
    if kind == "project_created":
        s.name = data["name"]
        owner = data["owner"]
        out.members[owner["user_id"]] = ("owner", owner["name"], 1)
        out.head = True
    elif kind == "project_renamed":
        s.name = data["name"]
        out.head = True
    elif kind == "member_added":
        known = s.loaded_members.get(data["user_id"])
        if known is not None:
            seq = known["seq"]
        else:
            seq = 1 + max((m["seq"] for m in s.loaded_members.values()), default=0)
        out.members[data["user_id"]] = (data["role"], data["name"], seq)
    elif kind == "member_removed":
        out.removed_members.add(data["user_id"])
        for story in s.stories.values():
            if story["owner_id"] == data["user_id"]:
                story["owner_id"] = None
                out.updated[story["id"]] = story
    elif kind == "story_created":
        story = domain.new_story(event)
        s.stories[story["id"]] = story
        s.story_count += 1
        out.inserted[story["id"]] = story
        out.ranks = board.changed()
        out.head = True
    elif kind == "story_moved":
        story = s.stories[data["story_id"]]
        domain.change_story(story, event)
        out.updated[story["id"]] = story
        out.ranks = board.changed()
    elif kind == "story_deleted":
        # No other story's rank changes.
        s.stories.pop(data["story_id"])
        s.story_count -= 1
        out.deleted.add(data["story_id"])
        out.head = True
    elif kind in domain.STORY_EVENTS:
        story = s.stories[data["story_id"]]
        domain.change_story(story, event)
        out.updated[story["id"]] = story
    else:
        raise ValueError(f"unknown event type {kind!r}")
    return out


@dataclass(frozen=True, slots=True)
class ProjectRows:
    """A whole project laid out as rows (see ``rows_of``)."""

    name: str
    version: int
    next_id: int
    #: (story id, rank, owner id, document), in board order.
    stories: list[tuple[int, int, int | None, Story]]
    #: (user id, role, name, seq), in member order.
    members: list[tuple[int, str, str, int]]


def rows_of(state: domain.Snapshot) -> ProjectRows:
    """Lay a whole snapshot out as rows: the same rows the commands that built it
    wrote, up to the ranks and the members' ordering keys (which only order)."""
    return ProjectRows(
        name=state["name"],
        version=state["version"],
        next_id=state["next_id"],
        stories=[(s["id"], n * GAP, s["owner_id"], s) for n, s in enumerate(state["stories"])],
        members=[
            (m["user_id"], m["role"], m["name"], seq)
            for seq, m in enumerate(state["members"], start=1)
        ],
    )


def board_order(ranks: dict[int, int]) -> list[int]:
    """Story ids in board order from every story's rank; ValueError if two share
    one (the board would have no one order)."""
    order = sorted(ranks, key=ranks.__getitem__)
    for a, b in pairwise(order):
        if ranks[a] == ranks[b]:
            raise ValueError(f"stories {a} and {b} share rank {ranks[a]}")
    return order


def members_of(rows: list[tuple[int, str, str, int]]) -> list[dict[str, Any]]:
    """Member rows (user id, role, name, seq) as the snapshot lists them."""
    return [
        {"user_id": uid, "role": role, "name": name}
        for uid, role, name, _ in sorted(rows, key=lambda r: r[3])
    ]
