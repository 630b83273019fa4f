"""Messages between a push server and its clients (WebSocket text frames, SSE events,
Socket.IO events): the same JSON objects on every transport.

Client -> server: ``subscribe`` (token and the versions the client holds) and
``refresh`` (a new token, same subscription). Server -> client: ``subscribed``,
``poke``, ``heartbeat``, ``drain``, ``token_expiring``, ``revoked``, ``error``, ``close``.
See docs/PROTOCOL.md for the fields and the close codes.
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any

import orjson

from tidings.protocol.errors import BadMessage
from tidings.protocol.poke import Poke

#: Largest frame/event a client may send; bigger ones close the connection (1009).
MAX_CLIENT_MESSAGE_BYTES = 16 * 1024

#: Digits of a project id or version held, in a client message or an SSE query: a
#: bound (int() on a long digit string is slow, and refused past 4,300 digits) that
#: any real id or version fits, and that keeps both within a signed 64-bit integer.
MAX_DECIMAL_DIGITS = 18

#: Default seconds between heartbeats; a client that misses two treats push as down.
HEARTBEAT_INTERVAL = 25.0


class ServerState(StrEnum):
    OK = "ok"
    DEGRADED = "degraded"  # broker link deaf or down: poll at the short interval
    DRAINING = "draining"  # going away: poll at the short interval, reconnect later


class ClientType(StrEnum):
    SUBSCRIBE = "subscribe"
    REFRESH = "refresh"


class ServerType(StrEnum):
    SUBSCRIBED = "subscribed"
    POKE = "poke"
    HEARTBEAT = "heartbeat"
    DRAIN = "drain"
    TOKEN_EXPIRING = "token_expiring"
    REVOKED = "revoked"  # the user lost access to a project: no more pokes for it
    ERROR = "error"
    CLOSE = "close"  # the close code and reason, for transports that have none (SSE)


def _dumps(body: dict[str, Any]) -> bytes:
    return orjson.dumps(body)


def subscribed(projects: dict[int, int], state: ServerState, heartbeat: float) -> bytes:
    return _dumps(
        {
            "type": ServerType.SUBSCRIBED,
            "projects": {str(p): v for p, v in projects.items()},
            "state": state,
            "heartbeat": heartbeat,
        }
    )


def heartbeat(state: ServerState) -> bytes:
    return _dumps({"type": ServerType.HEARTBEAT, "state": state})


def drain(reconnect_after: float) -> bytes:
    # Milliseconds, rounded down: rounding up could say the window's end itself,
    # which PROTOCOL.md §4.4 excludes, and a client reconnecting early costs nothing.
    return _dumps(
        {"type": ServerType.DRAIN, "reconnect_after": math.floor(reconnect_after * 1000) / 1000}
    )


def token_expiring(expires_at: float) -> bytes:
    return _dumps({"type": ServerType.TOKEN_EXPIRING, "expires_at": expires_at})


def revoked(project: int) -> bytes:
    """The connection no longer watches ``project``: the user's access was revoked.

    The client polls it (a 404 says the access is gone; a 200, that it came back)."""
    return _dumps({"type": ServerType.REVOKED, "project": project})


def poke(message: Poke) -> bytes:
    """The broker's poke as clients see it: the same object (``events`` only in full-push mode)."""
    return _dumps(message.to_json())


def close(code: int, reason: str) -> bytes:
    """Sent just before a server-side close on transports without close codes (SSE)."""
    return _dumps({"type": ServerType.CLOSE, "code": code, "reason": reason})


def error(code: str, detail: str) -> bytes:
    return _dumps({"type": ServerType.ERROR, "error": code, "detail": detail})


def parse_decimal(text: str) -> int | None:
    """A non-negative ASCII decimal of at most ``MAX_DECIMAL_DIGITS`` digits, else None.

    Not ``str.isdigit()`` alone: it accepts "²" and other Unicode digits, which
    ``int()`` then refuses with a ValueError instead of a refusal.
    """
    if 0 < len(text) <= MAX_DECIMAL_DIGITS and text.isascii() and text.isdigit():
        return int(text)
    return None


def parse_client_message(data: bytes | str) -> tuple[ClientType, str, dict[int, int]]:
    """Return (type, token, {project: version held}); raise BadMessage otherwise.

    ``{"type": "subscribe", "token": "...", "projects": {"42": 17}}``; ``refresh``
    has the same shape and replaces the token (and may add projects).
    """
    if len(data) > MAX_CLIENT_MESSAGE_BYTES:
        raise BadMessage("message too large")
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise BadMessage("message is not JSON") from None
    return client_message_fields(body)


#: Client message types by their name (a lookup, not an enum call: every subscribe).
_CLIENT_TYPES = {t.value: t for t in ClientType}


def client_message_fields(body: object) -> tuple[ClientType, str, dict[int, int]]:
    """:func:`parse_client_message` after the JSON decoding: for a transport that
    carries the message inside JSON of its own (Socket.IO) and has decoded it,
    and encoded it once to apply the same size limit."""
    if not isinstance(body, dict):
        raise BadMessage("message must be a JSON object")
    name = body.get("type")
    kind = _CLIENT_TYPES.get(name) if isinstance(name, str) else None
    if kind is None:
        raise BadMessage("'type' must be 'subscribe' or 'refresh'")
    token = body.get("token")
    if not isinstance(token, str) or not token:
        raise BadMessage("'token' must be a string")
    raw = body.get("projects", {})
    if not isinstance(raw, dict):
        raise BadMessage("'projects' must map project ids to versions")
    projects: dict[int, int] = {}
    for key, version in raw.items():
        project = parse_decimal(key)
        if not project or type(version) is not int or version < 0:
            raise BadMessage("'projects' must map project ids to non-negative versions")
        projects[project] = version
    return kind, token, projects
