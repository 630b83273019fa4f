"""A push server: one port, three transports, one hub, one broker link.

Composition only: it builds the hub, the context and the route table
(routes.py), drives the hub's clock, feeds the health policy (health.py: its
own link heartbeats, the apps' heartbeats) and carries out what it decides, and
asks for version reads (versions.py: on subscribe, after a recovery, and in the
periodic audit). Protocol rules live in hub.py, wsframe.py and the transports.
Embedding: ``await PushServer(settings, subscriber, keys).start(host, port)``
(``tidings demo`` on the in-process broker, ``tidings push`` on Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, TypeVar

from tidings.broker.base import Subscriber
from tidings.protocol import control
from tidings.protocol.channels import (
    CONTROL_CHANNEL,
    STATS_CHANNEL,
    link_channel,
    project_channel,
    project_of_channel,
)
from tidings.protocol.errors import BadMessage, CloseCode
from tidings.protocol.poke import decode_poke
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import KeyRing
from tidings.push import metrics, sse, websocket
from tidings.push.apps import AppWatch
from tidings.push.context import PushContext
from tidings.push.health import DEFAULT_LINK, Action, AppEvent, Health, LookForApps, StateChanged
from tidings.push.http import HttpConnection, HttpHandlerFactory, Request
from tidings.push.hub import Hub
from tidings.push.logs import emit
from tidings.push.routes import Mount, Route, Router
from tidings.push.settings import PushSettings
from tidings.push.sio.endpoint import SioConnection, SocketIOEndpoint
from tidings.push.versions import VersionReader
from tidings.tasks import stop_tasks, supervise

log = logging.getLogger("tidings.push")

_T = TypeVar("_T")

#: Where the Socket.IO transport is mounted.
SOCKETIO_PREFIX = "/socket.io/"

#: Every transport's name (``Conn.kind``): each has a connections series from the start.
TRANSPORTS = (websocket.PushWebSocket.kind, sse.SseConnection.kind, SioConnection.kind)


class _BrokerPort:
    """The hub's broker requests, carried out on the event loop."""

    def __init__(self, server: PushServer) -> None:
        self._server = server

    def subscribe(self, project: int) -> None:
        self._server.subscriber.subscribe(project_channel(project))

    def unsubscribe(self, project: int) -> None:
        self._server.subscriber.unsubscribe(project_channel(project))

    def check_versions(self, projects: Iterable[int]) -> None:
        self._server.want_versions(projects)


