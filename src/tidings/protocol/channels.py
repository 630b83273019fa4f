"""Broker channel and key names: the only place they are spelled.

Every project-scoped name carries the project id in a Redis Cluster hash tag
(``{42}``), so a project's poke channel and its version key live in the same
slot and sharded pub/sub (SPUBLISH/SSUBSCRIBE) can be switched on without
renaming anything.
"""

from __future__ import annotations

PREFIX = "tidings"

#: Channel on which push servers publish and watch their link heartbeat, and on
#: which the app publishes control messages (revocations).
CONTROL_CHANNEL = f"{PREFIX}:control"


def project_channel(project_id: int) -> str:
    """The channel that carries pokes for one project."""
    return f"{PREFIX}:project:{{{project_id}}}"


def version_key(project_id: int) -> str:
    """The Redis key holding the project's current version (for recovery on subscribe)."""
    return f"{PREFIX}:version:{{{project_id}}}"


def project_of_channel(channel: str) -> int | None:
    """Inverse of :func:`project_channel`; ``None`` for anything else."""
    head = f"{PREFIX}:project:{{"
    if not channel.startswith(head) or not channel.endswith("}"):
        return None
    digits = channel[len(head) : -1]
    if not digits.isdigit():
        return None
    return int(digits)
