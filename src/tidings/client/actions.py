"""What the sync controller asks its driver to do. Plain data, no behaviour.

Each action's ``to_json()`` is the form used by the shared test vectors
(tests/vectors/sync/README.md) and by the JS controller, which returns the same
objects directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tidings.protocol.telemetry import TelemetryReport

Event = dict[str, Any]


class Status(StrEnum):
    """What the UI tells the user about freshness."""

    LIVE = "live"  # push healthy for every project
    PUSH_OFF = "polling_push_off"  # the server's advice (or the config) switched push off
    PUSH_UNAVAILABLE = "polling_push_unavailable"  # push down, degraded, draining, not yet up
    OFFLINE = "offline"  # the latest poll of some project failed


def _versions(projects: dict[int, int]) -> dict[str, int]:
    return {str(p): v for p, v in projects.items()}


@dataclass(frozen=True, slots=True)
class Poll:
    """Poll now, each project since the version held (one request may carry several)."""

    projects: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {"type": "poll", "projects": _versions(self.projects)}


@dataclass(frozen=True, slots=True)
class PollAt:
    """The project's next poll is due at ``at``; feed a tick then."""

    project: int
    at: float

    def to_json(self) -> dict[str, Any]:
        return {"type": "poll_at", "project": self.project, "at": self.at}


@dataclass(frozen=True, slots=True)
class ReloadSnapshot:
    """Load the project's snapshot (GET /api/projects/{id}); answer with snapshot_loaded."""

    project: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "reload_snapshot", "project": self.project}


@dataclass(frozen=True, slots=True)
class ApplyEvents:
    """Apply these events, in order; the first follows the version held exactly."""

    project: int
    events: tuple[Event, ...]

    def to_json(self) -> dict[str, Any]:
        return {"type": "apply_events", "project": self.project, "events": list(self.events)}


@dataclass(frozen=True, slots=True)
class ConnectPush:
    """Open push connection ``conn`` and subscribe with ``token`` and the versions held."""

    conn: int
    token: str
    projects: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "connect_push",
            "conn": self.conn,
            "token": self.token,
            "projects": _versions(self.projects),
        }


@dataclass(frozen=True, slots=True)
class ConnectPushAt:
    """The next push connection attempt is due at ``at``."""

    at: float

    def to_json(self) -> dict[str, Any]:
        return {"type": "connect_push_at", "at": self.at}


@dataclass(frozen=True, slots=True)
class ClosePush:
    """Close push connection ``conn``; no push_closed is expected for it."""

    conn: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "close_push", "conn": self.conn}


@dataclass(frozen=True, slots=True)
class RefreshToken:
    """Fetch a push token (POST /api/push/token); answer with token_fetched or token_failed."""

    def to_json(self) -> dict[str, Any]:
        return {"type": "refresh_token"}


@dataclass(frozen=True, slots=True)
class PushRefresh:
    """Send ``refresh`` with the new token on the open connection (SSE: reconnect)."""

    conn: int
    token: str
    projects: dict[int, int]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "push_refresh",
            "conn": self.conn,
            "token": self.token,
            "projects": _versions(self.projects),
        }


@dataclass(frozen=True, slots=True)
class StatusChanged:
    status: Status

    def to_json(self) -> dict[str, Any]:
        return {"type": "status", "status": str(self.status)}


@dataclass(frozen=True, slots=True)
class ReportTelemetry:
    """POST the report to /api/telemetry; best effort, nothing is fed back."""

    report: TelemetryReport

    def to_json(self) -> dict[str, Any]:
        return {"type": "report_telemetry", "body": self.report.to_json()}


Action = (
    Poll
    | PollAt
    | ReloadSnapshot
    | ApplyEvents
    | ConnectPush
    | ConnectPushAt
    | ClosePush
    | RefreshToken
    | PushRefresh
    | StatusChanged
    | ReportTelemetry
)