class PushServer:
    """One push process: the hub, the health policy and the version reader, glued to a
    listener and a broker subscriber. ``start``, then ``drain`` and ``close``."""

    def __init__(self, settings: PushSettings, subscriber: Subscriber, keys: KeyRing) -> None:
        self.settings = settings
        self.subscriber = subscriber
        self.keys = keys
        self.server_id = secrets.token_hex(6)
        self.link_channel = link_channel(self.server_id)
        self.counters = metrics.Counters()
        #: The bound port (after ``start``; 0 asks the OS to pick one).
        self.port = 0
        #: Extra transports mounted before ``start`` (see ``mount``).
        self._mounts: dict[str, HttpHandlerFactory] = {}
        self._router: Router | None = None
        self._hub: Hub | None = None
        self._ctx: PushContext | None = None
        self._health: Health | None = None
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        #: Batched version-key reads (``idle`` once all asked for were answered).
        self.versions = VersionReader(
            settings,
            subscriber.get_versions,
            lambda versions: self.hub.on_versions(versions, self.context.wall()),
            self.counters,
        )
        self._drained: asyncio.Event | None = None
        self._link_ups = 0
        self._reuse_port = False
        self._closed = False
        self._registry = metrics.registry(self.counters, self._gauges())

    # -- wiring --------------------------------------------------------------

    def mount(self, prefix: str, factory: HttpHandlerFactory) -> None:
        """Route every path under ``prefix`` to a plugged-in transport (before ``start``)."""
        self._mounts[prefix] = factory

    def routes(self, ctx: PushContext) -> list[Route | Mount]:
        """Every path this server answers, in one list."""
        return [
            Route("/ws", lambda request, conn: websocket.accept(ctx, request, conn)),
            Route("/sse", lambda request, conn: sse.accept(ctx, request, conn)),
            Route("/healthz", self._healthz),
            Route("/readyz", self._readyz),
            Route("/metrics", self._metrics),
            Mount(SOCKETIO_PREFIX, SocketIOEndpoint(ctx).handle),
            *(Mount(prefix, factory(ctx).handle) for prefix, factory in self._mounts.items()),
        ]

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "start() first"
        return self._hub

    @property
    def health(self) -> Health:
        """The health policy this server feeds (its state, its links, the apps)."""
        assert self._health is not None, "start() first"
        return self._health

    @property
    def apps(self) -> AppWatch:
        """The app processes this server hears (or misses)."""
        return self.health.apps

    @property
    def context(self) -> PushContext:
        assert self._ctx is not None, "start() first"
        return self._ctx

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._hub = Hub(
            self.settings,
            self.keys,
            _BrokerPort(self),
            now=now,
            counters=self.counters,
            state=ServerState.DEGRADED,
            heartbeat_phase=1.0 - random.random(),
        )
        self._health = Health.from_settings(self.settings, now)
        self._ctx = ctx = PushContext(self.settings, self._hub, loop, self.counters, self._route)
        self._router = Router(self.routes(ctx))
        self._server = await loop.create_server(
            lambda: HttpConnection(ctx),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=4096,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self._reuse_port = reuse_port
        self.subscriber.subscribe(CONTROL_CHANNEL)
        self.subscriber.subscribe(self.link_channel)
        self.subscriber.on_subscribed = self._on_subscribed
        self.subscriber.start(self._on_message, self._on_link)
        self._tasks = [
            loop.create_task(
                supervise(factory, name, on_restart=self._task_restarted, logger=log),
                name=f"tidings-push-{name}",
            )
            for factory, name in ((self._ticker, "tick"), (self.versions.run, "versions"))
        ]
        emit(log, logging.INFO, "push_started", host=host, port=self.port, server=self.server_id)

    # -- routing -------------------------------------------------------------

    def _route(self, request: Request, conn: HttpConnection) -> None:
        assert self._router is not None, "start() first"
        self._router(request, conn)

    def _healthz(self, request: Request, conn: HttpConnection) -> None:
        conn.respond_json(200, {"status": "ok"})

    def _readyz(self, request: Request, conn: HttpConnection) -> None:
        state = self.hub.state
        # Switched off is a policy, not a fault: still ready, so that turning
        # push back on needs no load balancer to notice anything.
        switched_off = self.health.switched_off_only
        ready = (state is ServerState.OK or switched_off) and self.context.accepting
        # The server's id: behind one address (SO_REUSEPORT, a balancer) it
        # tells which process answered.
        body: dict[str, Any] = {"status": state.value, "server": self.server_id}
        if switched_off:
            body["switched_off"] = True
        conn.respond_json(200 if ready else 503, body)

    def _metrics(self, request: Request, conn: HttpConnection) -> None:
        conn.respond(
            200,
            metrics.render(self._registry),
            content_type="text/plain; version=0.0.4; charset=utf-8",
        )

    # -- broker --------------------------------------------------------------

    def _on_message(self, channel: str, data: bytes) -> None:
        hub, health = self._hub, self._health
        if hub is None or health is None:
            return
        if channel == self.link_channel:
            beat = control.parse_link_heartbeat(data)
            if beat is not None and beat[0] == self.server_id:
                self._carry_out(health.link_heard(self.context.now()))
            return
        if channel == CONTROL_CHANNEL:
            app_beat = control.parse_app_heartbeat(data)
            if app_beat is not None:
                self._carry_out(
                    health.app_heard(
                        app_beat.app,
                        self.context.now(),
                        push_off=app_beat.push_off,
                        client=app_beat.client,
                        failing=app_beat.failing,
                    )
                )
                return
            bye = control.parse_app_bye(data)
            if bye is not None:
                self._carry_out(health.app_bye(bye, self.context.now()))
                return
            revoke = control.parse_revoke(data)
            if revoke is not None:
                user, lost, at = revoke
                hub.on_revoke(user, lost, at, self.context.wall())
                emit(log, logging.INFO, "revoke", user=user, project=lost, at=at)
            return
        project = project_of_channel(channel)
        try:
            poke = decode_poke(data)
            if poke.project != project:
                raise BadMessage("poke for another project's channel")
        except BadMessage as exc:
            self.counters.broker_invalid += 1
            emit(log, logging.WARNING, "broker_invalid", channel=channel, detail=exc.detail)
            return
        hub.on_poke(poke)

    def _on_subscribed(self, channel: str) -> None:
        """A subscription is live. What was published on it before was lost to
        us, but the app writes the version key (or keeps the revocation) before
        it publishes: reading them now, not at ``subscribe``, leaves no gap."""
        if self._hub is None:
            return
        if channel == CONTROL_CHANNEL:
            self._background_task(self._replay_revocations())
            return
        project = project_of_channel(channel)
        if project is not None and self.hub.watchers(project):
            self.want_versions([project])

    def _on_link(self, up: bool) -> None:
        health = self._health
        if health is None:
            return
        if up:
            self._link_ups += 1
            if self._link_ups > 1:
                self.counters.broker_reconnects += 1
        emit(log, logging.INFO if up else logging.WARNING, "broker_link", up=up)
        if up and not self.subscriber.confirms_subscriptions:
            # Revocations published before this server listened, or while its link
            # was down, are kept by the app beside the message: apply them now.
            self._background_task(self._replay_revocations())
        self._carry_out(health.link_changed(up, self.context.now()))

    # -- the health policy's actions -------------------------------------------

    def _carry_out(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, StateChanged):
                self._state_changed(action)
            elif isinstance(action, AppEvent):
                self._app_event(action)
            elif isinstance(action, LookForApps):
                self._background_task(self._look_for_apps(action.wanted))

    def _state_changed(self, change: StateChanged) -> None:
        """Tell every client at once; on recovery re-check every project, so pokes
        lost meanwhile are recovered from the version keys."""
        hub = self.hub
        hub.set_state(change.state, self.context.now())
        degraded = change.state is ServerState.DEGRADED
        emit(
            log,
            logging.WARNING if degraded else logging.INFO,
            "push_state",
            state=change.state.value,
            heartbeat_age=change.heartbeat_age,
            link_ok=change.links_ok,
            apps_silent=change.apps_silent,
            apps_failing=change.apps_failing,
            apps_unheard=change.apps_unheard,
            switched_off=change.switched_off,
        )
        if change.state is ServerState.OK:
            hub.recheck_all()

    def _app_event(self, event: AppEvent) -> None:
        if event.event == "app_silent":
            emit(
                log,
                logging.WARNING,
                "app_silent",
                app=event.app,
                after=self.settings.app_deaf_after,
            )
        elif event.event == "app_gone":
            self.counters.apps_gone += 1
            emit(log, logging.WARNING, "app_gone", app=event.app, client=event.client)
        else:
            emit(log, logging.INFO, event.event, app=event.app)

    async def _look_for_apps(self, wanted: dict[str, str]) -> None:
        """Does Redis still hold a connection of each silent app? (push/apps.py)"""
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                names = await self.subscriber.client_names()
        except Exception as exc:
            emit(log, logging.DEBUG, "app_check_failed", error=repr(exc))
            return
        if names is None:
            return
        self._carry_out(self.health.apps_found(wanted, set(names), self.context.now()))

    async def _replay_revocations(self) -> None:
        hub = self.hub
        since = self.context.wall() - hub.revocations.retention
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                found = await self.subscriber.recent_revocations(since)
        except Exception as exc:
            emit(log, logging.WARNING, "revocations_read_failed", error=repr(exc))
            return
        replayed = 0
        for message in found:
            revoke = control.parse_revoke(message)
            if revoke is not None:
                hub.on_revoke(*revoke, self.context.wall())
                replayed += 1
        if replayed:
            emit(log, logging.INFO, "revocations_replayed", count=replayed)

    def want_versions(self, projects: Iterable[int]) -> None:
        self.versions.want(projects)

    def _audit(self, now: float) -> None:
        """Compare every watched project with its version key (through the batched
        reader), so a watcher left behind by a poke lost without a detected failure
        is poked (when: ``Health.may_audit``)."""
        if not self.health.may_audit(now):
            return
        self.counters.audits += 1
        self.hub.recheck_all()

    async def _publish(self, channel: str, data: bytes, failed: str) -> None:
        """A best-effort control message: its loss is seen by whoever waits for it."""
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                await self.subscriber.publish(channel, data)
        except Exception as exc:
            emit(log, logging.DEBUG, failed, error=repr(exc))

    def stats(self) -> dict[str, Any]:
        """This server's figures, as published in ``push_stats`` (protocol/control.py)."""
        gauges = self._gauges()
        return {
            "state": gauges.state(),
            "connections": gauges.connections(),
            "subscribed_projects": gauges.subscribed_projects(),
            "heartbeat_age": round(gauges.heartbeat_age(), 3),
            "draining": gauges.draining(),
            "counters": self.counters.as_dict(),
        }

    def _task_restarted(self) -> None:
        self.counters.task_restarts += 1

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ticker(self) -> None:
        """The hub's clock, the link heartbeat every ``link_heartbeat_interval``,
        the figures every ``stats_interval`` and the audit every ``audit_interval``."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        health = self.health
        link = health.links[DEFAULT_LINK]
        next_beat = next_stats = loop.time()
        next_audit = next_beat + settings.audit_interval * (1.0 - random.random())
        while True:
            now = loop.time()
            if now >= next_beat:
                next_beat = now + settings.link_heartbeat_interval
                beat = control.link_heartbeat(self.server_id, link.next_seq())
                self._background_task(
                    self._publish(self.link_channel, beat, "link_heartbeat_failed")
                )
            if settings.stats_interval > 0 and now >= next_stats:
                next_stats = now + settings.stats_interval
                figures = control.push_stats(self.server_id, self.context.wall(), self.stats())
                self._background_task(self._publish(STATS_CHANNEL, figures, "push_stats_failed"))
            if settings.audit_interval > 0 and now >= next_audit:
                next_audit = now + settings.audit_interval
                self._audit(now)
            self.hub.tick(now)
            self._carry_out(health.tick(now))
            if self._drained is not None and len(self.hub) == 0:
                self._drained.set()
            await asyncio.sleep(settings.tick_interval)

    # -- operations ----------------------------------------------------------

    def _gauges(self) -> metrics.Gauges:
        # ``is not None`` throughout: a Hub with no connection is falsy (``__len__``).
        def connections() -> dict[str, int]:
            counts = dict.fromkeys(TRANSPORTS, 0)
            if self._hub is not None:
                counts.update(self._hub.connections)
            return counts

        def state() -> str:
            return self._hub.state.value if self._hub is not None else "degraded"

        def judged(read: Callable[[Health, float], _T], default: _T) -> Callable[[], _T]:
            def gauge() -> _T:
                health, ctx = self._health, self._ctx
                return default if health is None or ctx is None else read(health, ctx.now())

            return gauge

        return metrics.Gauges(
            connections=connections,
            state=state,
            heartbeat_age=judged(lambda health, now: health.heartbeat_age(now), 0.0),
            draining=lambda: self._hub is not None and self._hub.draining,
            subscribed_projects=lambda: (
                self._hub.subscribed_projects() if self._hub is not None else 0
            ),
            apps_heard=judged(lambda health, now: health.apps.known(now), 0),
            apps_silent=judged(lambda health, now: len(health.apps.silent(now)), 0),
            switched_off=judged(lambda health, now: health.apps.switched_off(now), False),
            extra={
                "open_sockets": lambda: float(self._ctx.sockets if self._ctx is not None else 0)
            },
        )

    def _stop_accepting(self, *, listen: bool) -> None:
        """Refuse new clients (context.admit: WebSocket 101 then 1013, HTTP 503); with
        ``listen``, keep the listener open so that /healthz and /readyz still answer."""
        if self._ctx is not None:
            self._ctx.accepting = False
        if not listen and self._server is not None:
            self._server.close()

    async def drain(self, window: float | None = None) -> None:
        """Refuse new clients; tell each client the ``draining`` state, then ``drain``
        with a reconnect delay spread uniformly over ``window`` seconds; return once
        every connection is closed (each at the end of its delay) or the window has
        passed.

        The listener stays open, so a load balancer's checks get /healthz 200 and
        /readyz 503 ``draining`` (it can tell draining from dead) and a client that
        still arrives is refused with a code it can act on. With ``reuse_port`` it
        closes at once instead: processes then share one address, a check cannot
        choose which one it reaches, and the kernel sends new connections only to
        the processes still listening."""
        if self._hub is None or self._closed:
            return
        window = self.settings.drain_window if window is None else window
        self._stop_accepting(listen=not self._reuse_port)
        if self._drained is None:
            self._drained = asyncio.Event()
            emit(log, logging.INFO, "drain_start", connections=len(self.hub), window=window)
            self.health.drain()
            now = self.context.now()
            # The heartbeat first: on a paused connection the drain message then
            # replaces it (one state message is kept), never the other way round.
            self.hub.set_state(ServerState.DRAINING, now)
            self.hub.drain(now, window, random.random)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(window + self.settings.tick_interval * 2 + 1.0):
                await self._drained.wait()
        emit(log, logging.INFO, "drain_done", left=len(self.hub))

    async def close(self) -> None:
        """Close every connection (1001) and the broker link; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_accepting(listen=False)
        await stop_tasks(self._tasks + list(self._background), self.settings.close_timeout)
        if self._hub is not None:
            self._hub.close_all(CloseCode.GOING_AWAY, "server shutting down")
        if self._ctx is not None:
            for conn in list(self._ctx.http_conns):
                conn.abort()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.settings.broker_timeout * 2):
                await self.subscriber.close()
        if self._server is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.close_timeout):
                    await self._server.wait_closed()
        emit(log, logging.INFO, "push_closed", server=self.server_id)
