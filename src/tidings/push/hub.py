"""The push hub: who watches which project, what each connection still needs, and when.

Sans-I/O: it opens no socket and reads no clock. Transports subclass :class:`Conn`
(they frame and write bytes); the server feeds the hub broker pokes, version reads
and ``tick(now)``, and carries out its broker requests (:class:`BrokerPort`).
Tests drive it with plain calls and a fake clock (tests/push/test_hub.py).
"""

from __future__ import annotations

import heapq
import itertools
import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, ClassVar, Final, Protocol

from tidings.protocol import push
from tidings.protocol.errors import CloseCode, Forbidden, Unavailable
from tidings.protocol.poke import Poke, valid_version
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import LEEWAY_SECONDS, KeyRing, PushClaims, verify_push_token
from tidings.push.fanout import Fanout
from tidings.push.fanout import fanout as default_fanout
from tidings.push.logs import emit
from tidings.push.metrics import Counters
from tidings.push.settings import PushSettings

log = logging.getLogger("tidings.push")

#: Key under which a paused connection keeps its latest state message (heartbeat,
#: drain, token warning) among its pending pokes; project ids are positive, and a
#: pending ``revoked`` message for project P is kept under -P.
STATE_KEY = 0

#: Heartbeats go out in this many groups, one every ``interval / HEARTBEAT_GROUPS``
#: seconds, each connection in one group: every connection still gets one per
#: interval, and the server never writes to all of them in one go (a round to
#: 10,000 connections takes one core ~80 ms, during which pokes wait).
HEARTBEAT_GROUPS = 50
#: A group takes new connections up to twice its even share, and at least this many.
MIN_GROUP_CAP = 64

#: Revocations a hub remembers at most. Past it the oldest is forgotten (counted
#: in ``revocations_evicted``): a token issued before a forgotten revocation may
#: subscribe to that project again until the token expires, as without the
#: revocation message. An entry costs about 200 bytes, so the bound is ~10 MB.
MAX_REVOCATIONS = 50_000


class Revocations:
    """Recent ``(user, project)`` revocations: bounded, and each kept only while a
    token issued before it could still be valid.

    A token issued at ``iat`` is refused for a revoked project when ``iat <= at +
    LEEWAY_SECONDS``: the app's processes' clocks may differ by the leeway, and a
    token signed from a read that just preceded the removal's commit must not
    outlive it. Such a token is accepted until ``iat + lifetime + leeway``, so an
    entry is kept for ``max_token_lifetime + 2 * LEEWAY_SECONDS`` after ``at``.
    Times are wall-clock seconds (``iat`` and ``at`` are the app's).
    """

    __slots__ = ("_entries", "limit", "retention")

    def __init__(self, max_token_lifetime: float, limit: int = MAX_REVOCATIONS) -> None:
        self.retention = max_token_lifetime + 2 * LEEWAY_SECONDS
        self.limit = limit
        #: ``(user, project) -> at``, oldest arrival first.
        self._entries: OrderedDict[tuple[int, int], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, user: int, project: int, at: float, wall: float) -> int:
        """Remember a revocation; return how many live entries the bound evicted.

        An ``at`` later than ``wall`` plus the leeway is taken as that: no real
        commit is in the future, and a forged one must not hold for ever."""
        at = min(at, wall + LEEWAY_SECONDS)
        entries = self._entries
        # Arrival order is close to ``at`` order: expired entries collect at the front.
        while entries:
            key, first = next(iter(entries.items()))
            if first + self.retention > wall:
                break
            del entries[key]
        if at + self.retention <= wall:
            return 0
        key = (user, project)
        entries[key] = max(at, entries.get(key, at))
        entries.move_to_end(key)
        evicted = 0
        while len(entries) > self.limit:
            entries.popitem(last=False)
            evicted += 1
        return evicted

    def revokes(self, user: int, project: int, issued_at: float, wall: float) -> bool:
        """Whether a token of ``user`` issued at ``issued_at`` lost ``project``."""
        at = self._entries.get((user, project))
        return at is not None and at + self.retention > wall and issued_at <= at + LEEWAY_SECONDS


_SUBSCRIBED: Final = push.ServerType.SUBSCRIBED.value


