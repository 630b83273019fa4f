"""Push servers: a real :class:`~tidings.push.hub.Hub` each, with simulated connections.

A server is one core: every write the hub makes costs ``write_cost`` seconds of
it, one after another, so a fan-out to N connections reaches the last one
N * write_cost after the first (calibrated from the measured fan-out, see
``calibrate_write_cost``); accepting a connection costs ``accept_cost``.
Messages on one connection arrive in order (TCP), each after a network delay.
Its state (ok/degraded) comes from the real health policy (push/health.py), fed
with its own link heartbeats and the apps' heartbeats as the broker delivers them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import orjson

from tidings.client import inputs as i
from tidings.protocol.errors import TidingsError
from tidings.protocol.poke import Poke
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import KeyRing
from tidings.push.health import Action, Health, StateChanged
from tidings.push.hub import CONN_SLOTS, Conn, EncodedMessage, Hub
from tidings.push.settings import PushSettings
from tidings.push.wsframe import OP_TEXT, encode_frame
from tidings.sim.broker import SimBroker
from tidings.sim.clock import EventQueue
from tidings.sim.metrics import Recorder
from tidings.sim.network import Network

if TYPE_CHECKING:
    from tidings.sim.clients import SimClient

#: Key of a message's WebSocket frame in ``EncodedMessage.frames`` (framed once, like /ws).
SIM_FRAME = "sim"


@dataclass(frozen=True, slots=True)
class ServerModel:
    #: Server CPU per connection per message written (bench/results/fanout_headline.json,
    #: tidings-ws ``cpu_us_per_conn_poke``: 22.3 us at 10,000 connections).
    write_cost: float = 22.3e-6
    #: Server CPU to accept one connection (same file, ``setup_server_cpu_us_per_conn``).
    accept_cost: float = 515e-6
    #: App processes: each heartbeats on the control channel every push server hears,
    #: and each listens to the push servers' stats.
    control_listeners: int = 1
    #: Bytes of a WebSocket upgrade, request and 101 answer together (bench/lib/crowd.py's
    #: request, the server's answer).
    handshake_bytes: int = 280
    #: A client's ``subscribe`` or ``refresh`` frame besides the token: the JSON around
    #: it and the masked frame header.
    subscribe_overhead: int = 70


def calibrate_write_cost(path: Path) -> tuple[float, float]:
    """(write_cost, accept_cost) in seconds from a fan-out result's ``tidings-ws`` entry."""
    body: dict[str, Any] = json.loads(path.read_text())
    ws = body["results"]["tidings-ws"]
    return float(ws["cpu_us_per_conn_poke"]) * 1e-6, float(
        ws["setup_server_cpu_us_per_conn"]
    ) * 1e-6


class SimConn(Conn):
    __slots__ = (*CONN_SLOTS, "client", "conn_id", "key", "last", "server")
    kind: ClassVar[str] = "ws"

    def __init__(self, server: SimPushServer, client: SimClient, conn_id: int, key: int) -> None:
        self.init_conn()
        self.server = server
        #: Hash: the hub keeps connections in sets, whose order must not depend on
        #: memory addresses, or a seed would not fix a run's fan-out order.
        self.key = key
        self.client: SimClient | None = client
        self.conn_id = conn_id
        #: Arrival time of the latest message sent on it (TCP keeps them in order).
        self.last = 0.0

    def __hash__(self) -> int:
        return self.key

    def write(self, msg: EncodedMessage) -> None:
        self.server.send(self, msg)

    def close(self, code: int, reason: str) -> None:
        self.server.send_closed(self, code)


class _Port:
    """The hub's BrokerPort, bound to one server."""

    def __init__(self, broker: SimBroker, server: SimPushServer) -> None:
        self._broker = broker
        self._server = server

    def subscribe(self, project: int) -> None:
        self._broker.subscribe(self._server, project)

    def unsubscribe(self, project: int) -> None:
        # A dead server's subscriptions end with its Redis connection: no command.
        self._broker.unsubscribe(self._server, project, count=self._server.alive)

    def check_versions(self, projects: Iterable[int]) -> None:
        if self._server.alive:
            self._broker.read_versions(self._server, projects)


