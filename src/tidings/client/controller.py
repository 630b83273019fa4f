"""The client's sync controller: when to poll, when to trust push, when to back off.

A plain state machine. ``feed(now, input)`` returns the actions a driver must
carry out; it never touches a socket, never reads a clock and draws randomness
only from the ``rand`` callable it is given, so every rule is checked by the
shared vectors in tests/vectors/sync/ against this module and its JS twin
(src/tidings/app/static/js/tidings-client/sync-controller.js). The rules are docs/PROTOCOL.md
section 5.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tidings.client import inputs as i
from tidings.client.actions import (
    Action,
    ApplyEvents,
    ClosePush,
    ConnectPush,
    ConnectPushAt,
    Event,
    Poll,
    PollAt,
    PushRefresh,
    RefreshToken,
    ReloadSnapshot,
    ReportTelemetry,
    Status,
    StatusChanged,
)
from tidings.client.backoff import full_jitter, jittered
from tidings.protocol.advice import Advice
from tidings.protocol.errors import CloseCode
from tidings.protocol.push import HEARTBEAT_INTERVAL, ServerState
from tidings.protocol.telemetry import (
    MAX_SAMPLES,
    MAX_STALENESS_MS,
    StalenessSample,
    TelemetryReport,
    Via,
)

#: The advice used until the first poll answer brings the server's own.
DEFAULT_ADVICE = Advice(push=True, interval=60.0, fallback_interval=5.0, jitter=0.2)

#: Close codes after which the token is dropped and a new one fetched before reconnecting.
TOKEN_CLOSE_CODES = frozenset({CloseCode.UNAUTHORIZED, CloseCode.FORBIDDEN})


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the controller is told at start; the defaults are the documented ones."""

    #: Projects to follow, in the order actions list them.
    projects: tuple[int, ...]
    #: Versions already held (a snapshot the page came with); others are loaded at start.
    versions: Mapping[int, int] = field(default_factory=dict)
    #: Whether this client may use push at all (client-config ``push.enabled``).
    push: bool = True
    #: Advice until a poll answer brings the server's (client-config ``advice``).
    advice: Advice = DEFAULT_ADVICE
    #: A poke starts a poll after a uniform delay in [0, poke_delay] s: spreads the
    #: herd of a hot project's watchers, and a burst of pokes costs one poll.
    #: 0.1, not 0.25: with 0.25 poke-mode staleness p99 was 253-272 ms against a
    #: 250 ms goal (bench/freshness.py), most of it this delay; with poll collapsing
    #: a poked herd costs one store read with or without the spread, and 5,000
    #: clients' time to current is bound by the app's CPU, not it (bench/herd.py).
    poke_delay: float = 0.1
    #: Poll errors: retry n waits uniform in [floor, min(cap, base * 2^(n-1))] s.
    poll_backoff_base: float = 2.0
    poll_backoff_cap: float = 120.0
    poll_backoff_floor: float = 1.0
    #: A server's Retry-After is honoured up to this many seconds (a bad value cannot
    #: silence a client for a day).
    retry_after_cap: float = 600.0
    #: Push reconnects: the same full-jitter backoff, its own counter.
    push_backoff_base: float = 2.0
    push_backoff_cap: float = 120.0
    push_backoff_floor: float = 1.0
    #: A connection must be subscribed within this many seconds or it is given up.
    connect_timeout: float = 10.0
    #: Heartbeat interval assumed when ``subscribed`` names none.
    heartbeat: float = HEARTBEAT_INTERVAL
    #: Push is down once nothing was heard for heartbeat * this (two missed, plus slack).
    heartbeat_timeout_factor: float = 2.5
    #: A connection subscribed this long resets the reconnect backoff when it ends;
    #: one that dies sooner keeps counting (a server that accepts and drops at once
    #: must not cause a reconnect storm).
    push_stable_after: float = 30.0
    #: Fetch a new token this long before it expires (at most half its remaining life).
    token_refresh_margin: float = 60.0
    #: A poll that finds the server behind an announced version retries this many
    #: times (after lag_retry_delay * 2^(n-1) s, jittered) before forgetting the
    #: announcement: the app's version cache may trail a commit by a moment.
    lag_retries: int = 3
    lag_retry_delay: float = 1.0
    #: Telemetry goes out every this many seconds (or at once with MAX_SAMPLES samples).
    telemetry_interval: float = 60.0
    telemetry_max_samples: int = MAX_SAMPLES
    #: A report of counts alone (no staleness sample, missed poke or poll error)
    #: waits until this long after the last report: an idle client on push would
    #: otherwise send as many reports as long-interval polls.
    telemetry_idle_interval: float = 600.0
    #: A poll counts a missed poke only for changes committed at least this long
    #: after push became healthy and this long before the answer (clock skew and a
    #: poke still in flight are not misses).
    miss_grace: float = 2.0

    @classmethod
    def from_json(cls, body: Mapping[str, Any]) -> Config:
        """The vector form (tests/vectors/sync/README.md): absent keys take the defaults."""
        known = {f for f in cls.__dataclass_fields__ if f not in ("projects", "versions", "advice")}
        unknown = set(body) - known - {"projects", "versions", "advice"}
        if unknown:
            raise ValueError(f"unknown config keys: {sorted(unknown)}")
        kwargs: dict[str, Any] = {k: body[k] for k in known if k in body}
        advice = body.get("advice")
        return cls(
            projects=tuple(int(p) for p in body["projects"]),
            versions={int(p): int(v) for p, v in body.get("versions", {}).items()},
            advice=DEFAULT_ADVICE if advice is None else Advice.from_json(advice),
            **kwargs,
        )


