"""One simulated fleet: clients, an app, Redis, push servers and a load balancer, on one clock.

``World`` composes the parts and carries out the controllers' actions; the
scenarios (scenarios.py) script what happens to the servers. In sampled mode
(``SimConfig.sample`` below ``clients``) only ``sample`` real controllers run and
each stands for ``clients / sample`` clients: see docs/SIMULATION.md for the
error this brings.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum

from tidings.client import actions as a
from tidings.client import inputs as i
from tidings.client.controller import Config
from tidings.protocol.advice import Advice
from tidings.protocol.poke import Poke
from tidings.protocol.push import ServerState
from tidings.protocol.telemetry import encode_report
from tidings.protocol.tokens import KeyRing
from tidings.push.settings import PushSettings
from tidings.sim.app import AppModel, SimApp
from tidings.sim.broker import SimBroker
from tidings.sim.clients import SimClient
from tidings.sim.clock import EPOCH, EventQueue
from tidings.sim.fleet import ServerModel, SimConn, SimPushServer
from tidings.sim.metrics import Recorder
from tidings.sim.network import Network, NetworkModel

KEYS = KeyRing({"sim": b"s" * 32})

#: The app's default advice (docs/PROTOCOL.md 1.2).
DEFAULT_ADVICE = Advice(push=True, interval=60.0, fallback_interval=5.0, jitter=0.2)


class Mode(StrEnum):
    POLL = "poll"  # push switched off by the advice: every client polls at the short interval
    POKE = "poke"  # pokes, clients poll for the events
    FULL = "full"  # pokes carry the events
    POKE_PUSH_KILLED = "poke_push_killed"  # as poke; every push server down for the middle third


@dataclass(frozen=True, slots=True)
class SimConfig:
    clients: int = 10_000
    projects: int = 1_000
    servers: int = 4
    #: Real controllers; None or >= clients: all of them (no sampling).
    sample: int | None = None
    mode: Mode = Mode.POKE
    #: Changes per second over all projects (Poisson, projects picked uniformly).
    edits_per_s: float = 5.0
    #: The last this many projects are never edited: their clients give the idle cost.
    idle_projects: int = 0
    #: Edits evenly spaced (1 / edits_per_s apart) instead of a Poisson stream.
    regular_edits: bool = False
    #: Clients start uniformly over [0, ramp] s (a page load each, snapshot in hand).
    ramp: float = 30.0
    #: Measuring starts this long after the ramp (tokens fetched, connections up).
    settle: float = 30.0
    #: Seconds measured.
    duration: float = 120.0
    #: After the measured window: no more edits, run this long (everything converges).
    tail: float = 30.0
    advice: Advice = field(default_factory=lambda: DEFAULT_ADVICE)
    #: The clients' poke delay (None: the controller's default), to match a measured run.
    poke_delay: float | None = None
    network: NetworkModel = field(default_factory=NetworkModel)
    app: AppModel = field(default_factory=AppModel)
    server: ServerModel = field(default_factory=ServerModel)
    push: PushSettings = field(default_factory=PushSettings)
    seed: int = 1

    @property
    def real_clients(self) -> int:
        if self.sample is None or self.sample >= self.clients:
            return self.clients
        return self.sample

    @property
    def weight(self) -> float:
        return self.clients / self.real_clients

    @property
    def measure_from(self) -> float:
        return EPOCH + self.ramp + self.settle

    @property
    def measure_to(self) -> float:
        return self.measure_from + self.duration

    @property
    def end(self) -> float:
        return self.measure_to + self.tail

    def with_(self, **changes: object) -> SimConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


class World:
    def __init__(self, cfg: SimConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        # The edits have their own stream: runs that differ only in their clients
        # (a mode, a sample size) see the very same changes at the same times.
        self._edit_rng = random.Random(cfg.seed + 7_919)
        self.queue = EventQueue(EPOCH)
        self.recorder = Recorder(EPOCH, cfg.measure_from, cfg.measure_to, random.Random(cfg.seed))
        self.network = Network(cfg.network, self.rng)
        self.weight = cfg.weight
        advice = cfg.advice if cfg.mode is not Mode.POLL else replace(cfg.advice, push=False)
        self.app = SimApp(cfg.projects, advice, KEYS, cfg.app, full_push=cfg.mode is Mode.FULL)
        self.broker = SimBroker(
            self.queue,
            self.recorder,
            self.app.versions.__getitem__,
            latency=cfg.network.internal,
            weight=self.weight,
        )
        push = cfg.push.with_(forward_events=cfg.mode is Mode.FULL)
        self.push_settings = push
        self.servers: list[SimPushServer] = []
        self._generation = 0
        for slot in range(cfg.servers):
            self.servers.append(self.new_server(slot))
        if cfg.mode is Mode.POKE_PUSH_KILLED:
            # As bench/freshness.py does it: every push server killed (-9) a third
            # of the way into the measured window, started again at two thirds.
            third = cfg.duration / 3
            self.queue.at(cfg.measure_from + third, self._kill_all)
            self.queue.at(cfg.measure_from + 2 * third, self._restart_all)
        #: Clients per UI status (docs/PROTOCOL.md 5.6), and each client's latest.
        self.statuses: dict[str, float] = {}
        self._last_status: dict[int, str] = {}
        self.clients: list[SimClient] = []
        #: Projects 1..edited get the edits; the rest stay idle.
        self.edited = max(1, cfg.projects - cfg.idle_projects)
        for n in range(cfg.real_clients):
            project = self.rng.randrange(cfg.projects) + 1
            config = Config(
                projects=(project,),
                versions={project: self.app.versions[project]},
                advice=advice,
            )
            if cfg.poke_delay is not None:
                config = replace(config, poke_delay=cfg.poke_delay)
            client = SimClient(self, n + 1, project, config, idle=project > self.edited)
            self.clients.append(client)
            self.queue.at(EPOCH + self.rng.random() * cfg.ramp, _start, client)
        if cfg.edits_per_s > 0:
            # Edits start with the measured window: before it they would only cost time.
            self.queue.at(cfg.measure_from + self._next_edit(), self._edit)
        self.queue.at(EPOCH + 0.5, self._sample)

    # -- servers -----------------------------------------------------------------

    def new_server(self, slot: int) -> SimPushServer:
        self._generation += 1
        return SimPushServer(
            f"push-{slot}.{self._generation}",
            self._generation,
            self.queue,
            self.network,
            self.broker,
            self.recorder,
            self.push_settings,
            KEYS,
            self.cfg.server,
            self.rng,
            weight=self.weight,
            push_off=not self.app.advice.push,
        )

    def _kill_all(self, _: object) -> None:
        for server in self.servers:
            server.crash(reset=True)

    def _restart_all(self, _: object) -> None:
        self.servers = [self.new_server(slot) for slot in range(len(self.servers))]

    def _balance(self) -> SimPushServer | None:
        """The load balancer: a random server among those accepting connections."""
        ready = [s for s in self.servers if s.accepts()]
        return self.rng.choice(ready) if ready else None

    # -- the app's side ----------------------------------------------------------

    def _edit(self, _: object) -> None:
        now = self.queue.now
        if now >= self.cfg.measure_to:
            return
        project = self._edit_rng.randrange(self.edited) + 1
        poke = self.app.commit(project, now)
        self.recorder.count("edits", now)
        # After commit: the publisher's queue, then Redis (SET version key + PUBLISH).
        self.queue.at(now + self.cfg.network.internal, self._publish, poke)
        self.queue.at(now + self._next_edit(), self._edit)

    def _next_edit(self) -> float:
        if self.cfg.regular_edits:
            return 1 / self.cfg.edits_per_s
        return self._edit_rng.expovariate(self.cfg.edits_per_s)

    def _publish(self, poke: Poke) -> None:
        self.broker.publish(poke)

    def _request(
        self,
        client: SimClient,
        kind: str,
        size: int,
        service: float,
        reply: Callable[[], None],
    ) -> None:
        """One of a client's HTTP requests (``size``: bytes both ways): there and back
        over the network, plus service time."""
        now = self.queue.now
        w = self.weight
        self.recorder.count("app_requests", now, w)
        self.recorder.count(f"app_{kind}", now, w)
        client.traffic("app_bytes", size)
        self.queue.at(now + service + self.network.round_trip(), _call, reply)

    # -- the driver: carry out a controller's actions ------------------------------

    def execute(self, client: SimClient, actions: list[a.Action], *, full_push: bool) -> None:
        now = self.queue.now
        for action in actions:
            match action:
                case a.Poll(projects=projects):
                    self._poll(client, dict(projects))
                case a.ApplyEvents(events=events):
                    client.applied(now, events, full_push)
                case a.ConnectPush(conn=conn, token=token, projects=projects):
                    self._connect(client, conn, token, dict(projects))
                case a.ClosePush(conn=conn):
                    self._close(client, conn)
                case a.RefreshToken():
                    self._token(client)
                case a.PushRefresh(conn=conn, token=token, projects=projects):
                    self._refresh(client, conn, token, dict(projects))
                case a.ReloadSnapshot(project=project):
                    self._snapshot(client, project)
                case a.StatusChanged(status=status):
                    self._status(client, str(status))
                case a.ReportTelemetry(report=report):
                    size = len(encode_report(report)) + self.cfg.app.telemetry_overhead_bytes
                    self._request(client, "telemetry", size, self.cfg.app.service_other, _nothing)
                    for s in report.samples:
                        self.recorder.count(f"via_{s.via}", now, self.weight)
                    self.recorder.count("missed_pokes", now, report.missed_pokes * self.weight)
                case a.PollAt() | a.ConnectPushAt():
                    pass  # the client reschedules from next_deadline()

    def _poll(self, client: SimClient, projects: dict[int, int]) -> None:
        self.recorder.count("polled_projects", self.queue.now, len(projects) * self.weight)
        # The answer is computed when the request reaches the app (half the round trip).
        arrive = self.queue.now + self.network.delay()
        self.queue.at(arrive, self._answer_poll, (client, projects))

    def _answer_poll(self, arg: tuple[SimClient, dict[int, int]]) -> None:
        client, projects = arg
        now = self.queue.now
        w = self.weight
        results = []
        size = 0
        service = 0.0
        for project, since in projects.items():
            result, nbytes, cost = self.app.poll(project, since)
            results.append(result)
            size += nbytes + self.app.poll_request_bytes(project, since)
            service += cost
        self.recorder.count("app_requests", now, w)
        self.recorder.count("app_polls", now, w)
        client.traffic("app_bytes", size)
        # The version cache: one MGET of the Redis version keys per poll request.
        self.recorder.count("redis_read", now, w)
        if any(r.events for r in results):
            self.recorder.count("app_polls_with_events", now, w)
        self.queue.at(now + service + self.network.delay(), _feed_all, (client, results))

    def _snapshot(self, client: SimClient, project: int) -> None:
        def reply() -> None:
            client.feed(i.SnapshotLoaded(project, self.app.versions[project]))

        size = self.cfg.app.snapshot_bytes
        self._request(client, "snapshots", size, self.cfg.app.service_other, reply)

    def _token(self, client: SimClient) -> None:
        def reply() -> None:
            client.feed(self.app.token(client.id, [client.project], self.queue.now))

        size = self.cfg.app.token_exchange_bytes
        self._request(client, "tokens", size, self.cfg.app.service_other, reply)

    def _connect(
        self, client: SimClient, conn_id: int, token: str, projects: dict[int, int]
    ) -> None:
        now = self.queue.now
        self.recorder.count("push_connects", now, self.weight)
        server = self._balance()
        # SYN, SYN-ACK, ACK + the upgrade request: three one-way trips to the server.
        reach = now + self.network.delay() + self.network.delay() + self.network.delay()
        if server is None:
            # Connection refused: the client hears of it one round trip later.
            self.recorder.count("push_refused", now, self.weight)
            self.queue.at(now + self.network.round_trip(), _feed, (client, i.PushClosed(conn_id)))
            return
        self.queue.at(reach, self._accept, (server, client, conn_id, token, projects))

    def _accept(self, arg: tuple[SimPushServer, SimClient, int, str, dict[int, int]]) -> None:
        server, client, conn_id, token, projects = arg
        conn = server.accept(client, conn_id)
        if conn is None:
            self.recorder.count("push_refused", self.queue.now, self.weight)
            self.queue.at(
                self.queue.now + self.network.delay(), _feed, (client, i.PushClosed(conn_id))
            )
            return
        client.conn = conn
        # The 101 answer goes back, then the client's subscribe comes in.
        subscribe_at = max(conn.last, self.queue.now) + self.network.delay()
        self.queue.at(subscribe_at, _subscribe, (conn, token, projects, False))

    def _close(self, client: SimClient, conn_id: int) -> None:
        conn = client.conn
        if conn is None or conn.conn_id != conn_id:
            return
        client.conn = None
        conn.client = None
        self.queue.at(self.queue.now + self.network.delay(), _closed, conn)

    def _refresh(
        self, client: SimClient, conn_id: int, token: str, projects: dict[int, int]
    ) -> None:
        conn = client.conn
        if conn is None or conn.conn_id != conn_id:
            return
        self.queue.at(
            self.queue.now + self.network.delay(), _subscribe, (conn, token, projects, True)
        )

    def _status(self, client: SimClient, status: str) -> None:
        prev = self._last_status.get(client.id)
        if prev is not None:
            self.statuses[prev] -= self.weight
        self.statuses[status] = self.statuses.get(status, 0.0) + self.weight
        self._last_status[client.id] = status

    # -- observation ------------------------------------------------------------

    def _sample(self, _: object) -> None:
        now = self.queue.now
        rec = self.recorder
        connected = sum(len(s.hub) for s in self.servers if s.alive) * self.weight
        rec.gauge("connected", now, connected)
        degraded = sum(1 for s in self.servers if s.alive and s.hub.state is ServerState.DEGRADED)
        rec.gauge("servers_degraded", now, degraded)
        for status, count in self.statuses.items():
            rec.gauge(f"status_{status}", now, count)
        if now + 1.0 <= self.cfg.end:
            self.queue.at(now + 1.0, self._sample)

    def run(
        self, progress: Callable[[World, float], None] | None = None, step: float = 10.0
    ) -> float:
        """Run to the end; returns the wall-clock seconds it took."""
        started = time.perf_counter()
        t = self.queue.now
        while t < self.cfg.end:
            t = min(self.cfg.end, t + step)
            self.queue.run_until(t)
            if progress is not None:
                progress(self, time.perf_counter() - started)
        return time.perf_counter() - started

    def unconverged(self) -> list[SimClient]:
        """Clients whose controller does not hold its project's latest version."""
        return [c for c in self.clients if c.version() != self.app.versions[c.project]]


def _start(client: SimClient) -> None:
    client.feed(i.Start())


def _call(fn: Callable[[], None]) -> None:
    fn()


def _nothing() -> None:
    pass


def _feed(arg: tuple[SimClient, i.Input]) -> None:
    client, event = arg
    client.feed(event)


def _feed_all(arg: tuple[SimClient, list[i.PollResult]]) -> None:
    client, results = arg
    for result in results:
        client.feed(result)


def _subscribe(arg: tuple[SimConn, str, dict[int, int], bool]) -> None:
    conn, token, projects, refresh = arg
    conn.server.subscribe(conn, token, projects, refresh)


def _closed(conn: SimConn) -> None:
    conn.server.client_closed(conn)
