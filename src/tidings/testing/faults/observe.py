"""Verdicts on a fault run: what each fault cost the clients, and what must hold.

``judge(result)`` turns the raw record of faults/run.py (every client's
status changes and applied events, the writes with their commit times, the
poll counts, the fault windows) into one row per fault and a list of broken
promises, empty when the run kept every one:

- every client ends with the server's version and projected state, having
  applied each version at most once (no lost or duplicated update);
- no client ever shows its user an error (status ``offline``);
- staleness p99 of changes committed during a fault (and until every client is
  live again) stays within that fault's bound: one short poll interval with
  jitter, plus the time the system needs to notice the fault (stated per fault),
  plus ``MARGIN``;
- after the fault, staleness is back at push-level within ``RECOVER_LIMIT``;
- reconnects after each drain are spread: the busiest ``BUCKET`` holds at most
  twice an even spread over the drain window;
- the clients' poll rate during a fault stays within the fallback budget.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

#: Allowance for a poll's own latency and the poke delay (0.25 s) on a shared,
#: contended 2-core machine (seconds).
MARGIN = 1.5
#: Staleness at or below this is push-level (poke delay + one up-to-date poll, with
#: room for the machine).
PUSH_LEVEL = 1.5
#: Push-level must be back within this many seconds of a fault's end.
RECOVER_LIMIT = 8.0
#: Width of a reconnect-rate bucket (seconds).
BUCKET = 1.0
#: Recovery is judged on one-second bins of commit time, by their p95.
RECOVERY_BIN = 1.0
#: Poll budget: clients / short interval, times this factor, plus one poll per
#: watcher per change (pokes that still arrive start polls too).
BUDGET_FACTOR = 1.5


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    s = sorted(values)
    k = min(len(s) - 1, max(0, math.ceil(q / 100 * len(s)) - 1))
    return s[k]


def detection_allowance(name: str, intervals: dict[str, float]) -> tuple[float, str]:
    """Seconds the system needs to notice each fault before clients poll faster."""
    hb = intervals["heartbeat"]
    if name in ("redis_restart", "redis_pause"):
        # A push server's link heartbeat is missed for 3 s, then clients hear `degraded`.
        return 3.0 + hb, "link heartbeat lost (3 s) + one client heartbeat"
    if name in ("pokes_dropped", "kill9_app"):
        # Push servers stop hearing the cut-off (or dead) app's heartbeat for 3 s
        # (app_deaf_after), then clients hear `degraded` and poll at the short interval.
        return 3.0 + hb, "app heartbeat silent (3 s) + one client heartbeat"
    if name == "client_stall":
        return 2.5 * hb, "the stalled client misses 2.5 heartbeats"
    return 0.0, "connection closed or drain announced at once"


@dataclass
class Row:
    fault: str
    start: float
    end: float
    detect_s: float | None
    affected: float
    recover_s: float | None
    all_live_after: float | None
    staleness_p99: float
    staleness_max: float
    samples: int
    bound: float
    bound_why: str
    poll_rate: float
    poll_peak: int
    poll_budget: float
    lost: int
    notes: dict[str, Any] = field(default_factory=dict)


def judge(result: dict[str, Any]) -> tuple[list[Row], list[str], dict[str, Any]]:
    cfg = result["config"]
    iv = cfg["intervals"]
    clients = result["clients"]
    failures: list[str] = []
    summary: dict[str, Any] = {}

    # ----- end state: nothing lost, nothing doubled ---------------------------
    server = {int(p): (int(v), d) for p, (v, d) in result["server"].items()}
    if not result["converged"]:
        failures.append("some client did not reach the server's versions in time")
    wrong = [
        c["name"]
        for c in clients
        for p, got in c["final"].items()
        if got is None or (int(got[0]), got[1]) != server[int(p)]
    ]
    if wrong:
        failures.append(f"{len(wrong)} client projects differ from the server: {wrong[:5]}")
    duplicates = 0
    for c in clients:
        seen: dict[int, set[int]] = defaultdict(set)
        for project, version, _, _ in c["applied"]:
            if version in seen[project]:
                duplicates += 1
            seen[project].add(version)
    if duplicates:
        failures.append(f"{duplicates} events applied twice")
    offline = [c["name"] for c in clients if any(s == "offline" for _, s in c["statuses"])]
    if offline:
        when = sorted(t for c in clients for t, s in c["statuses"] if s == "offline")
        during = sorted(
            {f["name"] for f in result["faults"] for t in when if f["start"] <= t <= f["end"] + 10}
        )
        t0 = result["started_at"]
        failures.append(
            f"{len(offline)} clients showed an error (offline): {offline[:5]}, "
            f"from {when[0] - t0:.1f} s to {when[-1] - t0:.1f} s (during or just after {during})"
        )
    if result["write_errors"]:
        failures.append(f"writers gave up on {len(result['write_errors'])} commands")
    summary.update(
        clients=len(clients),
        writes=len(result["writes"]),
        write_retries=result["write_retries"],
        mismatched=len(wrong),
        duplicates=duplicates,
        offline=len(offline),
    )

    # ----- per fault -------------------------------------------------------------
    watchers: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for c in clients:
        for p in c["projects"]:
            watchers[int(p)].append(c)
    applied_at: dict[tuple[str, int, int], float] = {}
    samples: list[tuple[float, float, str]] = []  # (commit ts, staleness, client)
    for c in clients:
        for project, version, ts, at in c["applied"]:
            applied_at[(c["name"], int(project), int(version))] = at
            samples.append((ts, at - ts, c["name"]))
    reloaded: dict[tuple[str, int], list[int]] = defaultdict(list)
    for c in clients:
        for project, version, _ in c["reloads"]:
            reloaded[(c["name"], int(project))].append(int(version))
    polls = {int(s): int(n) for s, n in result["polls"]}
    mean_watchers = sum(len(w) for w in watchers.values()) / max(1, len(watchers))
    budget = BUDGET_FACTOR * len(clients) / iv["short"] + cfg["write_rate"] * mean_watchers
    stalled = {c["name"] for c in clients if c["stalled"]}
    last_write = max((w["ts"] for w in result["writes"]), default=0.0)

    faults = result["faults"]
    rows: list[Row] = []
    for f in faults:
        name, start, end = f["name"], f["start"], f["end"]
        later = [g["start"] for g in faults if g["start"] > end]
        # A change committed within PUSH_LEVEL of the next fault's start reaches
        # clients after it began: that fault, not this one, decides its staleness
        # (a change just before a Redis pause waits out the pause). It is judged
        # in the next fault's window (``lead`` below), not in this recovery.
        horizon = min(later) - PUSH_LEVEL if later else last_write
        lead = start - PUSH_LEVEL
        live_after = f["all_live_after"]
        until = end + (live_after if live_after is not None else 0.0)
        # Faults that overlap share the most lenient of their bounds.
        allowance, why = max(
            detection_allowance(g["name"], iv)
            for g in faults
            if (g["start"] <= until and g["end"] >= start and g["name"] != "client_stall") or g is f
        )
        bound = allowance + iv["short"] * (1 + iv["jitter"]) + MARGIN
        if name == "client_stall":
            # The others must not notice; the stalled client gets the detection allowance.
            during = [s for ts, s, who in samples if start <= ts <= until and who not in stalled]
            mine = [s for ts, s, who in samples if start <= ts <= until and who in stalled]
            if mine and max(mine) > bound:
                failures.append(f"client_stall: the stalled client's staleness {max(mine):.2f} s")
            others = [
                detection_allowance(g["name"], iv)
                for g in faults
                if g["start"] <= until and g["end"] >= start and g is not f
            ]
            allowance, why = max(others, default=(0.0, "no other fault"))
            bound = allowance + iv["short"] * (1 + iv["jitter"]) + MARGIN
            why = f"the others: as without the stall ({why})"
        else:
            during = [s for ts, s, _ in samples if lead <= ts <= until]
        p99 = percentile(during, 99)
        if during and p99 > bound:
            failures.append(f"{name}: staleness p99 {p99:.2f} s > bound {bound:.2f} s ({why})")

        # Detection: each client's first status other than `live` after the start.
        delays = []
        for c in clients:
            if c["name"] in stalled:
                continue
            for t, s in c["statuses"]:
                if t >= start and s != "live" and t <= until + 1.0:
                    delays.append(t - start)
                    break
        detect = percentile(delays, 50) if delays else None
        if name == "client_stall":
            detect = next(
                (
                    t - start
                    for c in clients
                    if c["name"] in stalled
                    for t, s in c["statuses"]
                    if t >= start and s != "live"
                ),
                None,
            )
        affected = len(delays) / max(1, len(clients) - len(stalled))

        recover = _recovered_after(samples, end, horizon)
        if recover is None or recover > RECOVER_LIMIT:
            failures.append(f"{name}: staleness not back at push-level within {RECOVER_LIMIT} s")

        # Whole seconds from the fault's start until every client was live again.
        secs = range(int(start), int(until) + 1)
        counts = [polls.get(s, 0) for s in secs]
        rate = sum(counts) / len(counts)
        peak = max(counts) if counts else 0
        if rate > budget:
            failures.append(f"{name}: poll rate {rate:.0f}/s over the budget {budget:.0f}/s")

        lost = 0
        for w in result["writes"]:
            if not start <= w["ts"] <= end:
                continue
            for c in watchers[int(w["project"])]:
                key = (c["name"], int(w["project"]), int(w["version"]))
                if key not in applied_at and not any(
                    v >= w["version"] for v in reloaded[(c["name"], int(w["project"]))]
                ):
                    lost += 1
        if lost:
            failures.append(f"{name}: {lost} updates never reached their watchers")

        notes: dict[str, Any] = {k: v for k, v in f["notes"].items() if k != "drains"}
        off = _time_off_live(clients, stalled, start, until)
        if off:
            notes["off_live_s_p50"] = round(percentile(off, 50), 2)
            notes["off_live_s_max"] = round(max(off), 2)
        if name == "rolling_restart":
            notes["drains"] = _reconnect_spread(f["notes"]["drains"], clients, iv, failures)
        if name == "client_stall":
            notes["stalled_live_again_s"] = _stalled_recovery(clients, stalled, end)
            if notes["stalled_live_again_s"] is None:
                failures.append("client_stall: the stalled client never became live again")
        rows.append(
            Row(
                fault=name,
                start=start,
                end=end,
                detect_s=detect,
                affected=affected,
                recover_s=recover,
                all_live_after=live_after,
                staleness_p99=p99,
                staleness_max=max(during) if during else math.nan,
                samples=len(during),
                bound=bound,
                bound_why=why,
                poll_rate=rate,
                poll_peak=peak,
                poll_budget=budget,
                lost=lost,
                notes=notes,
            )
        )
    base = result["baseline"]
    base_samples = [s for ts, s, _ in samples if base["start"] <= ts <= base["end"]]
    summary["baseline_staleness_p50"] = percentile(base_samples, 50)
    summary["baseline_staleness_p99"] = percentile(base_samples, 99)
    # Per transport, over the whole run (faults included): no transport may lag.
    transport_of = {c["name"]: c["transport"] for c in clients}
    by_transport: dict[str, dict[str, Any]] = {}
    for transport in sorted(set(transport_of.values())):
        mine = [s for _, s, who in samples if transport_of[who] == transport]
        by_transport[transport] = {
            "clients": sum(t == transport for t in transport_of.values()),
            "samples": len(mine),
            "staleness_p50": percentile(mine, 50),
            "staleness_p99": percentile(mine, 99),
        }
    summary["by_transport"] = by_transport
    summary["poll_budget"] = budget
    return rows, failures, summary


def _recovered_after(
    samples: list[tuple[float, float, str]], end: float, horizon: float
) -> float | None:
    """Seconds after ``end`` from which every one-second bin of commits up to
    ``horizon`` has its p95 staleness at push-level; None if never."""
    bins: dict[int, list[float]] = defaultdict(list)
    for ts, s, _ in samples:
        if end <= ts < horizon:
            bins[int((ts - end) / RECOVERY_BIN)].append(s)
    if not bins:
        return None
    recovered: int | None = None
    for b in sorted(bins, reverse=True):
        if percentile(bins[b], 95) > PUSH_LEVEL:
            break
        recovered = b
    return None if recovered is None else recovered * RECOVERY_BIN


def _reconnect_spread(
    drains: list[dict[str, Any]],
    clients: list[dict[str, Any]],
    iv: dict[str, float],
    failures: list[str],
) -> list[dict[str, Any]]:
    """Clients' returns to ``live`` after each drain, in BUCKET-wide buckets from its start."""
    window = iv["drain_window"]
    out = []
    for n, d in enumerate(drains):
        # Returns after this drain and before the next one began.
        horizon = min([d["start"] + window + 2 * BUCKET, *(e["start"] for e in drains[n + 1 :])])
        times = []
        for c in clients:
            went_down = False
            for t, s in c["statuses"]:
                if t < d["start"]:
                    continue
                if s != "live":
                    went_down = True
                elif went_down and t < horizon:
                    times.append(t - d["start"])
                    break
        n_buckets = math.ceil((window + 2 * BUCKET) / BUCKET)
        buckets = [0] * n_buckets
        for t in times:
            buckets[min(n_buckets - 1, int(t / BUCKET))] += 1
        even = len(times) * BUCKET / window
        peak = max(buckets) if buckets else 0
        if times and peak > 2 * even:
            failures.append(
                f"rolling_restart {d['server']}: peak {peak} reconnects per {BUCKET} s"
                f" > 2 x {even:.1f}"
            )
        out.append(
            {
                "server": d["server"],
                "clients": d["clients"],
                "reconnects": len(times),
                "buckets": buckets,
                "even": even,
                "peak": peak,
            }
        )
    return out


