"""A project's history read from its event log, newest first, for people rather
than clients: the activity feed and one story's changes.

Sans-I/O: the route reads a bounded run of the log backwards (EventStore.history)
and this module picks what to show and where the next page starts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

#: Events one history page holds at most, and by default.
MAX_HISTORY_LIMIT = 100
DEFAULT_HISTORY_LIMIT = 50


def story_of(event: dict[str, Any]) -> int | None:
    """The story an event is about: ``story_id``, or the created story's id."""
    data = event.get("data") or {}
    if "story_id" in data:
        return int(data["story_id"])
    story = data.get("story")
    if isinstance(story, dict) and "id" in story:
        return int(story["id"])
    return None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    #: Encoded event bodies, newest first.
    events: list[bytes]
    #: Where the next (older) page starts, as the ``before`` to send; None at the
    #: oldest event kept (the start of the project, or the pruned edge).
    next_before: int | None


def page_of(
    bodies: list[str], *, story: int | None, limit: int, scanned: int, pruned_through: int
) -> HistoryPage:
    """The page from ``bodies`` (the log backwards from ``before``, at most
    ``scanned`` of them read): all of them up to ``limit``, or only ``story``'s."""
    picked: list[bytes] = []
    last = None
    for body in bodies:
        event = orjson.loads(body)
        last = int(event["version"])
        if story is None or story_of(event) == story:
            picked.append(body.encode())
            if len(picked) == limit:
                break
    # More is kept below the last event looked at unless it was the oldest kept.
    if last is None or last <= pruned_through + 1:
        return HistoryPage(picked, None)
    if len(picked) == limit or len(bodies) == scanned:
        return HistoryPage(picked, last)
    return HistoryPage(picked, None)
