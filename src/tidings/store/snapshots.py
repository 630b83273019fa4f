"""Snapshots kept per process by project and version, and brought forward by
the events after them instead of re-read: a snapshot GET right after a change
of a 10,000-story project applies one event to the kept rows and re-encodes,
rather than fetching 10,000 rows. Pure: no I/O (store/events.py reads).

A kept copy is the project's rows at exactly its ``version`` (the head, the
members, every story's rank and encoded document), so the snapshot it
encodes is the one ``readmodel.assemble`` makes from the database at that
version; events are immutable and gap-free, so applying the ones after it with
``rows.apply_to_slice`` (the rule the commands write the rows by) gives the
rows at the later version. Whatever cannot be followed cheaply is dropped and
re-read: a member removal (it unassigns stories by owner), a gap, a pruned
log, more than ``CATCH_UP_EVENTS``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import orjson

from tidings.domain import rows
from tidings.store.gzblocks import Blocks

#: Bytes charged to kept snapshots per process, across projects; least recently
#: used out first. A copy is charged what it holds: the story documents, the
#: encoded snapshot once a GET without gzip asked for it, the compressed runs and
#: the gzip stream once one with gzip did (store/gzblocks.py), plus
#: ``_PER_STORY`` for the dictionaries' entries. At the 10,000-story bound
#: (4.3 MB encoded) that is ~9 MB served gzipped, ~13.5 MB both ways, so 128 MiB
#: keeps 9-14 such projects, or thousands of small ones. A copy larger than the
#: budget is not kept.
CACHE_BYTES = 128 * 1024 * 1024

#: Most events a kept copy is brought forward by; beyond that it is re-read (a
#: story event costs a few passes over the board's ranks, ~1-2 ms at 10,000
#: stories; a full read ~40 ms).
CATCH_UP_EVENTS = 16

_PER_STORY = 300


@dataclass
class Kept:
    """A project's rows at ``version``, and their encoded snapshot (built lazily)."""

    project_id: int
    version: int
    name: str
    next_id: int
    #: user id -> (role, name, seq)
    members: dict[int, tuple[str, str, int]]
    #: story id -> its rank on the board
    ranks: dict[int, int]
    #: story id -> its encoded document, as stored
    bodies: dict[int, bytes]
    #: The gzip stream's compressed runs, kept across versions.
    blocks: Blocks = field(default_factory=Blocks, repr=False)
    _encoded: bytes | None = None
    _gzipped: bytes | None = None
    _gzip_level: int = -1
    #: Story ids in board order, while no rank changed.
    _order: list[int] | None = None
    #: The bodies' total length.
    _body_bytes: int = field(default=-1, repr=False)

    def __post_init__(self) -> None:
        self._body_bytes = sum(map(len, self.bodies.values()))

    def encoded(self) -> bytes:
        if self._encoded is None:
            self._encoded = b"".join(
                (self._head(), b",".join([self.bodies[sid] for sid in self.order()]), TAIL)
            )
        return self._encoded

    def gzipped(self, level: int) -> bytes:
        """The encoded snapshot gzip-compressed at ``level``, made once per version
        from runs of stories compressed once per change (store/gzblocks.py);
        ``mtime=0``, so the same bytes in every process."""
        if self._gzipped is None or self._gzip_level != level:
            self._gzipped = self.blocks.gzip(self._head(), self.order(), self.bodies, TAIL, level)
            self._gzip_level = level
        return self._gzipped

    def order(self) -> list[int]:
        """Story ids in board order."""
        if self._order is None:
            self._order = rows.board_order(self.ranks)
        return self._order

    def _head(self) -> bytes:
        return head(self.project_id, self.version, self.next_id, self.name, self.members)

    def cost(self) -> int:
        """Bytes this copy holds now (it grows when a GET encodes or compresses it:
        ``SnapshotCache.recharge``)."""
        return (
            self._body_bytes
            + len(self._encoded or b"")
            + len(self._gzipped or b"")
            + self.blocks.charged
            + _PER_STORY * len(self.ranks)
        )

    def advance(self, event: dict[str, Any]) -> bool:
        """Apply the event after ``version``; False when this copy cannot follow
        it (then it is unchanged and must be dropped)."""
        if event["version"] != self.version + 1 or event["type"] == "member_removed":
            return False
        data = event["data"]
        piece = rows.Slice(
            self.project_id,
            self.version,
            self.name,
            self.next_id,
            len(self.bodies),
            ranks=self.ranks,
            all_ranks=True,
            loaded_members={
                uid: {"user_id": uid, "role": role, "name": name, "seq": seq}
                for uid, (role, name, seq) in self.members.items()
            },
            all_members=True,
        )
        sid = data.get("story_id")
        if isinstance(sid, int) and sid in self.bodies:
            piece.stories[sid] = orjson.loads(self.bodies[sid])
        try:
            changes = rows.apply_to_slice(piece, event)
        except (KeyError, ValueError, AssertionError):
            return False
        # Nothing above changed this copy (the board works on its own copy of
        # the ranks); from here on nothing can fail.
        self.blocks.forget((*changes.deleted, *changes.updated))
        for sid in changes.deleted:
            self.ranks.pop(sid, None)
            self._body_bytes -= len(self.bodies.pop(sid, b""))
        for sid, story in (*changes.inserted.items(), *changes.updated.items()):
            body = orjson.dumps(story)
            self._body_bytes += len(body) - len(self.bodies.get(sid, b""))
            self.bodies[sid] = body
        self.ranks.update(changes.ranks)
        if changes.ranks or changes.deleted or changes.inserted:
            self._order = None
        for uid in changes.removed_members:
            self.members.pop(uid, None)
        self.members.update(changes.members)
        self.version, self.name, self.next_id = piece.version, piece.name, piece.next_id
        self._encoded = self._gzipped = None
        return True