def _time_off_live(
    clients: list[dict[str, Any]], stalled: set[str], start: float, until: float
) -> list[float]:
    """Per client that left ``live`` during the fault: seconds until it was back."""
    out = []
    for c in clients:
        if c["name"] in stalled:
            continue
        down: float | None = None
        for t, s in c["statuses"]:
            if t < start or (down is None and t > until + 1.0):
                continue
            if s != "live" and down is None:
                down = t
            elif s == "live" and down is not None:
                out.append(t - down)
                break
    return out


def _stalled_recovery(clients: list[dict[str, Any]], stalled: set[str], end: float) -> float | None:
    for c in clients:
        if c["name"] in stalled:
            statuses: list[tuple[float, str]] = c["statuses"]
            for t, s in statuses:
                if t >= end and s == "live":
                    return t - end
            return None
    return None


def table(rows: list[Row]) -> str:
    head = (
        f"{'fault':<16}{'detect s':>9}{'affected':>9}{'recover s':>10}"
        f"{'stale p99':>10}{'bound':>7}{'max':>7}{'polls/s':>8}{'peak':>6}{'budget':>7}{'lost':>5}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        det = "-" if r.detect_s is None else f"{r.detect_s:.2f}"
        rec = "never" if r.recover_s is None else f"{r.recover_s:.1f}"
        lines.append(
            f"{r.fault:<16}{det:>9}{r.affected:>8.0%} {rec:>10}{r.staleness_p99:>10.2f}"
            f"{r.bound:>7.1f}{r.staleness_max:>7.2f}{r.poll_rate:>8.0f}{r.poll_peak:>6}"
            f"{r.poll_budget:>7.0f}{r.lost:>5}"
        )
    return "\n".join(lines)