class PushState:
    OFF = "off"  # not wanted: disabled by config or by every project's advice
    WAITING = "waiting"  # a connection attempt is due at connect_at (or waits for a token)
    CONNECTING = "connecting"  # connect_push issued, no ``subscribed`` yet
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DRAINING = "draining"


_OPEN = (PushState.CONNECTING, PushState.HEALTHY, PushState.DEGRADED, PushState.DRAINING)
_SUBSCRIBED = (PushState.HEALTHY, PushState.DEGRADED, PushState.DRAINING)
_SERVER_STATES = {
    ServerState.OK: PushState.HEALTHY,
    ServerState.DEGRADED: PushState.DEGRADED,
    ServerState.DRAINING: PushState.DRAINING,
}
_STATUS_RANK = [Status.LIVE, Status.PUSH_OFF, Status.PUSH_UNAVAILABLE, Status.OFFLINE]


@dataclass(slots=True)
class _Project:
    id: int
    version: int | None
    advice: Advice
    needs_snapshot: bool
    in_flight: bool = False
    #: The regular cadence's next poll, and whether it was set with the long interval.
    next_poll_at: float | None = None
    next_long: bool = False
    #: The long-interval time a loss of push brought ``next_poll_at`` forward
    #: from; None once anything else sets the next poll.
    long_at: float | None = None
    #: An earlier poll: after a poke, a ``has_more`` page, or a lagging server.
    soon_at: float | None = None
    #: Consecutive failed requests (polls or snapshot loads).
    failures: int = 0
    #: Highest version announced by a poke or a ``subscribed`` answer.
    announced: int = 0
    #: ``announced`` when the request in flight was sent.
    announced_at_send: int = 0
    #: Polls in a row that found the server behind an announced version.
    behind: int = 0
    #: Since when push has been healthy and in use for this project.
    healthy_since: float | None = None
    reported_due: float | None = None
    #: The push server said the user's access was revoked: never pushed again in
    #: this controller's life (left out of every subscription), polled at the
    #: fallback interval; the poll's 404 is what the application acts on.
    revoked: bool = False

    def due(self) -> float | None:
        if self.in_flight:
            return None
        times = [t for t in (self.next_poll_at, self.soon_at) if t is not None]
        return min(times) if times else None


def staleness_ms(now: float, ts: float) -> int:
    """Commit-to-applied delay in whole milliseconds, clamped to [0, MAX_STALENESS_MS]."""
    ms = math.floor((now - ts) * 1000 + 0.5)
    return max(0, min(MAX_STALENESS_MS, ms))