class EncodedMessage:
    """One server->client JSON message, encoded once and shared by every connection.

    Each transport frames it once too, caching the frame in ``frames`` under its
    own key, so a poke to 10,000 WebSockets is one encode, one framing and
    10,000 writes of the same bytes.
    """

    __slots__ = ("data", "frames", "kind")

    def __init__(self, data: bytes, kind: str | None = None) -> None:
        self.data = data
        self.frames: dict[object, bytes] = {}
        #: The message's ``type``, when the sender says it: a transport that names
        #: events by it (Socket.IO) then need not decode ``data`` to find it.
        self.kind = kind


#: Attribute slots of :class:`Conn`. ``Conn`` itself declares no slots so that a
#: transport can inherit from both ``Conn`` and its ``asyncio.Protocol`` base
#: and still be one compact object: concrete classes declare
#: ``__slots__ = CONN_SLOTS + (their own,)``.
CONN_SLOTS = (
    "user",
    "versions",
    "pending",
    "paused_since",
    "expires_at",
    "token_exp",
    "token_iat",
    "warned",
    "drain_at",
    "deadline",
    "attached",
    "wfd",
    "beat_group",
)


class Conn:
    """A client connection as the hub sees it; transports implement write and close.

    ``versions`` maps each watched project to the newest version the client has
    (said it holds, or been sent/queued); ``pending`` holds, while the transport
    is paused, only the latest message per project (coalescing).
    """

    # The checker needs the names to accept the assignments below; at run time the
    # concrete transport class owns them (see CONN_SLOTS).
    if TYPE_CHECKING:
        __slots__ = CONN_SLOTS
    else:
        __slots__ = ()

    #: Transport name, for the connections-by-transport metric.
    kind: ClassVar[str] = "conn"
    #: The ``EncodedMessage.frames`` key under which ``write`` caches the exact bytes
    #: it puts on the socket, for a type whose ``wfd`` may be set: the native
    #: fan-out then sends those bytes itself (tidings.push.fanout).
    direct_frame_key: ClassVar[str | None] = None

    user: int | None
    versions: dict[int, int]
    pending: dict[int, EncodedMessage] | None
    paused_since: float | None
    expires_at: float
    token_exp: float
    token_iat: float
    warned: bool
    drain_at: float | None
    deadline: float | None
    attached: bool
    #: The socket's fd when the fan-out may ``send()`` this connection's frame
    #: itself (a plain TCP socket: ``/ws`` after attach, a Socket.IO session
    #: while a WebSocket is its transport), else -1.
    wfd: int
    #: Which heartbeat group the connection is in while attached, else -1.
    beat_group: int

    def init_conn(self) -> None:
        self.user = None
        self.versions = {}
        self.pending = None
        self.paused_since = None
        self.expires_at = 0.0
        self.token_exp = 0.0
        self.token_iat = 0.0
        self.warned = False
        self.drain_at = None
        self.deadline = None
        self.attached = False
        self.wfd = -1
        self.beat_group = -1

    def write(self, msg: EncodedMessage) -> None:
        """Frame ``msg`` (once per message, see :class:`EncodedMessage`) and write it now."""
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        """Close with a close code and reason; the hub has already forgotten this connection."""
        raise NotImplementedError


def _since(conn: Conn, now: float) -> float:
    return now if conn.paused_since is None else conn.paused_since


class BrokerPort(Protocol):
    """What the hub asks of the broker side; the server carries it out asynchronously."""

    def subscribe(self, project: int) -> None: ...

    def unsubscribe(self, project: int) -> None: ...

    def check_versions(self, projects: Iterable[int]) -> None:
        """Read these projects' version keys soon and call :meth:`Hub.on_versions`."""


