"""The shared Redis Cluster of ``.ci/run`` for tests: its URL, or skip (fail in CI).

Throwaway clusters and the stack on a cluster are in tidings.testing.cluster.
"""

from __future__ import annotations

import subprocess

from tests.support import require_service, unavailable

#: The shared cluster of .ci/run.
SHARED_FIRST_PORT = 7000


def cluster_ok(port: int) -> bool:
    try:
        out = subprocess.run(
            ["redis-cli", "-p", str(port), "cluster", "info"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "cluster_state:ok" in out


def require_cluster(port: int = SHARED_FIRST_PORT) -> str:
    """The shared cluster's URL; fails under CI, skips otherwise, when it is not up."""
    require_service("Redis Cluster", "127.0.0.1", port)
    if not cluster_ok(port):
        unavailable(f"the Redis Cluster on {port} is not cluster_state:ok")
    seeds = ",".join(f"127.0.0.1:{port + i}" for i in range(3))
    return f"redis+cluster://{seeds}"
