"""The poll answer's advice from an app's own push flags: the kill switch, a
rollout percentage and per-project overrides.

Pure functions over plain values: the app keeps its flags wherever it likes
(our tracker keeps them in its database, store/flags.py) and asks here, per
poll answer, what to advise. The advice travels in the ``Tidings-Advice``
header and the body's ``advice`` field (docs/PROTOCOL.md §5.2).
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from typing import Any

from tidings.protocol.advice import ADVICE_HEADER, Advice

__all__ = [
    "ADVICE_HEADER",
    "Advice",
    "Cadence",
    "PushFlags",
    "advise",
    "push_off_for_all",
    "push_on",
    "rollout_bucket",
]


@dataclass(frozen=True, slots=True)
class PushFlags:
    enabled: bool = True
    rollout_percent: int = 100
    #: project id -> forced on (True) or off (False); absent means "follow the global".
    projects: dict[int, bool] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "rollout_percent": self.rollout_percent,
            "projects": {str(p): on for p, on in sorted(self.projects.items())},
        }


@functools.lru_cache(maxsize=100_000)
def rollout_bucket(user_id: int) -> int:
    """A stable bucket in [0, 100): the same user is always in or out together."""
    digest = hashlib.sha256(f"tidings-rollout:{user_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100


def push_on(flags: PushFlags, user_id: int, project_id: int | None = None) -> bool:
    """Whether push applies to this user (and project).

    The kill switch wins over everything; a project override wins over the
    rollout percentage.
    """
    if not flags.enabled:
        return False
    if project_id is not None and project_id in flags.projects:
        return flags.projects[project_id]
    return rollout_bucket(user_id) < flags.rollout_percent


def push_off_for_all(flags: PushFlags) -> bool:
    """Whether push applies to no user and no project: the kill switch, or a
    rollout of 0% with no project forced on."""
    if not flags.enabled:
        return True
    return flags.rollout_percent == 0 and not any(flags.projects.values())


@dataclass(frozen=True, slots=True)
class Cadence:
    """How often clients poll (seconds); the defaults are the tracker's."""

    #: Between polls while push is healthy: a safety net, so it may be long.
    interval_push: float = 300.0
    #: Between polls while push is off, down or degraded: what the app polled at before push.
    interval: float = 5.0
    #: Each interval is multiplied by a uniform factor in [1 - jitter, 1 + jitter].
    jitter: float = 0.2

    def __post_init__(self) -> None:
        if not (self.interval > 0 and self.interval_push > 0):
            raise ValueError("poll intervals are positive (seconds)")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")


def advise(
    flags: PushFlags, user_id: int, project_id: int | None = None, cadence: Cadence = Cadence()
) -> Advice:
    """The advice for one poll answer: send ``advice.header()`` as the
    ``Tidings-Advice`` header and ``advice.to_json()`` as the body's ``advice``."""
    return Advice(
        push=push_on(flags, user_id, project_id),
        interval=cadence.interval_push,
        fallback_interval=cadence.interval,
        jitter=cadence.jitter,
    )
