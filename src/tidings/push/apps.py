"""Which app processes can still reach us: their heartbeats, judged by age.

Sans-I/O. The app publishes pokes on its own broker connection; when that path
breaks (a partition between app and Redis) while ours is fine, our own link
heartbeat (link.py) still comes back and nothing else would tell us that pokes
are being lost. So every app process publishes an ``app_heartbeat`` through the
connection that carries its pokes (protocol/control.py), and an app we heard
recently that has gone quiet means pokes may be lost: the server reports
``degraded`` until it is heard again, says ``app_bye``, or is forgotten.

The heartbeat also says whether the app's kill switch has push off: while a
live app says so, the server reports ``degraded`` as well, which sends its
clients to the poll (and so to the poll's advice) at once.

An app that dies without a goodbye (kill -9, a crash, an OOM kill) is told
apart from one cut off when its heartbeat names its Redis connections
(``client``): the server then asks Redis which connections it holds, and an app
with none left is gone (the kernel closed its sockets when the process died)
and no longer waits to be forgotten (:meth:`AppWatch.gone`). It still counts
as silent for ``gone_hold`` seconds from when it fell silent: a commit it made
just before dying may never have been published, and one short-interval poll
by every client (the short interval with jitter, which ``gone_hold`` must
cover) finds it. A cut-off app's connections stay open on the Redis side (a
partition carries no FIN), so it stays silent.
Otherwise forgetting ends the degraded state: ``forget_after`` is the longest a
dead app keeps clients on the short poll interval (a lost host, whose
connections Redis holds until TCP keepalive notices). A partition longer than
that looks the same as a dead app, and the server returns to ``ok`` while that
app's pokes are still lost.

When our own link comes back (:meth:`AppWatch.grace`), what each app last said
is from before the break: whether its pokes fail may have changed meanwhile (on
a cluster, the shard that went down may carry their pokes too, and they keep
the pokes that failed). Each app is ``unheard`` until its next heartbeat, and
the server is not ``ok`` before that: otherwise it would say ``ok`` on stale
word and ``degraded`` a second later, when the app says its pokes still fail.
"""

from __future__ import annotations

from typing import TypedDict

#: Apps tracked at most; past it the one heard longest ago is dropped. An entry
#: is an id (<= 64 chars) and a float: the whole watch stays under ~200 KB.
MAX_APPS = 1024


class Beat(TypedDict, total=False):
    """What an app's heartbeat says besides who and when (protocol/control.py):
    the keyword arguments of :meth:`AppWatch.heard`, for those that pass them on."""

    push_off: bool
    client: str | None
    failing: int


class AppWatch:
    """``silent(now)``: apps heard within ``forget_after`` seconds but not within
    ``deaf_after`` seconds; the server is degraded while there is any."""

    def __init__(self, deaf_after: float, forget_after: float, gone_hold: float = 0.0) -> None:
        if not 0 < deaf_after < forget_after:
            raise ValueError("need 0 < deaf_after < forget_after")
        self.deaf_after = deaf_after
        self.forget_after = forget_after
        self.gone_hold = gone_hold
        #: Apps found gone -> until when they still count as silent.
        self._leaving: dict[str, float] = {}
        #: app id -> when it was last heard; insertion order is hearing order.
        self._heard: dict[str, float] = {}
        #: Apps whose latest heartbeat said push is switched off.
        self._off: set[str] = set()
        #: app id -> the Redis client name its latest heartbeat gave.
        self._clients: dict[str, str] = {}
        #: Apps whose latest heartbeat said some of their publishes are failing.
        self._failing: set[str] = set()
        #: Apps not heard since our own link last went down or came back.
        self._unheard: set[str] = set()

    def heard(
        self,
        app: str,
        now: float,
        *,
        push_off: bool = False,
        client: str | None = None,
        failing: int = 0,
    ) -> None:
        """``failing``: the heartbeat's ``publish_failing`` (protocol/control.py)."""
        if failing:
            self._failing.add(app)
        else:
            self._failing.discard(app)
        self._heard.pop(app, None)
        self._heard[app] = now
        self._leaving.pop(app, None)
        self._unheard.discard(app)
        if push_off:
            self._off.add(app)
        else:
            self._off.discard(app)
        if client is None:
            self._clients.pop(app, None)
        else:
            self._clients[app] = client
        while len(self._heard) > MAX_APPS:
            self._drop(next(iter(self._heard)))

    def _drop(self, app: str) -> None:
        self._heard.pop(app, None)
        self._off.discard(app)
        self._failing.discard(app)
        self._clients.pop(app, None)
        self._unheard.discard(app)

    def bye(self, app: str) -> None:
        """The app shut down on purpose: its silence is no longer a fault."""
        self._drop(app)

    def to_check(self, now: float) -> dict[str, str]:
        """Silent apps whose connections can be looked for: app id -> client name."""
        return {app: self._clients[app] for app in self.silent(now) if app in self._clients}

    def gone(self, app: str) -> None:
        """The broker holds no connection of this silent app: it died, it is not
        cut off. Nothing more of it can be lost: its silence ends ``gone_hold``
        after it began."""
        at = self._heard.get(app)
        self._drop(app)
        if at is not None and len(self._leaving) < MAX_APPS:
            self._leaving[app] = at + self.deaf_after + self.gone_hold

    def grace(self, now: float) -> None:
        """Our own link was down: what we did not hear meanwhile says nothing about
        the apps, so each one gets ``deaf_after`` from now to be heard again, and
        is :meth:`unheard` until it is."""
        for app in self._heard:
            self._heard[app] = now
        self._unheard = set(self._heard)

    def unheard(self, now: float) -> list[str]:
        """Apps not heard since our own link last changed, and not silent yet
        (then :meth:`silent` counts them): what they said before is stale."""
        self._forget(now)
        heard = self._heard
        return sorted(app for app in self._unheard if now - heard[app] <= self.deaf_after)

    def _forget(self, now: float) -> None:
        for app, at in list(self._heard.items()):
            if now - at <= self.forget_after:
                break  # hearing order: every later entry is younger
            self._drop(app)

    def silent(self, now: float) -> list[str]:
        """Recently heard apps that have been quiet longer than ``deaf_after``, and
        apps found gone less than ``gone_hold`` after they fell silent."""
        self._forget(now)
        quiet = [app for app, at in self._heard.items() if now - at > self.deaf_after]
        if self._leaving:
            for app, until in list(self._leaving.items()):
                if now >= until:
                    del self._leaving[app]
            quiet += self._leaving
        return quiet

    def switched_off(self, now: float) -> bool:
        """Whether an app heard within ``deaf_after`` says push is switched off
        (one is enough: each app rereads the flags on its own, a few seconds apart)."""
        self._forget(now)
        heard = self._heard
        return any(now - heard[app] <= self.deaf_after for app in self._off)

    def failing(self, now: float) -> list[str]:
        """Apps heard within ``deaf_after`` whose heartbeat says some of their
        pokes are failing to publish: alive, heard, and still losing pokes (a
        silent one is counted by :meth:`silent`)."""
        self._forget(now)
        heard = self._heard
        return sorted(app for app in self._failing if now - heard[app] <= self.deaf_after)

    def __contains__(self, app: object) -> bool:
        return app in self._heard

    def known(self, now: float) -> int:
        """Apps heard within ``forget_after``."""
        self._forget(now)
        return len(self._heard)
