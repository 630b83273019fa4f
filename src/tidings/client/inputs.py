"""What a driver tells the sync controller: one dataclass per input, each fed with ``now``.

``input_from_json`` reads the form used by the shared test vectors
(tests/vectors/sync/README.md); ``from_push_message`` turns a push server's message
(docs/PROTOCOL.md, tidings.protocol.push) into the matching input.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tidings.protocol.advice import Advice
from tidings.protocol.push import ServerState, ServerType

Event = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Start:
    """Begin: load snapshots, schedule polls, start push."""


@dataclass(frozen=True, slots=True)
class Tick:
    """Time passed; whatever is due at ``now`` runs."""


@dataclass(frozen=True, slots=True)
class SnapshotLoaded:
    project: int
    version: int


@dataclass(frozen=True, slots=True)
class PollResult:
    """One project's poll answer (docs/PROTOCOL.md 1.2); a 304: no events, the held version."""

    project: int
    version: int
    events: tuple[Event, ...] = ()
    has_more: bool = False
    reload: str | None = None
    advice: Advice | None = None


@dataclass(frozen=True, slots=True)
class PollFailed:
    """The poll or snapshot request for ``project`` failed (``status`` None: no answer)."""

    project: int
    status: int | None = None
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class PokeReceived:
    """A poke arrived: ``project`` is at ``version`` (written at ``ts``)."""

    project: int
    version: int
    ts: float
    events: tuple[Event, ...] | None = None
    #: The connection it came on (refreshes its heartbeat clock); None if unknown.
    conn: int | None = None


@dataclass(frozen=True, slots=True)
class PushConnected:
    """The transport is open (the subscribe is on its way)."""

    conn: int


@dataclass(frozen=True, slots=True)
class PushSubscribed:
    conn: int
    #: Each project's current version as the push server knows it (may omit some).
    projects: dict[int, int] = field(default_factory=dict)
    state: ServerState = ServerState.OK
    #: Seconds between the server's heartbeats; None: the configured default.
    heartbeat: float | None = None


@dataclass(frozen=True, slots=True)
class PushHeartbeat:
    conn: int
    state: ServerState = ServerState.OK


@dataclass(frozen=True, slots=True)
class PushDrain:
    conn: int
    reconnect_after: float


@dataclass(frozen=True, slots=True)
class PushTokenExpiring:
    conn: int
    expires_at: float


@dataclass(frozen=True, slots=True)
class PushRevoked:
    """The user's access to ``project`` was revoked: the connection no longer watches it."""

    conn: int
    project: int


@dataclass(frozen=True, slots=True)
class PushClosed:
    """The connection ended; ``code`` is the close code (None: dropped, no code)."""

    conn: int
    code: int | None = None


@dataclass(frozen=True, slots=True)
class TokenFetched:
    token: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class TokenFailed:
    status: int | None = None


Input = (
    Start
    | Tick
    | SnapshotLoaded
    | PollResult
    | PollFailed
    | PokeReceived
    | PushConnected
    | PushSubscribed
    | PushHeartbeat
    | PushDrain
    | PushTokenExpiring
    | PushRevoked
    | PushClosed
    | TokenFetched
    | TokenFailed
)


def _events(raw: Any) -> tuple[Event, ...]:
    if not isinstance(raw, list) or not all(isinstance(e, dict) for e in raw):
        raise ValueError("'events' must be a list of objects")
    return tuple(raw)


def _versions(raw: Any) -> dict[int, int]:
    if not isinstance(raw, dict):
        raise ValueError("'projects' must map project ids to versions")
    return {int(p): int(v) for p, v in raw.items()}


def _opt_float(raw: Any) -> float | None:
    return None if raw is None else float(raw)


def _opt_int(raw: Any) -> int | None:
    return None if raw is None else int(raw)


def _poke(body: dict[str, Any], conn: int | None) -> PokeReceived:
    events = body.get("events")
    return PokeReceived(
        project=int(body["project"]),
        version=int(body["version"]),
        ts=float(body["ts"]),
        events=None if events is None else _events(events),
        conn=conn,
    )


def _subscribed(body: dict[str, Any], conn: int) -> PushSubscribed:
    return PushSubscribed(
        conn=conn,
        projects=_versions(body.get("projects", {})),
        state=ServerState(body.get("state", "ok")),
        heartbeat=_opt_float(body.get("heartbeat")),
    )


def _heartbeat(body: dict[str, Any], conn: int) -> PushHeartbeat:
    return PushHeartbeat(conn, ServerState(body.get("state", "ok")))


def input_from_json(body: dict[str, Any]) -> Input:
    """The vector form: ``{"type": "poke", "project": 7, ...}``; ValueError when unknown."""
    kind = body.get("type")
    if kind == "start":
        return Start()
    if kind == "tick":
        return Tick()
    if kind == "snapshot_loaded":
        return SnapshotLoaded(int(body["project"]), int(body["version"]))
    if kind == "poll_result":
        advice = body.get("advice")
        return PollResult(
            project=int(body["project"]),
            version=int(body["version"]),
            events=_events(body.get("events", [])),
            has_more=bool(body.get("has_more", False)),
            reload=body.get("reload"),
            advice=None if advice is None else Advice.from_json(advice),
        )
    if kind == "poll_failed":
        return PollFailed(
            int(body["project"]), _opt_int(body.get("status")), _opt_float(body.get("retry_after"))
        )
    if kind == "poke":
        return _poke(body, _opt_int(body.get("conn")))
    if kind == "push_connected":
        return PushConnected(int(body["conn"]))
    if kind == "push_subscribed":
        return _subscribed(body, int(body["conn"]))
    if kind == "push_heartbeat":
        return _heartbeat(body, int(body["conn"]))
    if kind == "push_drain":
        return PushDrain(int(body["conn"]), float(body["reconnect_after"]))
    if kind == "push_token_expiring":
        return PushTokenExpiring(int(body["conn"]), float(body["expires_at"]))
    if kind == "push_revoked":
        return PushRevoked(int(body["conn"]), int(body["project"]))
    if kind == "push_closed":
        return PushClosed(int(body["conn"]), _opt_int(body.get("code")))
    if kind == "token_fetched":
        return TokenFetched(str(body["token"]), float(body["expires_at"]))
    if kind == "token_failed":
        return TokenFailed(_opt_int(body.get("status")))
    raise ValueError(f"unknown input type {kind!r}")


def from_push_message(conn: int, body: Any) -> Input | None:
    """Map a push server message to an input; None for ``error`` and anything unknown.

    An ``error`` message is always followed by a close, whose code carries the
    meaning; malformed messages are dropped rather than half-understood.
    """
    if not isinstance(body, dict):
        return None
    kind = body.get("type")
    try:
        if kind == ServerType.POKE:
            return _poke(body, conn)
        if kind == ServerType.HEARTBEAT:
            return _heartbeat(body, conn)
        if kind == ServerType.SUBSCRIBED:
            return _subscribed(body, conn)
        if kind == ServerType.DRAIN:
            return PushDrain(conn, float(body.get("reconnect_after", 0)))
        if kind == ServerType.TOKEN_EXPIRING:
            return PushTokenExpiring(conn, float(body["expires_at"]))
        if kind == ServerType.REVOKED:
            project = body["project"]
            return PushRevoked(conn, project) if type(project) is int else None
    except (KeyError, TypeError, ValueError):
        return None
    return None