class Hub:
    def __init__(
        self,
        settings: PushSettings,
        keys: KeyRing,
        broker: BrokerPort,
        *,
        now: float,
        counters: Counters | None = None,
        state: ServerState = ServerState.OK,
        fanout: Fanout | None = None,
        heartbeat_phase: float = 1.0,
    ) -> None:
        """``heartbeat_phase`` (0..1]: the first group's heartbeat comes after that
        share of a group's slot (``interval / HEARTBEAT_GROUPS``), so servers started
        together do not write their heartbeats in step."""
        self.settings = settings
        #: The fan-out write loop (default: native when built, see tidings.push.fanout).
        self._fanout_loop: Fanout = fanout if fanout is not None else default_fanout
        self.counters = counters if counters is not None else Counters()
        self._keys = keys
        self._broker = broker
        self._state = state
        # Each project's watchers in the order they subscribed (a dict as an
        # ordered set): a poke is written in that order, first come first served,
        # the order a plain epoll server writes in (docs/PERFORMANCE.md).
        self._subs: dict[int, dict[Conn, None]] = {}
        #: Newest version seen on the broker per watched project, and its message.
        self._known: dict[int, int] = {}
        self._last: dict[int, EncodedMessage] = {}
        #: Projects whose version key read below ``_known`` once, and that version.
        self._above_key: dict[int, int] = {}
        self._conns: set[Conn] = set()
        self._stalled: set[Conn] = set()
        self._timers: list[tuple[float, int, Conn]] = []
        self._seq = itertools.count()
        #: Connections by heartbeat group; the next group due, and when.
        self._beat_groups: list[set[Conn]] = [set() for _ in range(HEARTBEAT_GROUPS)]
        self._beat_next_group = 0
        #: Where ``_group_for_new`` stopped: (first group tried, cap, group, steps back).
        self._fill: tuple[int, int, int, int] | None = None
        self._beat_slot = settings.heartbeat_interval / HEARTBEAT_GROUPS
        self._next_heartbeat = now + heartbeat_phase * self._beat_slot
        #: The heartbeat message of the state it says, framed once for all groups.
        self._beat_msg: tuple[ServerState, EncodedMessage] | None = None
        self.connections: dict[str, int] = {}
        self.revocations = Revocations(settings.max_token_lifetime)

    # -- state -------------------------------------------------------------

    @property
    def state(self) -> ServerState:
        return self._state

    @property
    def draining(self) -> bool:
        return self._state is ServerState.DRAINING

    def set_state(self, state: ServerState, now: float) -> None:
        """Link health changed: tell every client at once. Draining is final."""
        if self._state is ServerState.DRAINING or state is self._state:
            return
        self._state = state
        self.counters.heartbeats_sent += 1
        self._send_beat(self._conns)

    def _beat(self) -> EncodedMessage:
        """The heartbeat saying the current state (drain changes it too)."""
        cached = self._beat_msg
        if cached is None or cached[0] is not self._state:
            cached = self._beat_msg = (self._state, EncodedMessage(push.heartbeat(self._state)))
        return cached[1]

    def subscribed_projects(self) -> int:
        return len(self._subs)

    def watchers(self, project: int) -> int:
        return len(self._subs.get(project, ()))

    def known_version(self, project: int) -> int | None:
        return self._known.get(project)

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Conn]:
        """A snapshot of the attached connections (for operations and tests)."""
        return iter(list(self._conns))

    # -- connections -------------------------------------------------------

    def attach(self, conn: Conn, now: float) -> None:
        """A transport connection opened; it gets heartbeats and, later, a drain."""
        if self.draining:
            raise Unavailable("server is draining")
        conn.init_conn()
        conn.attached = True
        self._conns.add(conn)
        group = conn.beat_group = self._group_for_new()
        self._beat_groups[group].add(conn)
        self.connections[conn.kind] = self.connections.get(conn.kind, 0) + 1

    def detach(self, conn: Conn) -> None:
        """Forget a connection (closed by either side); idempotent."""
        if not conn.attached:
            return
        conn.attached = False
        for project in conn.versions:
            self._unwatch_project(conn, project)
        conn.versions = {}
        conn.pending = None
        conn.deadline = None
        self._conns.discard(conn)
        self._stalled.discard(conn)
        if conn.beat_group >= 0:
            self._beat_groups[conn.beat_group].discard(conn)
            conn.beat_group = -1
            self._fill = None  # a group has room again
        self.connections[conn.kind] -= 1

    def authorize(self, token: str, projects: Iterable[int], wall: float) -> PushClaims:
        """Verify the token and that it names every project asked for (BadToken, Forbidden)."""
        claims = verify_push_token(self._keys, token, now=wall)
        denied = sorted(p for p in projects if p not in claims.projects)
        if denied:
            raise Forbidden("the token does not name these projects", projects=denied)
        return claims

    def subscribe(
        self,
        conn: Conn,
        claims: PushClaims,
        projects: Mapping[int, int],
        now: float,
        wall: float,
        *,
        refresh: bool = False,
    ) -> None:
        """Start (or, on ``refresh``, extend) watching ``projects`` from the versions held.

        ``subscribe`` replaces the watched set; ``refresh`` replaces the token,
        keeps the projects it still names and adds ``projects``. Either way the
        client is answered with ``subscribed`` and then poked at once for every
        project known to be newer than what it holds (recovery without history).
        A project revoked for this user after the token was issued is not watched:
        the client is told ``revoked`` for it instead.
        """
        if not conn.attached:
            return
        if self.draining:
            raise Unavailable("server is draining")
        if conn.user is not None and conn.user != claims.user:
            raise Forbidden("the token is for another user")
        gone = self._revoked(claims, projects, conn.versions if refresh else (), wall)
        if refresh:
            dropped = [p for p in conn.versions if p not in claims.projects or p in gone]
        else:
            dropped = [p for p in conn.versions if p not in projects or p in gone]
        for project in dropped:
            del conn.versions[project]
            self._unwatch_project(conn, project)
        for project, held in projects.items():
            if project in gone:
                continue
            if project not in conn.versions:
                subs = self._subs.get(project)
                if subs is None:
                    subs = self._subs[project] = {}
                    self._broker.subscribe(project)
                subs[conn] = None
            conn.versions[project] = held
        conn.user = claims.user
        conn.token_exp = claims.expires_at
        conn.token_iat = claims.issued_at
        conn.expires_at = now + (claims.expires_at - wall)
        conn.warned = False
        answer = {p: max(v, self._known.get(p, -1)) for p, v in conn.versions.items()}
        hello = push.subscribed(answer, self._state, self.settings.heartbeat_interval)
        self._send(conn, STATE_KEY, EncodedMessage(hello, _SUBSCRIBED))
        for project in sorted(gone):
            self._send(conn, -project, EncodedMessage(push.revoked(project)))
        self.counters.revoked_subscriptions += len(gone)
        recovered = 0
        for project, held in projects.items():
            if project in gone:
                continue
            known = self._known.get(project)
            if known is not None and known > held:
                conn.versions[project] = known
                self._send(conn, project, self._last[project])
                recovered += 1
        self.counters.recovery_pokes += recovered
        self.counters.pokes_sent += recovered
        watched = [p for p in projects if p not in gone] if gone else projects
        if watched:
            self._broker.check_versions(watched)
        self._schedule(conn)

    def _revoked(
        self, claims: PushClaims, asked: Iterable[int], kept: Iterable[int], wall: float
    ) -> set[int]:
        """The projects among ``asked`` and ``kept`` this token may no longer watch."""
        revocations = self.revocations
        if not len(revocations):
            return set()
        user, issued = claims.user, claims.issued_at
        return {
            p for p in itertools.chain(asked, kept) if revocations.revokes(user, p, issued, wall)
        }

    def on_revoke(self, user: int, project: int, at: float, wall: float) -> None:
        """``user`` lost access to ``project`` at ``at``: their connections stop
        watching it now (each is told ``revoked``), and tokens issued before are
        refused for it from now on (:class:`Revocations`)."""
        self.counters.revocations_received += 1
        self.counters.revocations_evicted += self.revocations.add(user, project, at, wall)
        subs = self._subs.get(project)
        if not subs:
            return
        cut = [c for c in subs if c.user == user and c.token_iat <= at + LEEWAY_SECONDS]
        if not cut:
            return
        msg = EncodedMessage(push.revoked(project))
        for conn in cut:
            del conn.versions[project]
            self._unwatch_project(conn, project)
            self._send(conn, -project, msg)
        self.counters.revoked_subscriptions += len(cut)

    def _unwatch_project(self, conn: Conn, project: int) -> None:
        subs = self._subs.get(project)
        if subs is None:
            return
        subs.pop(conn, None)
        if conn.pending is not None:
            conn.pending.pop(project, None)
        if not subs:
            del self._subs[project]
            self._known.pop(project, None)
            self._last.pop(project, None)
            self._above_key.pop(project, None)
            self._broker.unsubscribe(project)

    # -- the broker side ---------------------------------------------------

    def on_poke(self, poke: Poke) -> None:
        """A poke from the broker: forward it, once, to every watcher that lacks it."""
        self.counters.pokes_received += 1
        project, version = poke.project, poke.version
        if project not in self._subs:
            return
        if not valid_version(version):
            self._invalid(project, "poke version out of range")
            return
        if poke.events_refused is not None:
            self._invalid(project, f"events dropped: {poke.events_refused}")
        if version <= self._known.get(project, -1):
            self.counters.pokes_stale += 1
            return
        if poke.events is not None and not self.settings.forward_events:
            poke = Poke(project, version, poke.ts)
        msg = EncodedMessage(push.poke(poke))
        self._known[project] = version
        self._last[project] = msg
        self.counters.pokes_sent += self._fanout(project, version, msg)

    def on_versions(self, versions: Mapping[int, int], wall: float) -> None:
        """Version keys read back: poke every watcher behind them.

        The broker poke for such a version was missed (link down, deaf, or the
        subscribe raced a publish), so the poke is made here, without events
        and with ``ts`` = ``wall``, the time the version was learned.
        """
        for project, version in versions.items():
            if project not in self._subs:
                continue
            if not valid_version(version):
                # One bad key must not stop the others, nor the reader calling us.
                self._invalid(project, "version key out of range")
                continue
            known = self._known.get(project, -1)
            if version < known:
                self._behind_key(project, known, version, wall)
                continue
            self._above_key.pop(project, None)
            if version == known:
                continue
            msg = EncodedMessage(push.poke(Poke(project, version, wall)))
            self._known[project] = version
            self._last[project] = msg
            sent = self._fanout(project, version, msg)
            self.counters.recovery_pokes += sent
            self.counters.pokes_sent += sent

    def _behind_key(self, project: int, known: int, key: int, wall: float) -> None:
        """The key is below the version last poked. A publisher sets the key before
        it publishes, so once is a read that raced a poke; twice for the same
        version, that poke was never a real commit (a forged one, or one whose key
        a failover lost). Its version would make every real poke stale: believe
        the key again, and poke at the key's version the watchers that poke
        reached (the key's own poke was dropped as stale)."""
        if self._above_key.get(project) != known:
            self._above_key[project] = known
            return
        del self._above_key[project]
        self._invalid(project, f"poked version {known} never reached the version key ({key})")
        for conn in self._subs[project]:
            if conn.versions[project] > key:
                conn.versions[project] = key - 1
        msg = EncodedMessage(push.poke(Poke(project, key, wall)))
        self._known[project] = key
        self._last[project] = msg
        sent = self._fanout(project, key, msg)
        self.counters.recovery_pokes += sent
        self.counters.pokes_sent += sent

    def _invalid(self, project: int, detail: str) -> None:
        """Refuse what the broker said (counted; logged at most every few seconds)."""
        self.counters.broker_invalid += 1
        emit(log, logging.WARNING, "broker_invalid", project=project, detail=detail)

    def recheck_all(self) -> None:
        """After the link was down or deaf: compare every watched project with its key."""
        if self._subs:
            self._broker.check_versions(list(self._subs))

    def _fanout(self, project: int, version: int, msg: EncodedMessage) -> int:
        # The per-poke hot path, one dict lookup and one write per connection:
        # in C when the extension is built (tidings.push.fanout, same contract).
        return self._fanout_loop(self._subs[project], project, version, msg, self._queue)

    # -- flow control ------------------------------------------------------

    def _send(self, conn: Conn, key: int, msg: EncodedMessage) -> None:
        if conn.paused_since is None:
            conn.write(msg)
        else:
            self._queue(conn, key, msg)

    def _queue(self, conn: Conn, key: int, msg: EncodedMessage) -> None:
        pending = conn.pending
        if pending is None:
            conn.pending = {key: msg}
            return
        if key in pending and key > STATE_KEY:
            self.counters.pokes_coalesced += 1
        pending[key] = msg

    def paused(self, conn: Conn, now: float) -> None:
        """The transport's send buffer passed ``send_buffer_bytes``: queue, latest only."""
        if conn.attached and conn.paused_since is None:
            conn.paused_since = now
            self._stalled.add(conn)

    def resumed(self, conn: Conn) -> None:
        """The send buffer drained: write what is pending (the latest per project)."""
        if not conn.attached or conn.paused_since is None:
            return
        conn.paused_since = None
        self._stalled.discard(conn)
        pending, conn.pending = conn.pending, None
        if not pending:
            return
        for key, msg in pending.items():
            if conn.paused_since is not None or not conn.attached:
                # Paused again mid-flush: keep the rest for the next resume.
                if conn.attached:
                    self._queue(conn, key, msg)
                continue
            conn.write(msg)
            if key > STATE_KEY:
                self.counters.pokes_sent += 1

    # -- time --------------------------------------------------------------

    def tick(self, now: float) -> None:
        """Heartbeats, token warnings and expiries, drain closes, slow consumers."""
        self._heartbeats(now)
        timers = self._timers
        while timers and timers[0][0] <= now:
            when, _, conn = heapq.heappop(timers)
            if conn.attached and conn.deadline == when:
                conn.deadline = None
                self._due(conn, now)
        if len(timers) > 2 * len(self._conns) + 64:
            # Entries of closed or rescheduled connections: drop them in one pass.
            self._timers = [t for t in timers if t[2].attached and t[2].deadline == t[0]]
            heapq.heapify(self._timers)
        limit = self.settings.slow_consumer_timeout
        for conn in [c for c in self._stalled if now - _since(c, now) >= limit]:
            self.counters.slow_closes += 1
            self.counters.pokes_dropped += sum(1 for k in conn.pending or () if k > STATE_KEY)
            self._close(conn, CloseCode.SLOW_CONSUMER, f"send buffer full for {limit:g} s")

    def _group_for_new(self) -> int:
        """The group served last (its next heartbeat is about an interval away, so a
        new connection's first comes about an interval after its ``subscribed``),
        or, if that one is full, the one served before it, and so on: a burst of
        connections spreads over several groups instead of making one heavy one."""
        groups = self._beat_groups
        cap = max(MIN_GROUP_CAP, 2 * len(self._conns) // HEARTBEAT_GROUPS)
        start = (self._beat_next_group - 1) % HEARTBEAT_GROUPS
        group, steps = start, 0
        fill = self._fill
        if fill is not None and fill[0] == start and fill[1] == cap:
            # The groups between ``start`` and the last pick were full then, and
            # still are (same cap, nobody left): resume there, not at ``start``.
            group, steps = fill[2], fill[3]
        while steps < HEARTBEAT_GROUPS - 1 and len(groups[group]) >= cap:
            group = (group - 1) % HEARTBEAT_GROUPS
            steps += 1
        self._fill = (start, cap, group, steps)
        return group

    def _heartbeats(self, now: float) -> None:
        """Each group whose slot has come gets the heartbeat; after a stall of more
        than an interval, one round and the schedule starts again from now."""
        sent = 0
        while now >= self._next_heartbeat:
            if sent == HEARTBEAT_GROUPS:
                self._next_heartbeat = now + self._beat_slot
                break
            group = self._beat_next_group
            self._beat_next_group = (group + 1) % HEARTBEAT_GROUPS
            self._next_heartbeat += self._beat_slot
            sent += 1
            if group == 0:
                self.counters.heartbeats_sent += 1
            if self._beat_groups[group]:
                self._send_beat(self._beat_groups[group])

    def _send_beat(self, conns: Iterable[Conn]) -> None:
        msg = self._beat()
        for conn in list(conns):
            if conn.attached:  # a write may have closed an earlier one
                self._send(conn, STATE_KEY, msg)

    def _due(self, conn: Conn, now: float) -> None:
        if conn.drain_at is not None and conn.drain_at <= now:
            self._close(conn, CloseCode.GOING_AWAY, "server draining: reconnect")
            return
        if conn.user is not None:
            if conn.expires_at + LEEWAY_SECONDS <= now:
                self.counters.token_expiries += 1
                self._close(conn, CloseCode.UNAUTHORIZED, "token expired")
                return
            if not conn.warned and conn.expires_at - self.settings.token_warning <= now:
                conn.warned = True
                self._send(conn, STATE_KEY, EncodedMessage(push.token_expiring(conn.token_exp)))
        self._schedule(conn)

    def _schedule(self, conn: Conn) -> None:
        """Keep one live timer per connection, at its next deadline."""
        deadline = conn.drain_at
        if conn.user is not None:
            if conn.warned:
                at = conn.expires_at + LEEWAY_SECONDS
            else:
                at = conn.expires_at - self.settings.token_warning
            deadline = at if deadline is None else min(deadline, at)
        if deadline is None or deadline == conn.deadline:
            return
        conn.deadline = deadline
        heapq.heappush(self._timers, (deadline, next(self._seq), conn))

    def _close(self, conn: Conn, code: int, reason: str) -> None:
        self.detach(conn)
        conn.close(code, reason)

    # -- draining ----------------------------------------------------------

    def drain(self, now: float, window: float, rand: Callable[[], float]) -> None:
        """Tell every client to reconnect after a delay uniform in [0, window), and
        close each connection when its delay ends, so reconnects spread evenly."""
        self._state = ServerState.DRAINING
        for conn in list(self._conns):
            delay = window * rand()
            conn.drain_at = now + delay
            self._send(conn, STATE_KEY, EncodedMessage(push.drain(delay)))
            self._schedule(conn)

    def close_all(self, code: int, reason: str) -> None:
        for conn in list(self._conns):
            self._close(conn, code, reason)
