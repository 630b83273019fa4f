"""The poke: the one message the app publishes on a project's channel.

``{"type": "poke", "project": 42, "version": 17, "ts": 1732780000.123}`` plus,
in full-push mode, ``"events": [...]`` (the events after the previous version,
contiguous, ending at ``version``). Any language can publish one; see
docs/PROTOCOL.md. Decoding is strict: a malformed message is rejected with
:class:`BadMessage` rather than half-understood.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import orjson

from tidings.protocol.errors import BadMessage

#: Upper bound on an encoded poke with events; larger events are left out and the
#: client polls for them instead (a poke without events is always valid).
MAX_FULL_PUSH_BYTES = 16 * 1024

#: Upper bound on any message accepted from the broker.
MAX_BROKER_MESSAGE_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class Poke:
    project: int
    version: int
    ts: float
    events: tuple[dict[str, Any], ...] | None = None

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": "poke",
            "project": self.project,
            "version": self.version,
            "ts": self.ts,
        }
        if self.events is not None:
            body["events"] = list(self.events)
        return body


def encode_poke(poke: Poke) -> bytes:
    """Encode for the broker, dropping events if they would pass the size cap."""
    data = orjson.dumps(poke.to_json())
    if poke.events is not None and len(data) > MAX_FULL_PUSH_BYTES:
        data = orjson.dumps(Poke(poke.project, poke.version, poke.ts).to_json())
    return data


def _positive_int(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if type(value) is not int or value < 0:
        raise BadMessage(f"{field!r} must be a non-negative integer")
    return value


def decode_poke(data: bytes | str) -> Poke:
    if len(data) > MAX_BROKER_MESSAGE_BYTES:
        raise BadMessage("message too large")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise BadMessage(f"not JSON: {exc}") from None
    if not isinstance(body, dict) or body.get("type") != "poke":
        raise BadMessage("not a poke message")
    project = _positive_int(body, "project")
    version = _positive_int(body, "version")
    ts = body.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise BadMessage("'ts' must be a number (seconds since the epoch)")
    events = body.get("events")
    if events is not None:
        if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
            raise BadMessage("'events' must be a list of objects")
        versions = [e.get("version") for e in events]
        if not versions or versions[-1] != version or any(type(v) is not int for v in versions):
            raise BadMessage("'events' must end at 'version'")
        if any(b != a + 1 for a, b in itertools.pairwise(versions)):
            raise BadMessage("'events' must be contiguous")
        events = tuple(events)
    return Poke(project, version, float(ts), events)
