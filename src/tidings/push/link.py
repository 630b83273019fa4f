"""Health of the broker link, judged end to end: do our own heartbeats come back?

Sans-I/O. A subscription can be connected and still deaf (a half-open TCP
connection, a paused or failed-over Redis): only a message we published and then
received proves the path works. The server publishes a link heartbeat on the
control channel every second and reports the ones it hears here.
"""

from __future__ import annotations


class LinkMonitor:
    """``healthy(now)`` is true while the link is up and our heartbeat was heard
    within ``deaf_after`` seconds; it starts unhealthy until the first one."""

    def __init__(self, deaf_after: float, now: float) -> None:
        self.deaf_after = deaf_after
        self._up = False
        self._heard: float | None = None
        self._started = now
        self.seq = 0

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def link(self, up: bool, now: float) -> None:
        self._up = up
        if not up:
            # Whatever was heard before the drop proves nothing about the new link.
            self._heard = None

    def heard(self, now: float) -> None:
        """One of our heartbeats came back: even a late one proves the path works now."""
        self._heard = now

    def healthy(self, now: float) -> bool:
        return self._up and self._heard is not None and now - self._heard < self.deaf_after

    def age(self, now: float) -> float:
        """Seconds since our last heartbeat came back (since start if none has)."""
        return now - (self._heard if self._heard is not None else self._started)
