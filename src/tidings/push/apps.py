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

Forgetting is what ends the degraded state after an app dies without a goodbye
(kill -9, a lost host): ``forget_after`` is the longest a dead app keeps clients
on the short poll interval. A partition longer than that looks the same as a
dead app, and the server returns to ``ok`` while that app's pokes are still lost.
"""

from __future__ import annotations

#: Apps tracked at most; past it the one heard longest ago is dropped. An entry
#: is an id (<= 64 chars) and a float: the whole watch stays under ~200 KB.
MAX_APPS = 1024


class AppWatch:
    """``silent(now)``: apps heard within ``forget_after`` seconds but not within
    ``deaf_after`` seconds; the server is degraded while there is any."""

    def __init__(self, deaf_after: float, forget_after: float) -> None:
        if not 0 < deaf_after < forget_after:
            raise ValueError("need 0 < deaf_after < forget_after")
        self.deaf_after = deaf_after
        self.forget_after = forget_after
        #: app id -> when it was last heard; insertion order is hearing order.
        self._heard: dict[str, float] = {}
        #: Apps whose latest heartbeat said push is switched off.
        self._off: set[str] = set()

    def heard(self, app: str, now: float, *, push_off: bool = False) -> None:
        self._heard.pop(app, None)
        self._heard[app] = now
        if push_off:
            self._off.add(app)
        else:
            self._off.discard(app)
        while len(self._heard) > MAX_APPS:
            self._drop(next(iter(self._heard)))

    def _drop(self, app: str) -> None:
        self._heard.pop(app, None)
        self._off.discard(app)

    def bye(self, app: str) -> None:
        """The app shut down on purpose: its silence is no longer a fault."""
        self._drop(app)

    def grace(self, now: float) -> None:
        """Our own link was down: what we did not hear meanwhile says nothing about
        the apps, so each one gets ``deaf_after`` from now to be heard again."""
        for app in self._heard:
            self._heard[app] = now

    def _forget(self, now: float) -> None:
        for app, at in list(self._heard.items()):
            if now - at <= self.forget_after:
                break  # hearing order: every later entry is younger
            self._drop(app)

    def silent(self, now: float) -> list[str]:
        """Recently heard apps that have been quiet longer than ``deaf_after``."""
        self._forget(now)
        return [app for app, at in self._heard.items() if now - at > self.deaf_after]

    def switched_off(self, now: float) -> bool:
        """Whether an app heard within ``deaf_after`` says push is switched off
        (one is enough: each app rereads the flags on its own, a few seconds apart)."""
        self._forget(now)
        heard = self._heard
        return any(now - heard[app] <= self.deaf_after for app in self._off)

    def __contains__(self, app: object) -> bool:
        return app in self._heard

    def known(self, now: float) -> int:
        """Apps heard within ``forget_after``."""
        self._forget(now)
        return len(self._heard)
