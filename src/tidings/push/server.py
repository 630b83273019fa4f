"""A push server: one port, three transports, one hub, one broker link.

Composition only: it builds the hub and the context, routes requests, drives the
hub's clock, watches the broker link with its own heartbeats and the apps'
paths to the broker with theirs (push/apps.py), and carries out version
reads (on subscribe, after a recovery, and in the periodic audit). Protocol
rules live in hub.py, wsframe.py and the transports.
Embedding: ``await PushServer(settings, subscriber, keys).start(host, port)``
(``tidings demo`` on the in-process broker, ``tidings push`` on Redis).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import random
import secrets
from collections.abc import Coroutine, Iterable
from typing import Any

from tidings.broker.base import Subscriber
from tidings.protocol import control
from tidings.protocol.channels import (
    CONTROL_CHANNEL,
    STATS_CHANNEL,
    link_channel,
    project_channel,
    project_of_channel,
)
from tidings.protocol.errors import BadMessage, CloseCode, NotFound
from tidings.protocol.poke import decode_poke
from tidings.protocol.push import ServerState
from tidings.protocol.tokens import KeyRing
from tidings.push import metrics, sse, websocket
from tidings.push.apps import AppWatch
from tidings.push.context import PushContext
from tidings.push.http import HttpConnection, HttpHandler, HttpHandlerFactory, Request
from tidings.push.hub import Hub
from tidings.push.link import LinkMonitor
from tidings.push.logs import emit
from tidings.push.settings import PushSettings
from tidings.tasks import stop_tasks

log = logging.getLogger("tidings.push")

#: Where a plugged-in Socket.IO transport is mounted (see http.py).
SOCKETIO_PREFIX = "/socket.io/"


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
    def __init__(self, settings: PushSettings, subscriber: Subscriber, keys: KeyRing) -> None:
        self.settings = settings
        self.subscriber = subscriber
        self.keys = keys
        self.server_id = secrets.token_hex(6)
        self.link_channel = link_channel(self.server_id)
        self.counters = metrics.Counters()
        #: The bound port (after ``start``; 0 asks the OS to pick one).
        self.port = 0
        self._mounts: dict[str, HttpHandlerFactory] = {}
        self._handlers: list[tuple[str, HttpHandler]] = []
        self._hub: Hub | None = None
        self._ctx: PushContext | None = None
        self._link: LinkMonitor | None = None
        self._apps = AppWatch(
            settings.app_deaf_after, settings.app_forget_after, settings.app_gone_hold
        )
        #: Apps dropped as gone, until _log_apps has seen them leave the silent list.
        self._gone: set[str] = set()
        self._next_app_check = 0.0
        #: The apps last reported silent (a change is logged once).
        self._silent: list[str] = []
        #: Degraded only because an app says push is switched off (see /readyz).
        self._policy_degraded = False
        self._server: asyncio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._background: set[asyncio.Task[None]] = set()
        self._wanted: set[int] = set()
        self._wanted_event = asyncio.Event()
        self._drained: asyncio.Event | None = None
        self._link_ups = 0
        self._closed = False
        self._registry = metrics.registry(self.counters, self._gauges())
        self._mount_socketio()

    # -- wiring --------------------------------------------------------------

    def mount(self, prefix: str, factory: HttpHandlerFactory) -> None:
        """Route every path under ``prefix`` to a plugged-in transport (before ``start``)."""
        self._mounts[prefix] = factory

    def _mount_socketio(self) -> None:
        try:
            sio = importlib.import_module("tidings.push.sio")
        except ImportError:
            return
        factory = getattr(sio, "http_handler", None)
        if callable(factory):
            self.mount(SOCKETIO_PREFIX, factory)

    @property
    def hub(self) -> Hub:
        assert self._hub is not None, "start() first"
        return self._hub

    @property
    def apps(self) -> AppWatch:
        """The app processes this server hears (or misses)."""
        return self._apps

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
        self._link = LinkMonitor(self.settings.link_deaf_after, now)
        self._ctx = PushContext(self.settings, self._hub, loop, self.counters, self._route)
        self._handlers = [(prefix, factory(self._ctx)) for prefix, factory in self._mounts.items()]
        ctx = self._ctx
        self._server = await loop.create_server(
            lambda: HttpConnection(ctx),
            host,
            port,
            reuse_port=reuse_port or None,
            backlog=4096,
        )
        self.port = int(self._server.sockets[0].getsockname()[1])
        self.subscriber.subscribe(CONTROL_CHANNEL)
        self.subscriber.subscribe(self.link_channel)
        self.subscriber.on_subscribed = self._on_subscribed
        self.subscriber.start(self._on_message, self._on_link)
        self._tasks = [
            loop.create_task(self._ticker(), name="tidings-push-tick"),
            loop.create_task(self._version_reader(), name="tidings-push-versions"),
        ]
        emit(log, logging.INFO, "push_started", host=host, port=self.port, server=self.server_id)

    # -- routing -------------------------------------------------------------

    def _route(self, request: Request, conn: HttpConnection) -> None:
        path = request.path
        if path == "/ws":
            websocket.accept(self.context, request, conn)
        elif path == "/sse":
            sse.accept(self.context, request, conn)
        elif path == "/healthz":
            conn.respond_json(200, {"status": "ok"})
        elif path == "/readyz":
            state = self.hub.state
            # Switched off is a policy, not a fault: still ready, so that turning
            # push back on needs no load balancer to notice anything.
            fine = state is ServerState.OK or self._policy_degraded
            ready = fine and self.context.accepting
            # The server's id: behind one address (SO_REUSEPORT, a balancer) it
            # tells which process answered.
            body: dict[str, Any] = {"status": state.value, "server": self.server_id}
            if self._policy_degraded:
                body["switched_off"] = True
            conn.respond_json(200 if ready else 503, body)
        elif path == "/metrics":
            conn.respond(
                200,
                metrics.render(self._registry),
                content_type="text/plain; version=0.0.4; charset=utf-8",
            )
        else:
            for prefix, handler in self._handlers:
                if path.startswith(prefix) or path == prefix.rstrip("/"):
                    handler.handle(request, conn)
                    return
            conn.refuse(NotFound(f"no route for {path}"))

    # -- broker --------------------------------------------------------------

    def _on_message(self, channel: str, data: bytes) -> None:
        hub = self._hub
        if hub is None:
            return
        if channel == self.link_channel:
            beat = control.parse_link_heartbeat(data)
            if beat is not None and beat[0] == self.server_id and self._link is not None:
                self._link.heard(self.context.now())
                self._judge_link()
            return
        if channel == CONTROL_CHANNEL:
            app_beat = control.parse_app_heartbeat(data)
            if app_beat is not None:
                self._apps.heard(
                    app_beat.app,
                    self.context.now(),
                    push_off=app_beat.push_off,
                    client=app_beat.client,
                )
                self._judge_link()
                return
            bye = control.parse_app_bye(data)
            if bye is not None:
                self._apps.bye(bye)
                emit(log, logging.INFO, "app_bye", app=bye)
                self._judge_link()
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
        if self._link is None:
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
        now = self.context.now()
        self._link.link(up, now)
        # What the apps published while our link was down was lost to us, not to them.
        self._apps.grace(now)
        self._judge_link()

    def _judge_link(self) -> None:
        """Degraded while our link is down or deaf, while an app we heard
        recently is silent (its pokes may be lost on its way to the broker), or
        while an app says the kill switch has push off (clients then poll at once
        and get the poll's advice); on recovery re-check every project, so pokes
        lost meanwhile are recovered from the version keys."""
        hub, link = self.hub, self._link
        assert link is not None
        now = self.context.now()
        silent = self._apps.silent(now)
        if silent != self._silent:
            self._log_apps(silent)
        healthy = link.healthy(now)
        switched_off = self._apps.switched_off(now)
        ok = healthy and not silent and not switched_off
        self._policy_degraded = healthy and not silent and switched_off
        target = ServerState.OK if ok else ServerState.DEGRADED
        if hub.draining or hub.state is target:
            return
        hub.set_state(target, now)
        emit(
            log,
            logging.WARNING if target is ServerState.DEGRADED else logging.INFO,
            "push_state",
            state=target.value,
            heartbeat_age=link.age(now),
            link_ok=healthy,
            apps_silent=len(silent),
            switched_off=switched_off,
        )
        if target is ServerState.OK:
            hub.recheck_all()

    def _log_apps(self, silent: list[str]) -> None:
        """One log event per app that falls silent, is heard again, or is forgotten
        (a goodbye is logged where it is heard)."""
        before, after = set(self._silent), set(silent)
        self._silent = silent
        for app in sorted(after - before):
            emit(log, logging.WARNING, "app_silent", app=app, after=self.settings.app_deaf_after)
        for app in sorted(before - after):
            if app in self._gone:
                self._gone.discard(app)  # logged as app_gone
                continue
            event = "app_heard" if app in self._apps else "app_forgotten"
            emit(log, logging.INFO, event, app=app)

    def _check_apps(self, now: float) -> None:
        """At most every ``app_check_interval``, while an app is silent and named
        its connections: does Redis still hold one? (push/apps.py)"""
        if now < self._next_app_check:
            return
        wanted = self._apps.to_check(now)
        if not wanted:
            return
        self._next_app_check = now + self.settings.app_check_interval
        self._background_task(self._look_for_apps(wanted))

    async def _look_for_apps(self, wanted: dict[str, str]) -> None:
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                names = await self.subscriber.client_names()
        except Exception as exc:
            emit(log, logging.DEBUG, "app_check_failed", error=repr(exc))
            return
        if names is None:
            return
        still = self._apps.to_check(self.context.now())
        for app, client in wanted.items():
            # Heard again while CLIENT LIST was on its way: not gone after all.
            if client not in names and still.get(app) == client:
                self._apps.gone(app)
                self._gone.add(app)
                self.counters.apps_gone += 1
                emit(log, logging.WARNING, "app_gone", app=app, client=client)
        self._judge_link()

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
        self._wanted.update(projects)
        self._wanted_event.set()

    async def _version_reader(self) -> None:
        """Batch version-key reads (recovery) into a few MGETs, each with a timeout."""
        settings = self.settings
        while True:
            await self._wanted_event.wait()
            await asyncio.sleep(settings.recheck_delay)
            self._wanted_event.clear()
            wanted, self._wanted = sorted(self._wanted), set()
            for i in range(0, len(wanted), settings.recheck_batch):
                chunk = wanted[i : i + settings.recheck_batch]
                try:
                    async with asyncio.timeout(settings.broker_timeout):
                        versions = await self.subscriber.get_versions(chunk)
                except Exception as exc:
                    # The link judge re-checks everything once the broker is back.
                    self.counters.version_reads_failed += 1
                    emit(log, logging.WARNING, "version_read_failed", error=repr(exc))
                    continue
                self.hub.on_versions(versions, self.context.wall())

    def _audit(self, now: float) -> None:
        """Compare every watched project with its version key (through the batched
        reader), so a watcher left behind by a poke lost without a detected failure
        is poked. Only while the link is healthy: otherwise the reads would fail,
        and the link's recovery re-checks everything anyway."""
        link = self._link
        if link is None or not link.healthy(now) or self.hub.draining:
            return
        self.counters.audits += 1
        self.hub.recheck_all()

    async def _publish_heartbeat(self, seq: int) -> None:
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                await self.subscriber.publish(
                    self.link_channel, control.link_heartbeat(self.server_id, seq)
                )
        except Exception as exc:
            emit(log, logging.DEBUG, "link_heartbeat_failed", error=repr(exc))

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

    async def _publish_stats(self) -> None:
        try:
            async with asyncio.timeout(self.settings.broker_timeout):
                await self.subscriber.publish(
                    STATS_CHANNEL,
                    control.push_stats(self.server_id, self.context.wall(), self.stats()),
                )
        except Exception as exc:
            emit(log, logging.DEBUG, "push_stats_failed", error=repr(exc))

    def _background_task(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _ticker(self) -> None:
        """The hub's clock, the link heartbeat every ``link_heartbeat_interval``,
        the figures every ``stats_interval`` and the audit every ``audit_interval``."""
        loop = asyncio.get_running_loop()
        settings = self.settings
        link = self._link
        assert link is not None
        next_beat = next_stats = loop.time()
        next_audit = next_beat + settings.audit_interval * (1.0 - random.random())
        while True:
            now = loop.time()
            if now >= next_beat:
                next_beat = now + settings.link_heartbeat_interval
                self._background_task(self._publish_heartbeat(link.next_seq()))
            if settings.stats_interval > 0 and now >= next_stats:
                next_stats = now + settings.stats_interval
                self._background_task(self._publish_stats())
            if settings.audit_interval > 0 and now >= next_audit:
                next_audit = now + settings.audit_interval
                self._audit(now)
            self.hub.tick(now)
            self._check_apps(now)
            self._judge_link()
            if self._drained is not None and len(self.hub) == 0:
                self._drained.set()
            await asyncio.sleep(settings.tick_interval)

    # -- operations ----------------------------------------------------------

    def _gauges(self) -> metrics.Gauges:
        def connections() -> dict[str, int]:
            counts = dict(self._hub.connections) if self._hub else {}
            counts.setdefault("ws", 0)
            counts.setdefault("sse", 0)
            return counts

        return metrics.Gauges(
            connections=connections,
            state=lambda: self._hub.state.value if self._hub else "degraded",
            heartbeat_age=lambda: (
                self._link.age(self.context.now()) if self._link and self._ctx else 0.0
            ),
            draining=lambda: bool(self._hub and self._hub.draining),
            subscribed_projects=lambda: self._hub.subscribed_projects() if self._hub else 0,
            apps_heard=lambda: self._apps.known(self.context.now()) if self._ctx else 0,
            apps_silent=lambda: len(self._apps.silent(self.context.now())) if self._ctx else 0,
            switched_off=lambda: bool(self._ctx) and self._apps.switched_off(self.context.now()),
            extra={"open_sockets": lambda: float(self._ctx.sockets if self._ctx else 0)},
        )

    def _stop_accepting(self) -> None:
        if self._ctx is not None:
            self._ctx.accepting = False
        if self._server is not None:
            self._server.close()

    async def drain(self, window: float | None = None) -> None:
        """Stop accepting; tell each client ``drain`` with a reconnect delay spread
        uniformly over ``window`` seconds; return once every connection is closed
        (each at the end of its delay) or the window has passed."""
        if self._hub is None or self._closed:
            return
        window = self.settings.drain_window if window is None else window
        self._stop_accepting()
        if self._drained is None:
            self._drained = asyncio.Event()
            emit(log, logging.INFO, "drain_start", connections=len(self.hub), window=window)
            self.hub.drain(self.context.now(), window, random.random)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(window + self.settings.tick_interval * 2 + 1.0):
                await self._drained.wait()
        emit(log, logging.INFO, "drain_done", left=len(self.hub))

    async def close(self) -> None:
        """Close every connection (1001) and the broker link; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_accepting()
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
