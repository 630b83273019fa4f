"""What the app and the push servers need from a broker, and nothing more.

Two halves: the app publishes pokes and records each project's current version
(``Publisher``); push servers subscribe to project channels and read those
versions back (``Subscriber``). The in-process broker implements both in one
object for ``tidings demo``; Redis implements them over PUB/SUB and plain keys.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable

#: Called with (channel, payload) for every message on a subscribed channel.
MessageHandler = Callable[[str, bytes], None]

#: Revocations a broker keeps for late push servers, at most (the oldest go
#: first). An entry is one ``revoke`` message of ~70 bytes: ~4 MB in Redis.
MAX_KEPT_REVOCATIONS = 50_000

#: Called with True when the subscription link (re)connects, False when it drops.
LinkHandler = Callable[[bool], None]

#: Called with a channel once the broker confirms its subscription is live:
#: whatever is published on it from then on will arrive.
SubscribedHandler = Callable[[str], None]


class Publisher(ABC):
    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Send one message; raise on failure (callers count and log, never retry inline)."""

    def lane(self, channel: str) -> Hashable:
        """Which independent path a publish on ``channel`` takes (a cluster shard):
        the app keeps one queue per lane, so one failing path does not hold up the
        others' pokes. One lane where there is one path."""
        return ""

    @abstractmethod
    async def set_version(self, project_id: int, version: int) -> int:
        """Record the project's current version; a lower version never overwrites a
        higher one. Returns the version recorded now: above ``version`` when a later
        one was there first (a poke for ``version`` is then stale)."""

    @abstractmethod
    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]:
        """Current versions known to the broker; unknown projects are left out."""

    @abstractmethod
    async def record_revocation(self, message: bytes, at: float, keep_seconds: float) -> None:
        """Keep a ``revoke`` message readable for ``keep_seconds`` after ``at``
        (bounded: the oldest go first), for push servers that did not hear it."""

    @abstractmethod
    async def recent_revocations(self, since: float) -> list[bytes]:
        """The kept ``revoke`` messages whose ``at`` is after ``since``."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


class Subscriber(ABC):
    """A push server's link to the broker. ``subscribe``/``unsubscribe`` are
    idempotent and may be called while the link is down: the set of channels is
    the desired state, replayed on every reconnect.
    """

    #: True if ``on_subscribed`` is called for every channel each time its
    #: subscription becomes live (reconnects included).
    confirms_subscriptions = False

    #: Set before ``start``. It matters where a subscription takes effect later
    #: than ``subscribe`` returns (Redis): a version read made before then can
    #: miss a commit published in between, so the reader reads again once it is
    #: live. A broker whose subscriptions take effect at once never calls it.
    on_subscribed: SubscribedHandler | None = None

    @abstractmethod
    def start(self, on_message: MessageHandler, on_link: LinkHandler) -> None: ...

    @abstractmethod
    def subscribe(self, channel: str) -> None: ...

    @abstractmethod
    def unsubscribe(self, channel: str) -> None: ...

    @abstractmethod
    async def get_versions(self, project_ids: Iterable[int]) -> dict[int, int]: ...

    @abstractmethod
    async def publish(self, channel: str, data: bytes) -> None:
        """Used for the link heartbeat on the control channel."""

    @abstractmethod
    async def recent_revocations(self, since: float) -> list[bytes]:
        """Read back what :meth:`Publisher.record_revocation` kept (after ``since``)."""

    async def client_names(self) -> set[str] | None:
        """The names of the broker's client connections now; ``None`` where the
        broker cannot tell (then a silent app is only forgotten with time)."""
        return None

    @abstractmethod
    async def close(self) -> None: ...
