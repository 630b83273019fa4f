"""The app's Prometheus metrics, on a registry of its own (one per app instance,
so tests and the demo can run several apps in one process).
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tidings.app.recent import RecentStaleness


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.polls = Counter(
            "tidings_polls_total",
            "Poll answers by outcome: up_to_date (no store read), not_modified (304), "
            "events, reload",
            ["outcome"],
            registry=r,
        )
        self.store_reads = Counter(
            "tidings_store_reads_total",
            "Database reads made by the poll path, by kind",
            ["kind"],
            registry=r,
        )
        self.commands = Counter(
            "tidings_commands_total", "Commands by outcome", ["outcome"], registry=r
        )
        #: Their children by outcome, made on first use (a series appears with its first count).
        self._commands_by: dict[str, Counter] = {}
        self.published = Counter(
            "tidings_pokes_published_total", "Pokes published after commit", registry=r
        )
        self.publish_failures = Counter(
            "tidings_publish_failures_total",
            "Pokes that could not be published (clients catch up by polling)",
            registry=r,
        )
        self.publish_dropped = Counter(
            "tidings_publish_dropped_total",
            "Pokes dropped because the publish queue was full",
            registry=r,
        )
        self.revocations = Counter(
            "tidings_revocations_total",
            "Revoke control messages after a member's removal, by outcome "
            "(published, failed: push servers then rely on token expiry)",
            ["outcome"],
            registry=r,
        )
        self.sweeper_checked = Counter(
            "tidings_sweeper_checked_total",
            "Recently changed projects the sweeper compared with their version keys",
            registry=r,
        )
        self.sweeper_healed = Counter(
            "tidings_sweeper_healed_total",
            "Pokes the sweeper published for versions ahead of their key (a poke lost "
            "before the broker, e.g. an app process that died before publishing)",
            registry=r,
        )
        self.sweeper_errors = Counter(
            "tidings_sweeper_errors_total",
            "Sweeper passes cut short by an error, by step (store, get_versions, heal); "
            "the next pass retries",
            ["op"],
            registry=r,
        )
        self.broker_errors = Counter(
            "tidings_broker_errors_total", "Broker errors on the app side", ["op"], registry=r
        )
        self.staleness = Histogram(
            "tidings_client_staleness_seconds",
            "Commit-to-applied delay reported by clients",
            ["via"],
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r,
        )
        #: The same samples kept for a minute: the admin page's windowed quantiles.
        self.recent_staleness = RecentStaleness()
        self.missed_pokes = Counter(
            "tidings_client_missed_pokes_total",
            "Polls that found a version no poke announced while push was healthy",
            registry=r,
        )
        self.missed_pokes_ignored = Counter(
            "tidings_client_missed_pokes_ignored_total",
            "Missed pokes reported beyond a user's budget (10 per 5 min), not counted",
            registry=r,
        )
        self.client_polls = Counter(
            "tidings_client_polls_total", "Polls reported by clients' telemetry", registry=r
        )
        # Every error series from the start, at zero: an alert or a rate() needs the
        # series before the first error, not after it.
        for op in ("get_version", "set_version"):
            self.broker_errors.labels(op)
        for op in ("store", "get_versions", "heal"):
            self.sweeper_errors.labels(op)
        for outcome in ("published", "failed"):
            self.revocations.labels(outcome)

    def command(self, outcome: str) -> Counter:
        """``commands.labels(outcome)``, looked up once (``labels`` takes a lock each call)."""
        child = self._commands_by.get(outcome)
        if child is None:
            child = self._commands_by[outcome] = self.commands.labels(outcome)
        return child

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))

    def snapshot(self) -> dict[str, Any]:
        """Counter values by metric and label, plus staleness quantiles by ``via``: since
        the start (the upper bound of the bucket holding the quantile: coarse but honest)
        and over the last minute's samples (exact, with their count)."""
        counters: dict[str, Any] = {}
        staleness: dict[str, dict[str, float | None]] = {}
        for family in self.registry.collect():
            if family.type == "counter":
                for sample in family.samples:
                    if sample.name.endswith("_total"):
                        label = next(iter(sample.labels.values()), None)
                        name = family.name.removeprefix("tidings_")
                        if label is None:
                            counters[name] = sample.value
                        else:
                            counters.setdefault(name, {})[label] = sample.value
            elif family.name == "tidings_client_staleness_seconds":
                buckets: dict[str, list[tuple[float, float]]] = {}
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        bound = float(sample.labels["le"])
                        buckets.setdefault(sample.labels["via"], []).append((bound, sample.value))
                for via, rows in buckets.items():
                    staleness[via] = {
                        "count": rows[-1][1],
                        "p50": _quantile(rows, 0.5),
                        "p99": _quantile(rows, 0.99),
                    }
        return {
            "counters": counters,
            "staleness_seconds": staleness,
            "staleness_window": self.recent_staleness.quantiles(time.monotonic()),
        }


def _quantile(cumulative: list[tuple[float, float]], q: float) -> float | None:
    total = cumulative[-1][1] if cumulative else 0
    if not total:
        return None
    for bound, count in cumulative:
        if count >= q * total:
            return bound
    return None
