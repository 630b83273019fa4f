"""Property: whatever happens to pokes and to push, the client converges, in order, in time.

A tiny simulated world (a server holding one project's history, a push server
that loses, duplicates, delays and reorders pokes and goes down and up) drives
the real controller through its inputs in virtual time. The bounds checked:

- always: events are applied in version order, without gaps or repeats;
- always: the final version is reached within the long interval (plus jitter)
  after the last change: lost pokes while push looks healthy cost at most that,
  and are what the missed-poke telemetry reports;
- push down at the end: within the short interval (plus jitter);
- a poke announcing the final version delivered: within the poke delay.
"""

from __future__ import annotations

import functools
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tidings.client import actions as a
from tidings.client import inputs as i
from tidings.client.controller import Config, SyncController
from tidings.protocol.advice import Advice

ADVICE = Advice(push=True, interval=60.0, fallback_interval=5.0, jitter=0.2)
START_VERSION = 5
PAGE = 3
HEARTBEAT = 25.0


@dataclass
class World:
    change_times: list[float]
    fates: list[tuple[float, ...]]  # delivery delays of each change's poke: () lost
    full_push: list[bool]
    outages: list[tuple[float, float]]
    latency: float
    seed: int


@st.composite
def worlds(draw: st.DrawFn) -> World:
    n = draw(st.integers(1, 12))
    gaps = draw(st.lists(st.floats(0.0, 40.0), min_size=n, max_size=n))
    times = list(itertools.accumulate(gaps, initial=1.0))[1:]
    delay = st.floats(0.0, 3.0)
    fate = st.one_of(
        st.just(()),
        st.tuples(delay),
        st.tuples(delay, st.floats(0.0, 8.0)),
    )
    outages = draw(st.lists(st.tuples(st.floats(0.0, 400.0), st.floats(0.5, 200.0)), max_size=3))
    return World(
        change_times=times,
        fates=draw(st.lists(fate, min_size=n, max_size=n)),
        full_push=draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        outages=[(s, s + d) for s, d in outages],
        latency=draw(st.floats(0.01, 0.5)),
        seed=draw(st.integers(0, 2**32 - 1)),
    )