class SimPushServer:
    """One push process: a real hub, its clock, its CPU, and how it dies."""

    def __init__(
        self,
        name: str,
        number: int,
        queue: EventQueue,
        network: Network,
        broker: SimBroker,
        recorder: Recorder,
        settings: PushSettings,
        keys: KeyRing,
        model: ServerModel,
        rng: random.Random,
        *,
        weight: float,
        push_off: bool = False,
    ) -> None:
        self.name = name
        #: Unique per server ever started: its hash (see SimConn.key).
        self.number = number
        self._accepted = 0
        self._q = queue
        self._net = network
        self._broker = broker
        self._rec = recorder
        self._model = model
        self._rng = rng
        self._weight = weight
        self.settings = settings
        self.alive = True
        #: When this server's core is next free (the fan-out queue).
        self.cursor = queue.now
        #: Whether the apps' heartbeats say the kill switch has push off.
        self.push_off = push_off
        now = queue.now
        self.health = Health.from_settings(settings, now)
        self.hub = Hub(settings, keys, _Port(broker, self), now=now, state=ServerState.DEGRADED)
        self.on_empty: Callable[[SimPushServer], None] | None = None
        broker.servers.append(self)
        self._carry_out(self.health.link_changed(True, now))
        queue.at(now + settings.tick_interval, self._tick)
        # The first link heartbeat goes out at start, as the real server's does.
        queue.at(now, self._link_heartbeat)

    def __hash__(self) -> int:
        return self.number

    # -- time ----------------------------------------------------------------

    def _tick(self, _: Any) -> None:
        if not self.alive:
            return
        self.hub.tick(self._q.now)
        self._carry_out(self.health.tick(self._q.now))
        if self.hub.draining and len(self.hub) == 0 and self.on_empty is not None:
            callback, self.on_empty = self.on_empty, None
            callback(self)
        self._q.at(self._q.now + self.settings.tick_interval, self._tick)

    def _link_heartbeat(self, _: Any) -> None:
        if not self.alive:
            return
        # Per second and server: its link heartbeat on its own channel (publish +
        # delivery to itself), each app's heartbeat delivered to it, and every
        # stats interval its push_stats (publish + one delivery per app).
        apps = self._model.control_listeners
        extra = 1 + apps if self._q.now % self.settings.stats_interval < 1.0 else 0
        self._broker.control(2 + apps + extra)
        self._broker.deliver_control(self, self._heard)
        self._q.at(self._q.now + self.settings.link_heartbeat_interval, self._link_heartbeat)

    def _heard(self, _: Any) -> None:
        """Our link heartbeat came back, and with it (same period) each app's."""
        if not self.alive:
            return
        now = self._q.now
        self._carry_out(self.health.link_heard(now))
        for app in range(self._model.control_listeners):
            self._carry_out(self.health.app_heard(f"app-{app}", now, push_off=self.push_off))

    def _carry_out(self, actions: list[Action]) -> None:
        """The state changes the real server makes; app events and connection
        checks have nothing to act on here (the simulated apps never fall silent)."""
        for action in actions:
            if isinstance(action, StateChanged):
                self.hub.set_state(action.state, self._q.now)
                if action.state is ServerState.OK:
                    self.hub.recheck_all()

    # -- connections -----------------------------------------------------------

    def accepts(self) -> bool:
        return self.alive and not self.hub.draining

    def accept(self, client: SimClient, conn_id: int) -> SimConn | None:
        """A connection arrived (handshake done); None: refused (dead or draining)."""
        if not self.accepts():
            return None
        self._accepted += 1
        conn = SimConn(self, client, conn_id, self.number * 2**32 + self._accepted)
        self.hub.attach(conn, self._q.now)
        self.cursor = max(self.cursor, self._q.now) + self._model.accept_cost * self._weight
        client.traffic("push_bytes", self._model.handshake_bytes)
        self._deliver(conn, self.cursor, i.PushConnected(conn_id), 0)
        return conn

    def subscribe(
        self, conn: SimConn, token: str, projects: Mapping[int, int], refresh: bool
    ) -> None:
        if not self.alive or not conn.attached:
            return
        now = self._q.now
        if conn.client is not None:
            sent = len(token) + self._model.subscribe_overhead + 12 * len(projects)
            conn.client.traffic("push_bytes", sent)
        try:
            claims = self.hub.authorize(token, projects, now)
            self.hub.subscribe(conn, claims, projects, now, now, refresh=refresh)
        except TidingsError as exc:
            self.hub.detach(conn)
            conn.close(exc.close_code, str(exc))

    def client_closed(self, conn: SimConn) -> None:
        if self.alive:
            self.hub.detach(conn)

    # -- the broker side ---------------------------------------------------------

    def on_poke(self, poke: Poke) -> None:
        if self.alive:
            self.hub.on_poke(poke)

    def on_versions(self, versions: dict[int, int]) -> None:
        if self.alive:
            self.hub.on_versions(versions, self._q.now)

    # -- writing -------------------------------------------------------------

    def send(self, conn: SimConn, msg: EncodedMessage) -> None:
        model = self._model
        self.cursor = max(self.cursor, self._q.now) + model.write_cost * self._weight
        frame = msg.frames.get(SIM_FRAME)
        if frame is None:
            # Framed once per message, as the WebSocket transport does.
            frame = msg.frames[SIM_FRAME] = encode_frame(OP_TEXT, msg.data)
        parsed = i.from_push_message(conn.conn_id, orjson.loads(msg.data))
        if parsed is not None:
            arrive = self._deliver(conn, self.cursor, parsed, len(frame))
            if arrive is not None and isinstance(parsed, i.PokeReceived):
                self._rec.delivery(parsed.ts, round((arrive - parsed.ts) * 1000))

    def send_closed(self, conn: SimConn, code: int | None) -> None:
        self.cursor = max(self.cursor, self._q.now) + self._model.write_cost * self._weight
        self._deliver(conn, self.cursor, i.PushClosed(conn.conn_id, code), 4)

    def _deliver(self, conn: SimConn, sent: float, what: i.Input, size: int) -> float | None:
        """Queue ``what`` to reach the client; returns when it will (None: nobody there)."""
        client = conn.client
        if client is None:
            return None
        if size:
            client.traffic("push_bytes", size)
            self._rec.count("push_messages", self._q.now, self._weight)
        arrive = max(sent + self._net.delay(), conn.last)
        conn.last = arrive
        self._q.at(arrive, client.from_push, what)
        return arrive

    # -- endings ---------------------------------------------------------------

    def drain(self, window: float) -> None:
        """SIGTERM: the real hub's drain, with this server's random draws."""
        self.health.drain()
        # As the real server: every client hears the state at once, then its delay.
        self.hub.set_state(ServerState.DRAINING, self._q.now)
        self.hub.drain(self._q.now, window, self._rng.random)

    def stop(self) -> None:
        """The drain is over (or timed out): close what is left (1001) and exit."""
        if self.alive:
            self.hub.close_all(1001, "server stopped")
            self._die()

    def crash(self, *, reset: bool) -> None:
        """The process dies: with ``reset`` clients see the TCP connection reset at once;
        without it (the host vanished) they see nothing and must notice the silence."""
        conns = [c for c in self.hub if isinstance(c, SimConn)]
        self._die()
        now = self._q.now
        for conn in conns:
            if reset:
                self._deliver(conn, now, i.PushClosed(conn.conn_id, None), 0)
            conn.client = None

    def _die(self) -> None:
        self.alive = False
        for conn in list(self.hub):
            self.hub.detach(conn)
        self._broker.servers.remove(self)