class SyncController:
    """Decides every poll, push connection and token fetch of one client.

    ``rand`` returns uniform floats in [0, 1); the draws happen in a fixed order
    (documented in tests/vectors/sync/README.md) so that vectors can pin them.
    """

    def __init__(self, config: Config, rand: Callable[[], float]) -> None:
        self._cfg = config
        self._rand = rand
        self._projects: dict[int, _Project] = {}
        for project in config.projects:
            version = config.versions.get(project)
            self._projects[project] = _Project(
                id=project,
                version=version,
                advice=config.advice,
                needs_snapshot=version is None,
            )
        self._started = False
        self._push = PushState.OFF
        self._conn: int | None = None
        self._conn_seq = 0
        self._connect_at: float | None = None
        self._connect_deadline: float | None = None
        self._drain_at: float | None = None
        self._subscribed_at: float | None = None
        #: A project's advice turned push on while connecting: the subscribe went
        #: without it, so the connection is refreshed once subscribed.
        self._refresh_when_subscribed = False
        self._last_seen = 0.0
        self._heartbeat = config.heartbeat
        self._push_failures = 0
        self._token: str | None = None
        self._token_refresh_at: float | None = None
        self._token_fetching = False
        self._token_failures = 0
        self._reported_connect: float | None = None
        self._reported_status: Status | None = None
        self._telemetry_at: float | None = None
        self._samples: list[StalenessSample] = []
        self._missed = 0
        self._polls = 0
        self._pokes = 0
        self._poll_errors = 0
        self._reported_at = 0.0

    # ----- public surface -------------------------------------------------------

    def feed(self, now: float, event: i.Input) -> list[Action]:
        """Handle one input at time ``now`` and run everything due by then."""
        out: list[Action] = []
        self._handle(now, event, out)
        if self._started:
            self._push_timers(now, out)
            self._update_health(now)
            self._project_timers(now, out)
            self._telemetry_timer(now, out)
            self._report_changes(now, out)
        return out

    def next_deadline(self) -> float | None:
        """When to feed the next tick if nothing else happens; None: nothing scheduled."""
        if not self._started:
            return None
        times = [p.due() for p in self._projects.values()]
        times.append(self._telemetry_at)
        if self._push == PushState.WAITING and not self._token_fetching:
            times.append(self._connect_at)
        if self._push == PushState.CONNECTING:
            times.append(self._connect_deadline)
        if self._push in _SUBSCRIBED:
            times.append(self._overdue_at())
            times.append(self._drain_at)
        if self._push in _OPEN and not self._token_fetching:
            times.append(self._token_refresh_at)
        found = [t for t in times if t is not None]
        return min(found) if found else None

    @property
    def status(self) -> Status | None:
        return self._reported_status

    def version(self, project: int) -> int | None:
        return self._projects[project].version

    def inspect(self) -> dict[str, Any]:
        """Observable state, as the vectors' ``state`` expectations name it."""
        return {
            "status": None if self._reported_status is None else str(self._reported_status),
            "versions": {str(p.id): p.version for p in self._projects.values()},
            "push": self._push,
            "deadline": self.next_deadline(),
        }

    # ----- inputs ---------------------------------------------------------------

    def _handle(self, now: float, event: i.Input, out: list[Action]) -> None:
        match event:
            case i.Start():
                self._start(now)
            case i.Tick():
                pass
            case i.SnapshotLoaded():
                self._snapshot_loaded(now, event)
            case i.PollResult():
                self._poll_result(now, event, out)
            case i.PollFailed():
                self._poll_failed(now, event)
            case i.PokeReceived():
                self._poke(now, event, out)
            case i.PushConnected(conn=conn):
                if conn == self._conn and self._push in _OPEN:
                    self._last_seen = now
            case i.PushSubscribed():
                self._subscribed(now, event, out)
            case i.PushHeartbeat(conn=conn, state=state):
                if conn == self._conn and self._push in _SUBSCRIBED:
                    self._last_seen = now
                    self._push = (
                        PushState.DRAINING if self._drain_at is not None else _SERVER_STATES[state]
                    )
            case i.PushDrain(conn=conn, reconnect_after=delay):
                if conn == self._conn and self._push in _OPEN:
                    self._last_seen = now
                    self._push = PushState.DRAINING
                    self._drain_at = now + max(0.0, delay)
            case i.PushTokenExpiring(conn=conn):
                if (
                    conn == self._conn
                    and self._push in _OPEN
                    and self._token_refresh_at is not None
                ):
                    self._token_refresh_at = min(self._token_refresh_at, now)
            case i.PushRevoked(conn=conn, project=project_id):
                self._revoked(now, conn, project_id)
            case i.PushClosed(conn=conn, code=code):
                if conn == self._conn and self._push in _OPEN:
                    if code in TOKEN_CLOSE_CODES:
                        self._token = None
                        self._token_refresh_at = None
                    self._lose_push(now, out, close=False)
            case i.TokenFetched():
                self._token_fetched(now, event, out)
            case i.TokenFailed():
                self._token_failed(now)

    def _start(self, now: float) -> None:
        if self._started:
            return
        self._started = True
        self._telemetry_at = now + self._cfg.telemetry_interval
        self._reported_at = now
        for project in self._projects.values():
            if project.needs_snapshot:
                project.next_poll_at = now
            else:
                self._schedule_regular(now, project)

    def _snapshot_loaded(self, now: float, event: i.SnapshotLoaded) -> None:
        project = self._projects.get(event.project)
        if project is None or not project.needs_snapshot:
            return
        project.version = event.version
        project.needs_snapshot = False
        project.in_flight = False
        project.failures = 0
        project.behind = 0
        self._schedule_regular(now, project)
        if project.announced > event.version:
            if project.announced > project.announced_at_send:
                project.soon_at = now + self._rand() * self._cfg.poke_delay
            else:
                # The snapshot is read from the database after the announcement:
                # a higher announcement belongs to a history the server no longer has.
                project.announced = event.version

    def _poll_result(self, now: float, event: i.PollResult, out: list[Action]) -> None:
        project = self._projects.get(event.project)
        if project is None or project.needs_snapshot or project.version is None:
            return
        project.in_flight = False
        local = project.version
        fresh = [e for e in event.events if int(e["version"]) > local]
        if self._is_missed_poke(now, project, fresh):
            self._missed += 1
        if event.advice is not None:
            pushed = self._uses_push(project)
            project.advice = event.advice
            if not pushed and self._uses_push(project):
                self._watch_on_open_connection(out)
        if event.reload is not None:
            project.failures = 0
            project.needs_snapshot = True
            self._issue(project)
            out.append(ReloadSnapshot(project.id))
            return
        if not _contiguous(local, fresh) or (event.has_more and not fresh):
            # A gap, or a page promising more without progress: a server bug that
            # must not become a tight loop, so it is treated as a failed poll.
            self._poll_errors += 1
            self._fail(now, project, None)
            return
        project.failures = 0
        if fresh:
            self._apply(now, project, fresh, None, out)
        if event.has_more:
            project.soon_at = now
            return
        self._schedule_regular(now, project)
        if project.announced <= project.version:
            project.behind = 0
        elif project.announced > project.announced_at_send:
            # Announced while the poll was in flight: the answer may predate it.
            project.behind = 0
            project.soon_at = now + self._rand() * self._cfg.poke_delay
        else:
            project.behind += 1
            if project.behind > self._cfg.lag_retries:
                project.announced = project.version
                project.behind = 0
            else:
                delay = self._cfg.lag_retry_delay * 2 ** (project.behind - 1)
                project.soon_at = now + jittered(delay, project.advice.jitter, self._rand())

    def _poll_failed(self, now: float, event: i.PollFailed) -> None:
        project = self._projects.get(event.project)
        if project is None or not project.in_flight:
            return
        project.in_flight = False
        self._poll_errors += 1
        self._fail(now, project, event.retry_after)

    def _poke(self, now: float, event: i.PokeReceived, out: list[Action]) -> None:
        if event.conn is not None and event.conn == self._conn and self._push in _OPEN:
            self._last_seen = now
        project = self._projects.get(event.project)
        if project is None or not self._uses_push(project):
            return
        self._pokes += 1
        if event.events is not None and project.version is not None and not project.needs_snapshot:
            fresh = [e for e in event.events if int(e["version"]) > project.version]
            if fresh and _contiguous(project.version, fresh):
                self._apply(now, project, fresh, Via.FULL_PUSH, out)
        self._announce(now, project, event.version)

    def _revoked(self, now: float, conn: int, project_id: int) -> None:
        if conn != self._conn or self._push not in _OPEN:
            return
        self._last_seen = now
        project = self._projects.get(project_id)
        if project is None or project.revoked:
            return
        project.revoked = True
        if project.version is not None and not project.in_flight and project.failures == 0:
            project.soon_at = now

    def _watch_on_open_connection(self, out: list[Action]) -> None:
        """A project's advice switched push on (kill switch, rollout, override) while
        a connection is open or opening without it: without a refresh it would be
        shown live yet never poked, and polled only at the long interval."""
        if self._conn is None or self._token is None:
            return  # the next connection subscribes to it
        if self._push in (PushState.HEALTHY, PushState.DEGRADED):
            out.append(PushRefresh(self._conn, self._token, self._subscription()))
        elif self._push == PushState.CONNECTING:
            self._refresh_when_subscribed = True

    def _subscribed(self, now: float, event: i.PushSubscribed, out: list[Action]) -> None:
        if event.conn != self._conn or self._push not in _OPEN:
            return
        self._last_seen = now
        if self._subscribed_at is None:
            self._subscribed_at = now
        self._connect_deadline = None
        if event.heartbeat is not None and event.heartbeat > 0:
            self._heartbeat = event.heartbeat
        if self._drain_at is None:
            self._push = _SERVER_STATES[event.state]
        if self._refresh_when_subscribed:
            self._refresh_when_subscribed = False
            self._watch_on_open_connection(out)
        # Config order, not the answer's: the random draws must not depend on how
        # a JSON object's keys happened to be ordered.
        for project in self._projects.values():
            version = event.projects.get(project.id)
            if version is not None and self._uses_push(project):
                self._announce(now, project, version)

    def _token_fetched(self, now: float, event: i.TokenFetched, out: list[Action]) -> None:
        self._token_fetching = False
        self._token_failures = 0
        self._token = event.token
        life = max(0.0, event.expires_at - now)
        self._token_refresh_at = event.expires_at - min(self._cfg.token_refresh_margin, life / 2)
        if self._conn is not None and self._push in (PushState.HEALTHY, PushState.DEGRADED):
            out.append(PushRefresh(self._conn, event.token, self._subscription()))

    def _token_failed(self, now: float) -> None:
        self._token_fetching = False
        if self._push == PushState.WAITING:
            self._push_failures += 1
            self._connect_at = now + self._push_backoff(self._push_failures)
        elif self._push in _OPEN:
            self._token_failures += 1
            self._token_refresh_at = now + self._push_backoff(self._token_failures)

    # ----- timers ---------------------------------------------------------------

    def _push_timers(self, now: float, out: list[Action]) -> None:
        if not self._push_wanted():
            if self._push in _OPEN and self._conn is not None:
                out.append(ClosePush(self._conn))
            self._push = PushState.OFF
            self._conn = None
            self._drain_at = None
            self._subscribed_at = None
            return
        if self._push == PushState.OFF:
            self._push = PushState.WAITING
            self._connect_at = now
        if (
            self._push in _OPEN
            and not self._token_fetching
            and self._token_refresh_at is not None
            and now >= self._token_refresh_at
        ):
            self._token_fetching = True
            out.append(RefreshToken())
        if self._push == PushState.CONNECTING and self._connect_deadline is not None:
            if now >= self._connect_deadline:
                self._lose_push(now, out, close=True)
        elif self._push in _SUBSCRIBED:
            if now >= self._overdue_at():
                self._lose_push(now, out, close=True)
            elif self._drain_at is not None and now >= self._drain_at and self._conn is not None:
                out.append(ClosePush(self._conn))
                self._conn = None
                self._drain_at = None
                self._subscribed_at = None
                self._push = PushState.WAITING
                self._connect_at = now
        if (
            self._push == PushState.WAITING
            and self._connect_at is not None
            and now >= self._connect_at
        ):
            if (
                self._token is not None
                and self._token_refresh_at is not None
                and (now < self._token_refresh_at)
            ):
                self._conn_seq += 1
                self._conn = self._conn_seq
                self._push = PushState.CONNECTING
                self._connect_deadline = now + self._cfg.connect_timeout
                self._subscribed_at = None
                self._last_seen = now
                self._refresh_when_subscribed = False
                out.append(ConnectPush(self._conn, self._token, self._subscription()))
            elif not self._token_fetching:
                self._token_fetching = True
                out.append(RefreshToken())

    def _update_health(self, now: float) -> None:
        for project in self._projects.values():
            if self._healthy(project):
                if project.healthy_since is None:
                    project.healthy_since = now
                    if project.long_at is not None:
                        # Push is back before the brought-forward poll went out:
                        # that poll only stood in for pokes push could not send,
                        # and ``subscribed`` has just announced every version the
                        # server knows to be ahead (those polls sit in soon_at,
                        # untouched here). The originally scheduled time, not a
                        # fresh draw: a push that flaps cannot postpone the long
                        # poll indefinitely, and the clients keep their spread.
                        # long_at is only set while next_poll_at is that brought-
                        # forward poll (_issue, _schedule_regular and _fail clear
                        # it), so a snapshot load, a backoff retry, a lag retry or
                        # a revoked project (never healthy again) is never dropped.
                        project.next_poll_at = project.long_at
                        project.next_long = True
                        project.long_at = None
                continue
            project.healthy_since = None
            if project.next_long and project.next_poll_at is not None:
                # The long interval assumed push would announce changes; it no
                # longer can, so the next poll comes at the short interval at most.
                # Full jitter: every client of a failed push server (or of a kill
                # switch) learns at the same moment; spread over the whole short
                # interval, their first polls arrive at the even rate, not in a
                # burst (later polls keep the phase).
                candidate = now + self._rand() * project.advice.fallback_interval
                project.long_at = project.next_poll_at
                project.next_poll_at = min(project.next_poll_at, candidate)
                project.next_long = False

    def _project_timers(self, now: float, out: list[Action]) -> None:
        polls: dict[int, int] = {}
        for project in self._projects.values():
            due = project.due()
            if due is None or due > now:
                continue
            self._issue(project)
            if project.needs_snapshot or project.version is None:
                out.append(ReloadSnapshot(project.id))
            else:
                polls[project.id] = project.version
                self._polls += 1
        if polls:
            out.append(Poll(polls))

    def _telemetry_timer(self, now: float, out: list[Action]) -> None:
        if self._telemetry_at is not None and now >= self._telemetry_at:
            self._telemetry_at = now + self._cfg.telemetry_interval
            if (
                self._samples
                or self._missed
                or self._poll_errors
                or now - self._reported_at >= self._cfg.telemetry_idle_interval
            ):
                self._reported_at = now
                self._flush_telemetry(out)

    def _report_changes(self, now: float, out: list[Action]) -> None:
        for project in self._projects.values():
            due = project.due()
            if due is not None and due != project.reported_due:
                out.append(PollAt(project.id, due))
            project.reported_due = due
        connect = self._connect_due()
        if connect is not None and connect > now and connect != self._reported_connect:
            out.append(ConnectPushAt(connect))
        self._reported_connect = connect
        status = self._compute_status()
        if status != self._reported_status:
            self._reported_status = status
            out.append(StatusChanged(status))

    # ----- helpers --------------------------------------------------------------

    def _issue(self, project: _Project) -> None:
        project.in_flight = True
        project.next_poll_at = None
        project.next_long = False
        project.long_at = None
        project.soon_at = None
        project.announced_at_send = project.announced

    def _schedule_regular(self, now: float, project: _Project) -> None:
        healthy = self._healthy(project)
        advice = project.advice
        interval = advice.interval if healthy else advice.fallback_interval
        project.next_poll_at = now + jittered(interval, advice.jitter, self._rand())
        project.next_long = healthy
        project.long_at = None
        project.soon_at = None

    def _fail(self, now: float, project: _Project, retry_after: float | None) -> None:
        project.failures += 1
        cfg = self._cfg
        delay = full_jitter(
            project.failures,
            cfg.poll_backoff_base,
            cfg.poll_backoff_cap,
            cfg.poll_backoff_floor,
            self._rand(),
        )
        if retry_after is not None:
            delay = max(delay, min(retry_after, cfg.retry_after_cap))
        project.next_poll_at = now + delay
        project.next_long = False
        project.long_at = None
        project.soon_at = None

    def _announce(self, now: float, project: _Project, version: int) -> None:
        project.announced = max(project.announced, version)
        if (
            project.version is None
            or project.needs_snapshot
            or project.in_flight
            or project.failures > 0
        ):
            return
        if project.announced <= project.version:
            # Nothing to fetch (a full push may have delivered what a poll was for).
            project.soon_at = None
        elif project.soon_at is None:
            project.soon_at = now + self._rand() * self._cfg.poke_delay

    def _apply(
        self,
        now: float,
        project: _Project,
        events: list[Event],
        via: Via | None,
        out: list[Action],
    ) -> None:
        out.append(ApplyEvents(project.id, tuple(events)))
        for e in events:
            version = int(e["version"])
            how = via or (Via.POKE if version <= project.announced else Via.POLL)
            self._sample(StalenessSample(project.id, staleness_ms(now, float(e["ts"])), how), out)
        project.version = int(events[-1]["version"])

    def _is_missed_poke(self, now: float, project: _Project, fresh: list[Event]) -> bool:
        since = project.healthy_since
        if since is None or not self._healthy(project):
            return False
        grace = self._cfg.miss_grace
        return any(
            int(e["version"]) > project.announced and since + grace <= float(e["ts"]) <= now - grace
            for e in fresh
        )

    def _sample(self, sample: StalenessSample, out: list[Action]) -> None:
        self._samples.append(sample)
        if len(self._samples) >= self._cfg.telemetry_max_samples:
            self._flush_telemetry(out)

    def _flush_telemetry(self, out: list[Action]) -> None:
        report = TelemetryReport(
            samples=tuple(self._samples),
            missed_pokes=self._missed,
            polls=self._polls,
            pokes=self._pokes,
            poll_errors=self._poll_errors,
        )
        if report.is_empty():
            return
        out.append(ReportTelemetry(report))
        self._samples = []
        self._missed = self._polls = self._pokes = self._poll_errors = 0

    def _lose_push(self, now: float, out: list[Action], *, close: bool) -> None:
        if close and self._conn is not None:
            out.append(ClosePush(self._conn))
        if (
            self._subscribed_at is not None
            and now - self._subscribed_at >= self._cfg.push_stable_after
        ):
            self._push_failures = 0
        if self._drain_at is not None:
            self._connect_at = max(now, self._drain_at)
        else:
            self._push_failures += 1
            self._connect_at = now + self._push_backoff(self._push_failures)
        self._conn = None
        self._drain_at = None
        self._subscribed_at = None
        self._connect_deadline = None
        self._push = PushState.WAITING

    def _push_backoff(self, attempt: int) -> float:
        cfg = self._cfg
        return full_jitter(
            attempt,
            cfg.push_backoff_base,
            cfg.push_backoff_cap,
            cfg.push_backoff_floor,
            self._rand(),
        )

    def _overdue_at(self) -> float:
        return self._last_seen + self._heartbeat * self._cfg.heartbeat_timeout_factor

    def _connect_due(self) -> float | None:
        if self._push == PushState.WAITING:
            return self._connect_at
        if self._push == PushState.DRAINING:
            return self._drain_at
        return None

    def _subscription(self) -> dict[int, int]:
        return {p.id: p.version or 0 for p in self._projects.values() if self._uses_push(p)}

    def _uses_push(self, project: _Project) -> bool:
        return self._cfg.push and project.advice.push and not project.revoked

    def _push_wanted(self) -> bool:
        return any(self._uses_push(p) for p in self._projects.values())

    def _healthy(self, project: _Project) -> bool:
        return self._push == PushState.HEALTHY and self._uses_push(project)

    def _compute_status(self) -> Status:
        worst = Status.LIVE
        for project in self._projects.values():
            if project.failures > 0:
                status = Status.OFFLINE
            elif not self._uses_push(project):
                status = Status.PUSH_OFF
            elif self._push != PushState.HEALTHY:
                status = Status.PUSH_UNAVAILABLE
            else:
                status = Status.LIVE
            if _STATUS_RANK.index(status) > _STATUS_RANK.index(worst):
                worst = status
        return worst


def _contiguous(local: int, events: list[Event]) -> bool:
    """True when ``events`` follow ``local`` one version at a time (or are empty)."""
    expected = local + 1
    for e in events:
        if int(e["version"]) != expected:
            return False
        expected += 1
    return True
