"""The poke: the one message the app publishes on a project's channel.

``{"type": "poke", "project": 42, "version": 17, "ts": 1732780000.123}`` plus,
in full-push mode, ``"events": [...]`` (the events after the previous version,
contiguous, ending at ``version``). Any language can publish one; see
docs/PROTOCOL.md. Decoding is strict: a malformed message is rejected with
:class:`BadMessage` rather than half-understood; events that do not match the
event format are dropped, and the poke is kept without them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from tidings.protocol.errors import BadMessage
from tidings.protocol.events import BadEvent, check_events

#: Upper bound on an encoded poke with events; larger events are left out and the
#: client polls for them instead (a poke without events is always valid).
MAX_FULL_PUSH_BYTES = 16 * 1024

#: Upper bound on any message accepted from the broker.
MAX_BROKER_MESSAGE_BYTES = 64 * 1024

#: Versions (and project ids) are integers in 0..MAX_VERSION: exact in a JSON
#: number everywhere (a JavaScript double), and far beyond any real project's
#: history. A poke or version key outside the range is refused, not forwarded:
#: one poke at 2**64 - 1 would otherwise make every later real poke stale.
MAX_VERSION = 2**53

#: Digits of a version key's value at most (2**53 has 16).
_MAX_VERSION_DIGITS = 16

#: ``ts`` is seconds since the epoch, below 2**40 (the year 36812).
_MAX_TS = 2.0**40


@dataclass(frozen=True, slots=True)
class Poke:
    project: int
    version: int
    ts: float
    events: tuple[dict[str, Any], ...] | None = None
    #: Why the message's ``events`` were dropped (they did not match the event
    #: format, tidings.protocol.events), if they were: never sent on.
    events_refused: str | None = None

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


def valid_version(value: object) -> bool:
    """Whether ``value`` is a version a receiver accepts (an int in 0..MAX_VERSION)."""
    return type(value) is int and 0 <= value <= MAX_VERSION


def parse_version_key(raw: bytes | str) -> int | None:
    """A version key's value as read back from the broker, or None if it is not an
    ASCII decimal in 0..MAX_VERSION (never raises: the reader must survive any value)."""
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    if not 0 < len(text) <= _MAX_VERSION_DIGITS or not text.isascii() or not text.isdigit():
        return None
    value = int(text)
    return value if value <= MAX_VERSION else None


def _version_field(body: dict[str, Any], field: str) -> int:
    value = body.get(field)
    if not valid_version(value):
        raise BadMessage(f"{field!r} must be an integer in 0..2**53")
    assert isinstance(value, int)
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
    project = _version_field(body, "project")
    version = _version_field(body, "version")
    ts = body.get("ts")
    if not isinstance(ts, int | float) or isinstance(ts, bool) or not 0 <= ts < _MAX_TS:
        raise BadMessage("'ts' must be a number (seconds since the epoch)")
    raw = body.get("events")
    if raw is None:
        return Poke(project, version, float(ts))
    try:
        events = check_events(raw, version)
    except BadEvent as exc:
        # The poke is still true (the version exists): clients poll for the events.
        return Poke(project, version, float(ts), None, str(exc))
    return Poke(project, version, float(ts), events)