@dataclass
class Sim:
    world: World
    controller: SyncController
    now: float = 0.0
    queue: list[tuple[float, int, Callable[[], None]]] = field(default_factory=list)
    seq: itertools.count[int] = field(default_factory=itertools.count)
    events: list[dict[str, Any]] = field(default_factory=list)
    held: int = START_VERSION
    reached_final_at: float | None = None
    open_conn: int | None = None
    subscribed: set[int] = field(default_factory=set)
    #: When pokes announcing the final version reached the client.
    final_pokes: list[float] = field(default_factory=list)

    @property
    def final(self) -> int:
        return START_VERSION + len(self.world.change_times)

    def push_up(self, t: float) -> bool:
        return not any(s <= t < e for s, e in self.world.outages)

    def at(self, t: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self.queue, (t, next(self.seq), fn))

    def server_version(self) -> int:
        return START_VERSION + len(self.events)

    def feed(self, event: i.Input) -> None:
        for action in self.controller.feed(self.now, event):
            self.act(action)

    # ----- the world's reactions to the client's actions -------------------------

    def act(self, action: a.Action) -> None:
        t = self.now
        lag = self.world.latency
        match action:
            case a.Poll(projects=projects):
                for project, since in projects.items():
                    newer = [e for e in self.events if e["version"] > since]
                    page = newer[:PAGE]
                    result = i.PollResult(
                        project=project,
                        version=self.server_version(),
                        events=tuple(page),
                        has_more=len(newer) > PAGE,
                        advice=ADVICE,
                    )
                    self.at(t + lag, functools.partial(self.feed, result))
            case a.ReloadSnapshot(project=project):
                version = self.server_version()
                self.at(t + lag, lambda: self.feed(i.SnapshotLoaded(project, version)))
            case a.ApplyEvents(events=events):
                versions = [e["version"] for e in events]
                assert versions == list(range(self.held + 1, self.held + 1 + len(versions)))
                self.held = versions[-1]
                if self.held == self.final and self.reached_final_at is None:
                    self.reached_final_at = t
            case a.RefreshToken():
                self.at(t + lag, lambda: self.feed(i.TokenFetched("tok", self.now + 600)))
            case a.ConnectPush(conn=conn):
                self.open_conn = conn
                if self.push_up(t):
                    self.at(t + lag, lambda: self.subscribe(conn))
                else:
                    self.at(t + lag, lambda: self.close(conn))
            case a.ClosePush(conn=conn):
                if self.open_conn == conn:
                    self.open_conn = None
                self.subscribed.discard(conn)
            case _:
                pass

    def subscribe(self, conn: int) -> None:
        if self.open_conn != conn:
            return
        if not self.push_up(self.now):
            self.close(conn)
            return
        self.subscribed.add(conn)
        self.feed(i.PushSubscribed(conn, {7: self.server_version()}, heartbeat=HEARTBEAT))
        self.at(self.now + HEARTBEAT, lambda: self.beat(conn))

    def beat(self, conn: int) -> None:
        if conn in self.subscribed and self.push_up(self.now):
            self.feed(i.PushHeartbeat(conn))
            self.at(self.now + HEARTBEAT, lambda: self.beat(conn))

    def close(self, conn: int) -> None:
        if self.open_conn == conn:
            self.open_conn = None
            self.subscribed.discard(conn)
            self.feed(i.PushClosed(conn, None))

    def outage_starts(self) -> None:
        if self.open_conn is not None:
            self.close(self.open_conn)

    def change(self, index: int) -> None:
        version = self.server_version() + 1
        event = {"version": version, "type": "story_updated", "data": {}, "ts": self.now}
        self.events.append(event)
        conn = self.open_conn
        if conn is None or conn not in self.subscribed or not self.push_up(self.now):
            return
        events = (event,) if self.world.full_push[index] else None
        poke = i.PokeReceived(7, version, self.now, events, conn)
        for delay in self.world.fates[index]:
            self.at(self.now + delay, lambda: self.deliver(conn, poke))

    def deliver(self, conn: int, poke: i.PokeReceived) -> None:
        if conn in self.subscribed:
            if poke.version == self.final:
                self.final_pokes.append(self.now)
            self.feed(poke)

    def run(self, until: float) -> None:
        while True:
            deadline = self.controller.next_deadline()
            head = self.queue[0][0] if self.queue else None
            nxt = min(t for t in (deadline, head) if t is not None)
            if nxt > until:
                return
            self.now = max(self.now, nxt)
            if head is not None and head <= nxt:
                _, _, fn = heapq.heappop(self.queue)
                fn()
            else:
                self.feed(i.Tick())


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(worlds())
@example(  # push healthy, pokes lost, then push goes down: the short interval takes over
    World([10.0, 20.0], [(), ()], [False, False], [(30.0, 300.0)], 0.1, 1)
)
@example(  # duplicated and reordered pokes, one of them carrying the events
    World([10.0, 10.1, 10.2], [(2.0, 0.1), (0.0,), (0.3, 0.3)], [False, True, False], [], 0.2, 2)
)
@example(  # push never comes up
    World([3.0, 50.0], [(0.1,), (0.1,)], [True, True], [(0.0, 500.0)], 0.05, 3)
)
def test_client_converges_whatever_happens_to_pokes_and_push(world: World) -> None:
    rng = random.Random(world.seed)
    # The default poke_delay: the bound below is the one clients are shipped with.
    config = Config(projects=(7,), versions={7: START_VERSION}, advice=ADVICE)
    sim = Sim(world, SyncController(config, rng.random))
    for index, t in enumerate(world.change_times):
        sim.at(t, functools.partial(sim.change, index))
    for start, _ in world.outages:
        sim.at(start, sim.outage_starts)
    sim.feed(i.Start())

    t_last = world.change_times[-1]
    pages = len(world.change_times) // PAGE + 2
    slack = (pages + 1) * world.latency + 0.01
    long_bound = t_last + ADVICE.interval * (1 + ADVICE.jitter) + slack
    sim.run(long_bound + 1)

    assert sim.held == sim.final, f"stuck at {sim.held}, server at {sim.final}"
    reached = sim.reached_final_at
    assert reached is not None
    assert reached <= long_bound

    short = ADVICE.fallback_interval * (1 + ADVICE.jitter)
    for down, up in world.outages:
        if down <= long_bound < up:
            # Push down from `down` to the end: polls come at the short interval.
            assert reached <= max(t_last, down) + short + slack
    if sim.final_pokes:
        assert reached <= sim.final_pokes[0] + config.poke_delay + slack
