"""Messages on the control channel (``CONTROL_CHANNEL``): push-server link heartbeats.

``{"type": "link_heartbeat", "server": "<id>", "seq": 12}``: each push server
publishes one every second and watches its own come back on its subscription,
which proves the whole path publish -> broker -> subscription works (a link can
be connected and still deaf). Receivers ignore control messages of other types.
"""

from __future__ import annotations

import orjson

LINK_HEARTBEAT = "link_heartbeat"

#: Control messages larger than this are ignored unparsed.
MAX_CONTROL_MESSAGE_BYTES = 4096


def link_heartbeat(server: str, seq: int) -> bytes:
    return orjson.dumps({"type": LINK_HEARTBEAT, "server": server, "seq": seq})


def parse_link_heartbeat(data: bytes) -> tuple[str, int] | None:
    """``(server, seq)`` for a link heartbeat; ``None`` for anything else."""
    if len(data) > MAX_CONTROL_MESSAGE_BYTES:
        return None
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(body, dict) or body.get("type") != LINK_HEARTBEAT:
        return None
    server, seq = body.get("server"), body.get("seq")
    if not isinstance(server, str) or type(seq) is not int:
        return None
    return server, seq
