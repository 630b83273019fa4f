"""Simulated Redis: channels per project, version keys, and a count of every message.

It delivers each poke to the push servers subscribed to the project's channel
after the internal latency, and answers the hubs' version reads from the app's
versions. Counted per second: ``redis_publish`` (PUBLISH + the version-key SET
before it), ``redis_deliver`` (one per subscribed server), ``redis_subscribe``,
``redis_unsubscribe``, ``redis_read`` (version reads: the app's per poll, the
hubs' on subscribe), ``redis_control`` (link heartbeats and push_stats).

``paused`` is a Redis that stops answering (SIGSTOP, a long fork): pokes
published meanwhile, link heartbeats and version reads are lost. The version
keys are not: they are the app's versions (the sweeper rewrites a key whose
write was lost), so a recovery read finds the truth.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from tidings.protocol.poke import Poke
from tidings.sim.clock import EventQueue
from tidings.sim.metrics import Recorder

if TYPE_CHECKING:
    from tidings.sim.fleet import SimPushServer

#: Projects per version read (one MGET), as the push server batches them.
RECHECK_BATCH = 500


class SimBroker:
    def __init__(
        self,
        queue: EventQueue,
        recorder: Recorder,
        versions: Callable[[int], int],
        *,
        latency: float,
        weight: float,
    ) -> None:
        self._q = queue
        self._rec = recorder
        self._versions = versions
        self._latency = latency
        self._weight = weight
        self.channels: dict[int, set[SimPushServer]] = {}
        self.servers: list[SimPushServer] = []
        self.paused = False

    def publish(self, poke: Poke) -> None:
        now = self._q.now
        rec = self._rec
        rec.count("redis_publish", now, 2)  # SET of the version key, then PUBLISH
        if self.paused:
            rec.count("pokes_lost", now)
            return
        subs = self.channels.get(poke.project, ())
        for server in subs:
            self._q.at(now + self._latency, server.on_poke, poke)
        if self._weight == 1:
            rec.count("redis_deliver", now, len(subs))
        else:
            rec.count("redis_deliver", now, self._expected_subscribers(poke.project))

    def _expected_subscribers(self, project: int) -> float:
        """Sampled mode: servers a full population would subscribe, in expectation.

        The sample's W watchers of the project stand for W * weight, each on a
        server picked at random among S: S * (1 - (1 - 1/S) ** (W * weight)).
        """
        live = [s for s in self.servers if s.alive]
        if not live:
            return 0.0
        watchers = sum(s.hub.watchers(project) for s in live) * self._weight
        n = len(live)
        return float(n * (1 - (1 - 1 / n) ** watchers))

    def subscribe(self, server: SimPushServer, project: int) -> None:
        self._rec.count("redis_subscribe", self._q.now)
        self.channels.setdefault(project, set()).add(server)

    def unsubscribe(self, server: SimPushServer, project: int, *, count: bool = True) -> None:
        if count:
            self._rec.count("redis_unsubscribe", self._q.now)
        subs = self.channels.get(project)
        if subs is not None:
            subs.discard(server)
            if not subs:
                del self.channels[project]

    def read_versions(self, server: SimPushServer, projects: Iterable[int]) -> None:
        wanted = list(projects)
        batches = -(-len(wanted) // RECHECK_BATCH)
        self._rec.count("redis_read", self._q.now, batches * self._weight)
        if self.paused:
            return  # the hub re-checks every project once its link is healthy again
        answer = {p: self._versions(p) for p in wanted}
        self._q.at(self._q.now + 2 * self._latency, server.on_versions, answer)

    def control(self, count: int) -> None:
        """One push server's link heartbeat: PUBLISH, delivered to every subscriber."""
        self._rec.count("redis_control", self._q.now, count)

    def deliver_control(self, server: SimPushServer, heard: Callable[[object], None]) -> None:
        """A push server's link heartbeat comes back to it after the internal latency."""
        if not self.paused:
            self._q.at(self._q.now + self._latency, heard, server)