#: What follows the stories in the snapshot's JSON.
TAIL = b"]}"


def head(
    pid: int, version: int, next_id: int, name: str, members: dict[int, tuple[str, str, int]]
) -> bytes:
    """The snapshot's JSON up to its first story."""
    top = {
        "id": pid,
        "name": name,
        "version": version,
        "next_id": next_id,
        "members": rows.members_of([(uid, *m) for uid, m in members.items()]),
    }
    return orjson.dumps(top)[:-1] + b',"stories":['


def encode(
    pid: int,
    version: int,
    next_id: int,
    name: str,
    members: dict[int, tuple[str, str, int]],
    order: list[int],
    bodies: dict[int, bytes],
) -> bytes:
    """The snapshot's JSON: the stories are stored encoded, so they are spliced in
    rather than decoded and re-encoded."""
    stories = b",".join([bodies[sid] for sid in order])
    return b"".join((head(pid, version, next_id, name, members), stories, TAIL))


class SnapshotCache:
    """Kept copies by project, within ``CACHE_BYTES``."""

    def __init__(self, budget: int = CACHE_BYTES) -> None:
        self._budget = budget
        self._kept: OrderedDict[int, tuple[Kept, int]] = OrderedDict()
        self._bytes = 0

    def get(self, project_id: int) -> Kept | None:
        found = self._kept.get(project_id)
        return None if found is None else found[0]

    def keep(self, kept: Kept) -> None:
        """Keep (or re-charge, after it advanced) ``kept`` as its project's copy."""
        self.drop(kept.project_id)
        cost = kept.cost()
        if cost > self._budget:
            return
        self._kept[kept.project_id] = (kept, cost)
        self._bytes += cost
        while self._bytes > self._budget:
            _, (_, dropped) = self._kept.popitem(last=False)
            self._bytes -= dropped

    def recharge(self, kept: Kept) -> None:
        """Charge ``kept`` what it holds now (a GET encoded or compressed it), if it
        is still its project's copy."""
        found = self._kept.get(kept.project_id)
        if found is not None and found[0] is kept and kept.cost() != found[1]:
            self.keep(kept)

    def drop(self, project_id: int) -> None:
        old = self._kept.pop(project_id, None)
        if old is not None:
            self._bytes -= old[1]

    @property
    def charged(self) -> int:
        return self._bytes
