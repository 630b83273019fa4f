"""A simulated browser: one real :class:`SyncController` and a driver that runs its actions.

The driver is the simulation's: requests go to the simulated app, push
connections to a simulated load balancer in front of the push servers. The
controller decides everything else (when to poll, back off, reconnect).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tidings.client import inputs as i
from tidings.client.controller import Config, SyncController, staleness_ms

if TYPE_CHECKING:
    from tidings.sim.fleet import SimConn
    from tidings.sim.world import World


class SimClient:
    __slots__ = ("conn", "ctl", "id", "idle", "project", "tick_at", "world")

    def __init__(
        self, world: World, client_id: int, project: int, config: Config, *, idle: bool
    ) -> None:
        self.world = world
        self.id = client_id
        self.project = project
        #: Watches a project nobody edits: its bytes are the idle cost.
        self.idle = idle
        self.ctl = SyncController(config, world.rng.random)
        self.conn: SimConn | None = None
        self.tick_at: float | None = None

    def feed(self, event: i.Input) -> None:
        world = self.world
        now = world.queue.now
        actions = self.ctl.feed(now, event)
        if actions:
            world.execute(self, actions, full_push=isinstance(event, i.PokeReceived))
        due = self.ctl.next_deadline()
        if due is not None and due != self.tick_at:
            if due <= now:
                # The controller ran everything due at ``now``; a deadline not
                # after it would be a tight loop, so it is looked at a moment later.
                world.recorder.count("controller_past_deadlines", now)
                due = now + 0.001
            self.tick_at = due
            world.queue.at(due, self._tick, due)

    def _tick(self, due: Any) -> None:
        if due != self.tick_at:
            return  # rescheduled since
        self.tick_at = None
        self.feed(i.Tick())

    def from_push(self, event: i.Input) -> None:
        self.feed(event)

    def applied(self, now: float, events: tuple[dict[str, Any], ...], full_push: bool) -> None:
        rec = self.world.recorder
        path = "full_push" if full_push else "poll"
        for e in events:
            ts = float(e["ts"])
            rec.sample(path, ts, staleness_ms(now, ts))

    def traffic(self, series: str, nbytes: int) -> None:
        """Bytes this client sent or received (both directions count), by series."""
        world = self.world
        amount = nbytes * world.weight
        world.recorder.count(series, world.queue.now, amount)
        if self.idle:
            world.recorder.count("idle_bytes", world.queue.now, amount)

    def version(self) -> int | None:
        return self.ctl.version(self.project)
