"""Broker channel and key names: the only place they are spelled.

Every project-scoped name carries the project id in a Redis Cluster hash tag
(``{42}``), so a project's poke channel and its version key live in the same
slot and sharded pub/sub (SPUBLISH/SSUBSCRIBE) can be switched on without
renaming anything.
"""

from __future__ import annotations

PREFIX = "tidings"

#: Channel on which the app publishes control messages (revocations, its own
#: heartbeat): every push server subscribes to it.
CONTROL_CHANNEL = f"{PREFIX}:control"

#: Channel on which push servers publish their figures; only the app listens.
STATS_CHANNEL = f"{PREFIX}:stats"


def link_channel(server: str) -> str:
    """The channel on which one push server publishes and watches its own link
    heartbeat. One per server: on a shared channel every server would receive
    every other's heartbeat, S^2 messages a second for S servers."""
    return f"{PREFIX}:link:{server}"


def probe_channel(owner: str, tag: str) -> str:
    """A channel on which one subscriber probes one of its Redis Cluster links:
    ``tag`` is the hash tag, chosen so that the channel's slot is served by the
    shard that link listens to (broker/redis_subscriber.py). Only its owner
    subscribes to it."""
    return f"{PREFIX}:probe:{owner}:{{{tag}}}"


#: A sorted set of recent ``revoke`` messages (scored by their ``at``) that the
#: app keeps beside publishing them, so a push server that starts, or whose
#: link was down when one was published, still learns of it (PROTOCOL.md §3.2).
REVOCATIONS_KEY = f"{PREFIX}:revocations"


def app_client_name(app: str) -> str:
    """The Redis client name of an app process's connections (``app_heartbeat``'s
    ``client``): push servers look for it in CLIENT LIST when the app goes silent."""
    return f"{PREFIX}-app:{app}"


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
