"""What the sync and asyncio publishers share: the messages they send, how often
they try, and what they report. No I/O here.

A poke is published in two steps (docs/PROTOCOL.md §3.1): the version key's
compare-and-set first (a push server that recovers on this poke reads it), then
PUBLISH (or SPUBLISH). When the key already holds a later version the poke is
stale: a later poke was, or will be, published for that project, and this one
is not sent (:attr:`Outcome.stale`).
"""

from __future__ import annotations

import os
import random
import secrets
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from tidings.broker.redis_config import RedisConfig
from tidings.protocol import control
from tidings.protocol.channels import app_client_name, project_channel
from tidings.protocol.poke import MAX_VERSION, Poke, encode_poke, valid_version
from tidings.protocol.tokens import DEFAULT_TTL_SECONDS, LEEWAY_SECONDS

#: Seconds between app heartbeats: push servers call an app silent after 3 s
#: without one (push/apps.py), and then keep their clients on the short poll.
HEARTBEAT_INTERVAL = 1.0

#: Seconds one attempt (the compare-and-set and the publish) may take.
ATTEMPT_TIMEOUT = 2.0

#: Attempts at most, whatever a caller asks: with the longest backoff (``cap``)
#: and a one-second command timeout, a poke gives up within ~20 s.
MAX_ATTEMPTS = 10


class PublishFailed(Exception):
    """A poke or revocation not published after every attempt; ``__cause__`` is
    the last error. Nothing is lost for good: clients poll (that is the design)."""

    def __init__(self, what: str, attempts: int, last: BaseException) -> None:
        super().__init__(
            f"{what}: not published after {attempts} attempt(s): {type(last).__name__}: {last}"
        )
        self.attempts = attempts


@dataclass(frozen=True, slots=True)
class Outcome:
    """What :meth:`poke` did. ``published``: the poke went out. Otherwise the
    version key already held ``stored`` > ``version`` and nothing was sent."""

    project: int
    version: int
    #: The version key's value after the compare-and-set.
    stored: int

    @property
    def published(self) -> bool:
        return self.stored <= self.version

    @property
    def stale(self) -> bool:
        return not self.published


@dataclass(frozen=True, slots=True)
class Retry:
    """Bounded retries: ``attempts`` tries in all (1..MAX_ATTEMPTS), waiting an
    exponential backoff with full jitter between them: a random delay up to
    ``base * 2**n``, at most ``cap`` seconds."""

    attempts: int = 3
    base: float = 0.05
    cap: float = 1.0

    def __post_init__(self) -> None:
        if not 1 <= self.attempts <= MAX_ATTEMPTS:
            raise ValueError(f"attempts must be in 1..{MAX_ATTEMPTS}")
        if self.base < 0 or self.cap < 0:
            raise ValueError("backoff delays are >= 0")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The waits before the 2nd, 3rd, ... attempt."""
        draw = (rng or random).uniform
        for n in range(self.attempts - 1):
            yield draw(0, min(self.cap, self.base * 2**n))


#: Three attempts, the first two followed by at most 50 and 100 ms.
DEFAULT_RETRY = Retry()


class Attempts:
    """The tries of one poke or revocation under a :class:`Retry`. The publishers
    run each try and, when it fails, ask :meth:`failed` how long to wait before
    the next; this decides, they only sleep."""

    __slots__ = ("_delays", "_retry", "_what")

    def __init__(self, what: str, retry: Retry) -> None:
        self._what = what
        self._retry = retry
        self._delays = retry.delays()

    def failed(self, exc: Exception) -> float:
        """Seconds to wait before the next try. Raises ``exc`` itself when it is a
        ``ValueError`` (bad input: trying again cannot help), and
        :class:`PublishFailed` after the last attempt."""
        if isinstance(exc, ValueError):
            raise exc
        delay = next(self._delays, None)
        if delay is None:
            raise PublishFailed(self._what, self._retry.attempts, exc) from exc
        return delay


@dataclass(frozen=True, slots=True)
class PokeJob:
    """One poke to publish: the version key's compare-and-set, then ``data`` on
    ``channel`` when :meth:`outcome` says it is not stale."""

    project: int
    version: int
    data: bytes

    @classmethod
    def of(
        cls,
        project: int,
        version: int,
        *,
        ts: float | None = None,
        events: Sequence[Mapping[str, Any]] | None = None,
    ) -> PokeJob:
        return cls(project, version, poke_message(project, version, ts=ts, events=events))

    @property
    def channel(self) -> str:
        return project_channel(self.project)

    @property
    def what(self) -> str:
        return f"poke project={self.project} version={self.version}"

    def outcome(self, stored: int) -> Outcome:
        """``stored``: the version key's value after the compare-and-set."""
        return Outcome(self.project, self.version, stored)


