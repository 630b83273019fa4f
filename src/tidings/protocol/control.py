"""Messages on the control channel (``CONTROL_CHANNEL``).

``{"type": "link_heartbeat", "server": "<id>", "seq": 12}``: each push server
publishes one every second and watches its own come back on its subscription,
which proves the whole path publish -> broker -> subscription works (a link can
be connected and still deaf).

``{"type": "push_stats", "server": "<id>", "ts": ..., "state": "ok", "connections":
{"ws": n, ...}, "subscribed_projects": n, "heartbeat_age": s, "counters": {...}}``:
each push server's figures every few seconds, so the app's admin page can show
the whole fleet without knowing any push server's address.

Receivers ignore control messages of other types.
"""

from __future__ import annotations

from typing import Any

import orjson

LINK_HEARTBEAT = "link_heartbeat"
PUSH_STATS = "push_stats"

#: Control messages larger than this are ignored unparsed.
MAX_CONTROL_MESSAGE_BYTES = 4096


def link_heartbeat(server: str, seq: int) -> bytes:
    return orjson.dumps({"type": LINK_HEARTBEAT, "server": server, "seq": seq})


def push_stats(server: str, ts: float, figures: dict[str, Any]) -> bytes:
    return orjson.dumps({**figures, "type": PUSH_STATS, "server": server, "ts": ts})


def _load(data: bytes, kind: str) -> dict[str, Any] | None:
    """The message as a dict if it is a control message of type ``kind``."""
    if len(data) > MAX_CONTROL_MESSAGE_BYTES:
        return None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("type") != kind:
        return None
    return body


def parse_push_stats(data: bytes) -> dict[str, Any] | None:
    """A push server's figures, or ``None`` for anything else (never raises)."""
    body = _load(data, PUSH_STATS)
    if body is None:
        return None
    if not isinstance(body.get("server"), str) or not isinstance(body.get("ts"), int | float):
        return None
    connections = body.get("connections")
    if not isinstance(connections, dict) or not all(
        isinstance(k, str) and type(v) is int for k, v in connections.items()
    ):
        return None
    return body


def parse_link_heartbeat(data: bytes) -> tuple[str, int] | None:
    """``(server, seq)`` for a link heartbeat; ``None`` for anything else."""
    body = _load(data, LINK_HEARTBEAT)
    if body is None:
        return None
    server, seq = body.get("server"), body.get("seq")
    if not isinstance(server, str) or type(seq) is not int:
        return None
    return server, seq
