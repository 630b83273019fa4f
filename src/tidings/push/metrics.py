"""Push-server counters as plain ints, exposed to Prometheus by a custom collector.

Hot paths (one poke to 10,000 connections) add to an int once per poke, never
call a metrics library per connection; the collector reads the ints only when
``/metrics`` is scraped. prometheus_client (the push extra) is imported only
by the collector: the hub's counters also serve ``tidings sim`` on the core install.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry
    from prometheus_client.core import Metric


class Counters:
    """Monotonic counts; incremented in place by the hub, the server and the link."""

    __slots__ = (
        "apps_gone",
        "audits",
        "broker_invalid",
        "broker_reconnects",
        "connections_refused",
        "heartbeats_sent",
        "packet_floods",
        "pending_evicted",
        "pending_refused",
        "pokes_coalesced",
        "pokes_dropped",
        "pokes_received",
        "pokes_sent",
        "pokes_stale",
        "recovery_pokes",
        "revocations_evicted",
        "revocations_received",
        "revoked_subscriptions",
        "slow_closes",
        "task_restarts",
        "token_expiries",
        "version_reads_failed",
    )

    def __init__(self) -> None:
        self.apps_gone = 0
        self.audits = 0
        self.broker_invalid = 0
        self.broker_reconnects = 0
        self.connections_refused = 0
        self.heartbeats_sent = 0
        self.packet_floods = 0
        self.pending_evicted = 0
        self.pending_refused = 0
        self.pokes_coalesced = 0
        self.pokes_dropped = 0
        self.pokes_received = 0
        self.pokes_sent = 0
        self.pokes_stale = 0
        self.recovery_pokes = 0
        self.revocations_evicted = 0
        self.revocations_received = 0
        self.revoked_subscriptions = 0
        self.slow_closes = 0
        self.task_restarts = 0
        self.token_expiries = 0
        self.version_reads_failed = 0

    def as_dict(self) -> dict[str, int]:
        return {name: int(getattr(self, name)) for name in self.__slots__}


_HELP = {
    "pokes_received": "Valid pokes received from the broker",
    "pokes_stale": "Pokes ignored because a newer version was already known",
    "pokes_sent": "Poke messages written to client connections",
    "pokes_coalesced": "Pokes replaced by a newer one before a slow connection was sent it",
    "pokes_dropped": "Pokes never sent because their slow connection was closed",
    "recovery_pokes": "Pokes sent because a client or the server was behind the version key",
    "revocations_received": "Revocations heard on the control channel or replayed from the broker",
    "revocations_evicted": "Revocations forgotten early because the revocation set was full",
    "revoked_subscriptions": "Projects a connection lost or was refused by a revocation",
    "slow_closes": "Connections closed with 4408 SLOW_CONSUMER",
    "token_expiries": "Connections closed with 4401 because their token expired",
    "heartbeats_sent": "Heartbeat rounds (one per interval, spread over it) and state changes",
    "broker_invalid": "Broker input refused: malformed or out-of-range messages, dropped events",
    "broker_reconnects": "Broker subscription reconnect attempts",
    "connections_refused": "Connections refused (full, rate-limited, draining, bad origin)",
    "pending_evicted": "Oldest pending sockets closed because max_pending were open",
    "pending_refused": "New sockets closed at once: their address had max_pending_per_ip pending",
    "packet_floods": "Socket.IO sessions ended for sending packets past their budget",
    "version_reads_failed": "Failed version-key reads (recovery skipped until the link is ok)",
    "apps_gone": "Silent app processes dropped at once because Redis held no connection "
    "of theirs (they died; a cut-off app's connections stay)",
    "task_restarts": "Long-lived server tasks (the clock, the version reader) started again "
    "after a crash (each crash is logged as task_crashed with its traceback)",
    "audits": "Audits run: every watched project compared with its version key "
    "(watchers found behind are counted in recovery_pokes)",
}


@dataclass(slots=True)
class Gauges:
    """Point-in-time values the collector asks the server for at scrape time."""

    connections: Callable[[], dict[str, int]]
    state: Callable[[], str]
    heartbeat_age: Callable[[], float]
    draining: Callable[[], bool]
    subscribed_projects: Callable[[], int]
    #: App processes heard within ``app_forget_after``, and those of them silent
    #: past ``app_deaf_after`` (any silent app makes the server ``degraded``).
    apps_heard: Callable[[], int]
    apps_silent: Callable[[], int]
    switched_off: Callable[[], bool]
    extra: dict[str, Callable[[], float]] = field(default_factory=dict)


class PushCollector:
    def __init__(self, counters: Counters, gauges: Gauges) -> None:
        self._counters = counters
        self._gauges = gauges

    def collect(self) -> Iterator[Metric]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        for name, value in self._counters.as_dict().items():
            family = CounterMetricFamily(f"tidings_push_{name}", _HELP[name])
            family.add_metric([], value)
            yield family
        g = self._gauges
        conns = GaugeMetricFamily(
            "tidings_push_connections", "Open client connections", labels=["transport"]
        )
        for transport, count in sorted(g.connections().items()):
            conns.add_metric([transport], count)
        yield conns
        state = GaugeMetricFamily(
            "tidings_push_state", "1 for the server's current state", labels=["state"]
        )
        current = g.state()
        for name in ("ok", "degraded", "draining"):
            state.add_metric([name], 1.0 if name == current else 0.0)
        yield state
        yield GaugeMetricFamily(
            "tidings_push_link_heartbeat_age_seconds",
            "Seconds since this server last heard its own link heartbeat",
            value=g.heartbeat_age(),
        )
        yield GaugeMetricFamily(
            "tidings_push_draining", "1 while draining", value=1.0 if g.draining() else 0.0
        )
        yield GaugeMetricFamily(
            "tidings_push_subscribed_projects",
            "Projects with at least one local subscriber",
            value=g.subscribed_projects(),
        )
        yield GaugeMetricFamily(
            "tidings_push_apps_heard",
            "App processes whose heartbeat was heard within app_forget_after",
            value=g.apps_heard(),
        )
        yield GaugeMetricFamily(
            "tidings_push_apps_silent",
            "App processes heard recently but silent past app_deaf_after (state degraded)",
            value=g.apps_silent(),
        )
        yield GaugeMetricFamily(
            "tidings_push_switched_off",
            "1 while an app's heartbeat says the kill switch has push off (state degraded)",
            value=int(g.switched_off()),
        )
        for name, read in g.extra.items():
            yield GaugeMetricFamily(f"tidings_push_{name}", name, value=read())
        yield GaugeMetricFamily(
            "tidings_push_gc_frozen_objects",
            "Objects frozen out of the garbage collector's walks at start (tidings/heap.py)",
            value=gc.get_freeze_count(),
        )
        try:
            # Scraped on the server's loop; a task count that only grows is a leak
            # (bench/churn.py checks it returns to its baseline).
            tasks = len(asyncio.all_tasks())
        except RuntimeError:  # rendered outside a running loop
            return
        yield GaugeMetricFamily(
            "tidings_push_asyncio_tasks", "Live asyncio tasks on the server's loop", value=tasks
        )


def registry(counters: Counters, gauges: Gauges) -> CollectorRegistry:
    """A registry per server (several may share a process in tests and the demo)."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.gc_collector import GCCollector
    from prometheus_client.process_collector import ProcessCollector

    reg = CollectorRegistry(auto_describe=False)
    reg.register(PushCollector(counters, gauges))
    ProcessCollector(registry=reg)
    GCCollector(registry=reg)  # collections per generation: a storm's collector cost
    return reg


def render(reg: CollectorRegistry) -> bytes:
    from prometheus_client import generate_latest

    return bytes(generate_latest(reg))