@dataclass(frozen=True, slots=True)
class RevokeJob:
    """One revocation: kept in Redis (``at``) and then published on the control
    channel."""

    user: int
    project: int
    at: float
    data: bytes

    @classmethod
    def of(cls, user: int, project: int, at: float | None = None) -> RevokeJob:
        """``at``: epoch seconds, default now."""
        when = time.time() if at is None else at
        return cls(user, project, when, revoke_message(user, project, when))

    @property
    def what(self) -> str:
        return f"revoke user={self.user} project={self.project}"


class AppBeats:
    """An app's identity on the control channel and its numbered heartbeats.
    Safe to share between threads (the blocking publisher's heartbeat runs on
    one of its own)."""

    def __init__(self, app_id: str | None = None, client_name: str | None = None) -> None:
        """``app_id``: random by default; ``client_name``: the Redis client name of
        the publisher's connections, if it sets one."""
        self.app_id = app_id or secrets.token_hex(8)
        self.client_name = client_name
        self._seq = 0
        self._lock = threading.Lock()

    @classmethod
    def named(cls, app_id: str | None = None) -> AppBeats:
        """An identity whose connections are named for it (CLIENT SETNAME
        ``tidings-app:<id>``), so push servers tell a dead app from a cut-off one."""
        app_id = app_id or secrets.token_hex(8)
        return cls(app_id, app_client_name(app_id))

    def beat(self, *, push_off: bool = False, failing: int = 0) -> bytes:
        """The next ``app_heartbeat`` (docs/PROTOCOL.md §3.2)."""
        with self._lock:
            self._seq += 1
            seq = self._seq
        return control.app_heartbeat(
            self.app_id, seq, push_off=push_off, client=self.client_name, failing=failing
        )

    def bye(self) -> bytes:
        return control.app_bye(self.app_id)


def poke_message(
    project: int,
    version: int,
    *,
    ts: float | None = None,
    events: Sequence[Mapping[str, Any]] | None = None,
) -> bytes:
    """The poke as published; ``events`` (full push) are dropped past the size
    cap (protocol/poke.py), and clients poll for them instead."""
    if not (valid_version(project) and project > 0) or not valid_version(version):
        raise ValueError(f"project and version are integers in 1..{MAX_VERSION} and 0..")
    stamp = time.time() if ts is None else ts
    carried = None if events is None else tuple(dict(e) for e in events)
    return encode_poke(Poke(project, version, stamp, carried))


def revoke_message(user: int, project: int, at: float) -> bytes:
    if not (valid_version(user) and user > 0 and valid_version(project) and project > 0):
        raise ValueError(f"user and project are integers in 1..{MAX_VERSION}")
    return control.revoke(user, project, at)


def keep_revocations(token_ttl: float = DEFAULT_TTL_SECONDS) -> float:
    """How long a revocation is kept for late push servers: while a token issued
    before it may still be valid."""
    return token_ttl + 2 * LEEWAY_SECONDS


def broker_config(
    url: str | None = None, *, sharded: bool | None = None, env: Mapping[str, str] | None = None
) -> RedisConfig:
    """Where Redis is: ``url``, else ``REDIS_URL``, else the local default; a
    cluster by ``redis+cluster://`` or ``TIDINGS_REDIS_CLUSTER=1``; sharded
    pub/sub by ``sharded``, else ``TIDINGS_REDIS_SHARDED`` (it must match the
    push servers'). Raises ``ValueError`` with the reason for a bad URL."""
    config = RedisConfig.from_env(os.environ if env is None else env, url)
    return config if sharded is None else replace(config, sharded=sharded)


class AppIdentity:
    """``app_id`` and ``client_name``, as both publishers show them."""

    _beats: AppBeats

    @property
    def app_id(self) -> str:
        """Names this process in its heartbeats."""
        return self._beats.app_id

    @property
    def client_name(self) -> str | None:
        """The Redis client name of the publisher's connections, if it sets one."""
        return self._beats.client_name
