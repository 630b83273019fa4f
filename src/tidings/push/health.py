"""The push server's health policy: ``ok`` or ``degraded``, from its broker links and the apps.

Sans-I/O: the server (push/server.py) and the simulator (sim/fleet.py) feed it
link events, their own link heartbeats heard back, app heartbeats, goodbyes and
what Redis says about app connections, each with ``now``; it answers with the
actions to carry out (tell the clients the new state and re-check every project
on recovery, log what happened to an app, look for apps' connections). It sends
nothing, logs nothing and reads no clock.

The rules: ``degraded`` while any broker link is down or deaf (link.py), while an
app heard recently is silent (its pokes may be lost on its way to the broker,
apps.py), while an app says some of its pokes fail to publish
(``publish_failing`` in its heartbeat: alive but losing pokes, e.g. a cluster
shard is down), while an app known before our link last went down or came back
has not been heard since (what it said before is stale: on a cluster, the shard
we lost may have been failing its pokes too, apps.py), or while an app says the
kill switch has push off (clients then poll at once and get the poll's advice;
that last case alone is a policy, not a fault: see
:attr:`Health.switched_off_only`). Draining is final.

Links are named: today one (:data:`DEFAULT_LINK`); a server with one broker
connection per shard names one link per shard, and is ``ok`` only while every
one of them is.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Unpack

from tidings.protocol.push import ServerState
from tidings.push.apps import AppWatch, Beat
from tidings.push.link import LinkMonitor
from tidings.push.settings import PushSettings

#: The one broker link of a server that has a single broker connection.
DEFAULT_LINK = "broker"


@dataclass(frozen=True, slots=True)
class StateChanged:
    """Tell every client ``state`` at once; on ``ok`` re-check every watched project
    (pokes lost while degraded are recovered from the version keys)."""

    state: ServerState
    #: Why, for the log: every link healthy, the oldest link heartbeat's age,
    #: silent apps, and whether an app says push is switched off.
    links_ok: bool
    heartbeat_age: float
    apps_silent: int
    switched_off: bool
    #: Apps heard saying some of their publishes fail (``publish_failing``).
    apps_failing: int = 0
    #: Apps not heard since a link went down or came back (their word is stale).
    apps_unheard: int = 0


@dataclass(frozen=True, slots=True)
class AppEvent:
    """Something to log about one app: ``app_silent``, ``app_heard`` (again),
    ``app_forgotten``, ``app_bye`` or ``app_gone`` (with the connection looked for)."""

    event: str
    app: str
    client: str | None = None


@dataclass(frozen=True, slots=True)
class LookForApps:
    """Ask the broker which connections it holds (CLIENT LIST), then report the
    answer to :meth:`Health.apps_found`: app id -> the client name looked for."""

    wanted: dict[str, str]


Action = StateChanged | AppEvent | LookForApps


class Health:
    """The judged state of one push server, and what follows from each change."""

    def __init__(
        self,
        *,
        link_deaf_after: float,
        app_deaf_after: float,
        app_forget_after: float,
        app_gone_hold: float = 0.0,
        app_check_interval: float = 1.0,
        now: float,
        links: Iterable[str] = (DEFAULT_LINK,),
    ) -> None:
        self.links = {name: LinkMonitor(link_deaf_after, now) for name in links}
        if not self.links:
            raise ValueError("need at least one link")
        self.apps = AppWatch(app_deaf_after, app_forget_after, app_gone_hold)
        self.app_check_interval = app_check_interval
        #: Starts degraded: nothing proves a link works until its first heartbeat is back.
        self.state = ServerState.DEGRADED
        #: Degraded only because an app says push is switched off (see /readyz).
        self.switched_off_only = False
        #: The apps last reported silent (each change is logged once).
        self._silent: list[str] = []
        #: Apps whose end was reported (app_bye, app_gone), until they leave the
        #: silent list: not reported again as heard or forgotten.
        self._reported: set[str] = set()
        self._next_app_check = 0.0

    @classmethod
    def from_settings(
        cls, settings: PushSettings, now: float, links: Iterable[str] = (DEFAULT_LINK,)
    ) -> Health:
        return cls(
            link_deaf_after=settings.link_deaf_after,
            app_deaf_after=settings.app_deaf_after,
            app_forget_after=settings.app_forget_after,
            app_gone_hold=settings.app_gone_hold,
            app_check_interval=settings.app_check_interval,
            now=now,
            links=links,
        )

    # -- what it is told ---------------------------------------------------------

    def link_changed(self, up: bool, now: float, link: str = DEFAULT_LINK) -> list[Action]:
        """A broker connection came up or went down."""
        self.links[link].link(up, now)
        # What the apps published while our link was down was lost to us, not to
        # them; and what they said before it is stale: each is heard again before ok.
        self.apps.grace(now)
        return self.judge(now)

    def link_heard(self, now: float, link: str = DEFAULT_LINK) -> list[Action]:
        """One of our own link heartbeats came back on ``link``."""
        self.links[link].heard(now)
        return self.judge(now)

    def app_heard(self, app: str, now: float, **beat: Unpack[Beat]) -> list[Action]:
        """An app's heartbeat: ``push_off``, ``client`` and ``failing`` as for
        :meth:`AppWatch.heard <tidings.push.apps.AppWatch.heard>`."""
        self.apps.heard(app, now, **beat)
        return self.judge(now)

    def app_bye(self, app: str, now: float) -> list[Action]:
        """The app shut down on purpose: its silence is no longer a fault."""
        self.apps.bye(app)
        if app in self._silent:
            self._reported.add(app)
        return [AppEvent("app_bye", app), *self.judge(now)]

    def apps_found(self, wanted: dict[str, str], names: set[str], now: float) -> list[Action]:
        """The answer to :class:`LookForApps`: the client names the broker holds."""
        still = self.apps.to_check(now)
        actions: list[Action] = []
        for app, client in wanted.items():
            # Heard again while the answer was on its way: not gone after all.
            if client not in names and still.get(app) == client:
                self.apps.gone(app)
                self._reported.add(app)
                actions.append(AppEvent("app_gone", app, client))
        return actions + self.judge(now)

    def tick(self, now: float) -> list[Action]:
        """The regular tick: judge again (ages grow) and, at most every
        ``app_check_interval``, look for the connections of silent apps that named theirs."""
        actions = self.judge(now)
        if now >= self._next_app_check:
            wanted = self.apps.to_check(now)
            if wanted:
                self._next_app_check = now + self.app_check_interval
                actions.append(LookForApps(wanted))
        return actions

    def drain(self) -> None:
        """Draining is final: no state change follows."""
        self.state = ServerState.DRAINING

    # -- what it says ----------------------------------------------------------

    @property
    def draining(self) -> bool:
        return self.state is ServerState.DRAINING

    def links_healthy(self, now: float) -> bool:
        return all(link.healthy(now) for link in self.links.values())

    def heartbeat_age(self, now: float) -> float:
        """Seconds since the link heard longest ago last heard its heartbeat."""
        return max(link.age(now) for link in self.links.values())

    def may_audit(self, now: float) -> bool:
        """The periodic audit runs only while every link is healthy and not
        draining: otherwise its reads would fail, and the links' recovery
        re-checks everything anyway."""
        return not self.draining and self.links_healthy(now)

    def judge(self, now: float) -> list[Action]:
        actions: list[Action] = []
        silent = self.apps.silent(now)
        if silent != self._silent:
            actions.extend(self._app_changes(silent))
        healthy = self.links_healthy(now)
        switched_off = self.apps.switched_off(now)
        failing = self.apps.failing(now)
        unheard = self.apps.unheard(now)
        faultless = healthy and not silent and not failing and not unheard
        ok = faultless and not switched_off
        self.switched_off_only = faultless and switched_off
        target = ServerState.OK if ok else ServerState.DEGRADED
        if self.draining or self.state is target:
            return actions
        self.state = target
        actions.append(
            StateChanged(
                target,
                healthy,
                self.heartbeat_age(now),
                len(silent),
                switched_off,
                len(failing),
                len(unheard),
            )
        )
        return actions

    def _app_changes(self, silent: list[str]) -> list[Action]:
        """One event per app that falls silent, is heard again, or is forgotten (a
        goodbye and a gone app are reported where they are learnt)."""
        before, after = set(self._silent), set(silent)
        self._silent = silent
        actions: list[Action] = [AppEvent("app_silent", app) for app in sorted(after - before)]
        for app in sorted(before - after):
            if app in self._reported:
                self._reported.discard(app)
                continue
            actions.append(AppEvent("app_heard" if app in self.apps else "app_forgotten", app))
        return actions
