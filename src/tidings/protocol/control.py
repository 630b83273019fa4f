"""Messages between the app and push servers that are not pokes (channels.py).

``{"type": "link_heartbeat", "server": "<id>", "seq": 12}``, on the server's own
``link_channel``: each push server publishes one every second and watches its
own come back on its subscription, which proves the whole path publish ->
broker -> subscription works (a link can be connected and still deaf).

``{"type": "push_stats", "server": "<id>", "ts": ..., "state": "ok", "connections":
{"ws": n, ...}, "subscribed_projects": n, "heartbeat_age": s, "counters": {...}}``,
on ``STATS_CHANNEL``: each push server's figures every few seconds, so the app's
admin page can show the whole fleet without knowing any push server's address.

The rest travel on ``CONTROL_CHANNEL``, which every push server subscribes to:

``{"type": "revoke", "user": 12, "project": 7, "at": 1732780200.5}``: the app,
after committing a change that takes ``user``'s access to ``project`` away
(``remove_member``); ``at`` is the commit time. Every push server stops that
user's connections watching the project and refuses push tokens issued at or
before ``at`` (plus leeway) for it (push/hub.py, docs/PROTOCOL.md 3.2).

``{"type": "app_heartbeat", "app": "<id>", "seq": 12, "push": "on"}``: each
app process, every second, through the same broker connection as its pokes, so
it fails exactly when pokes fail. A push server that stops hearing an app it
heard recently cannot trust that it still hears that app's pokes: it reports
``degraded`` (clients poll at the short interval) until the app is heard again,
says goodbye or is forgotten (push/apps.py). ``push`` is ``"off"`` while the
app's kill switch turns push off for everyone (optional; anything else means
on): push servers then report ``degraded`` too, so connected clients poll at
once and learn it from the poll's advice, instead of at their long interval.
``client`` (optional) is the Redis client name (CLIENT SETNAME) the app gives
the connections that carry its pokes: a push server that finds the app silent
and no connection of that name in CLIENT LIST knows the app is gone (its
process died and the kernel closed its sockets), not cut off, and stops
waiting for it one short poll interval after its silence began instead of
after ``forget_after`` (push/apps.py).

``publish_failing`` (optional, an integer; absent means 0) is how many of the
app's pokes and revocations failed to publish and are still waiting to be sent
again: while an app heard within ``deaf_after`` says it is above 0, push
servers report ``degraded`` (the app is alive, its path to them works, but some
of its pokes are not getting through, e.g. one shard of a cluster is down).

``{"type": "app_bye", "app": "<id>"}``: the app process is shutting down on
purpose; its silence from now on is not a fault.

Receivers ignore control messages of other types.
"""

from __future__ import annotations

from typing import Any, NamedTuple, TypeGuard

import orjson

LINK_HEARTBEAT = "link_heartbeat"
PUSH_STATS = "push_stats"
REVOKE = "revoke"
APP_HEARTBEAT = "app_heartbeat"
APP_BYE = "app_bye"

#: An app process's id is at most this long (it names the process, nothing more).
MAX_APP_ID_CHARS = 64

#: Control messages larger than this are ignored unparsed.
MAX_CONTROL_MESSAGE_BYTES = 4096

#: A Redis client name: at most this long, printable ASCII without spaces.
MAX_CLIENT_NAME_CHARS = 128


class AppBeat(NamedTuple):
    app: str
    seq: int
    push_off: bool
    #: The Redis client name of the connections carrying the app's pokes, if named.
    client: str | None = None
    #: Pokes (and revocations) the app failed to publish and has not sent yet.
    failing: int = 0


def link_heartbeat(server: str, seq: int) -> bytes:
    return orjson.dumps({"type": LINK_HEARTBEAT, "server": server, "seq": seq})


def push_stats(server: str, ts: float, figures: dict[str, Any]) -> bytes:
    return orjson.dumps({**figures, "type": PUSH_STATS, "server": server, "ts": ts})


def revoke(user: int, project: int, at: float) -> bytes:
    """``user`` lost access to ``project`` by a change committed at ``at`` (epoch seconds)."""
    return orjson.dumps({"type": REVOKE, "user": user, "project": project, "at": at})


def app_heartbeat(
    app: str, seq: int, *, push_off: bool = False, client: str | None = None, failing: int = 0
) -> bytes:
    body: dict[str, Any] = {
        "type": APP_HEARTBEAT,
        "app": app,
        "seq": seq,
        "push": "off" if push_off else "on",
    }
    if client is not None:
        body["client"] = client
    if failing:
        body["publish_failing"] = failing
    return orjson.dumps(body)


def app_bye(app: str) -> bytes:
    return orjson.dumps({"type": APP_BYE, "app": app})


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


def _positive_id(value: object) -> TypeGuard[int]:
    return type(value) is int and 0 < value <= 2**53


def parse_revoke(data: bytes) -> tuple[int, int, float] | None:
    """``(user, project, at)`` for a revocation; ``None`` for anything else (never raises)."""
    body = _load(data, REVOKE)
    if body is None:
        return None
    user, project, at = body.get("user"), body.get("project"), body.get("at")
    if not _positive_id(user) or not _positive_id(project):
        return None
    if not isinstance(at, int | float) or isinstance(at, bool) or not 0 <= at < 2**40:
        return None
    return user, project, float(at)


def _app_id(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= MAX_APP_ID_CHARS


def _client_name(value: object) -> TypeGuard[str]:
    return (
        isinstance(value, str)
        and 0 < len(value) <= MAX_CLIENT_NAME_CHARS
        and value.isascii()
        and value.isprintable()
        and " " not in value
    )


def parse_app_heartbeat(data: bytes) -> AppBeat | None:
    """The heartbeat, or ``None`` for anything else (never raises). A ``client``
    that is not a valid Redis client name is ignored, not the heartbeat."""
    body = _load(data, APP_HEARTBEAT)
    if body is None:
        return None
    app, seq, client = body.get("app"), body.get("seq"), body.get("client")
    if not _app_id(app) or type(seq) is not int or not 0 <= seq < 2**53:
        return None
    failing = body.get("publish_failing", 0)
    if type(failing) is not int or not 0 <= failing < 2**53:
        failing = 1  # present but garbled: the app meant that something fails
    return AppBeat(
        app, seq, body.get("push") == "off", client if _client_name(client) else None, failing
    )


def parse_app_bye(data: bytes) -> str | None:
    """The app's id for an ``app_bye``; ``None`` for anything else (never raises)."""
    body = _load(data, APP_BYE)
    if body is None:
        return None
    app = body.get("app")
    return app if _app_id(app) else None
