"""The Python client (``SyncClient``) against the real app, push servers, PostgreSQL
and Redis: fresh by poke while push works, no worse than polling while it does
not, and obedient to the kill switch."""

from __future__ import annotations

import time

import pytest

from tests.integration.clients import Followed, all_quiet, following, following_all
from tests.support import until
from tidings.client.actions import Status
from tidings.client.driver import Transport
from tidings.testing.stack import (
    DRAIN_WINDOW,
    FLAG_CACHE_TTL,
    POLL_INTERVAL,
    POLL_INTERVAL_PUSH,
    POLL_JITTER,
    Stack,
)

TRANSPORTS = [Transport.WS, Transport.SSE, Transport.SOCKETIO]

#: "A fraction of a second": commit to applied, by poke.
POKE_LATENCY = 1.0
#: Start-up: client-config, snapshot, token, connect, subscribed.
GO_LIVE = 15.0
#: A poll's own round trip on a busy machine, on top of a computed bound.
SLACK = 0.8
#: One fallback poll interval, jittered, plus slack: a change is seen within it
#: whenever push is not healthy.
FALLBACK_BOUND = POLL_INTERVAL * (1 + POLL_JITTER) + SLACK
#: A client relying on push hears of a flag change at its next poll: within one
#: long interval, jittered. (Other app processes may serve their cached flags for
#: FLAG_CACHE_TTL more; the one here drops its cache on PUT /api/admin/flags.)
FLAG_OFF_BOUND = POLL_INTERVAL_PUSH * (1 + POLL_JITTER) + SLACK
#: Back on: the next fallback poll says push=true, then token, connect, subscribed.
FLAG_ON_BOUND = POLL_INTERVAL * (1 + POLL_JITTER) + 3.0
#: Push back after a server restart: reconnect attempts every second (test config).
RECONNECT_BOUND = 5.0


async def change_arrives_by_poke(stack: Stack, project: int, clients: list[Followed]) -> None:
    """Make one change when no client has a poll due; every client must apply it
    within POKE_LATENCY, reported as via a poke."""
    await all_quiet(clients)
    counts = {id(c): len(c.seen.samples(project)) for c in clients}
    version, committed = await stack.change(project, "by poke")
    for c in clients:
        await c.until_applied(version, POKE_LATENCY + SLACK)
        latency = c.seen.applied[version] - committed
        assert latency < POKE_LATENCY, f"{c.seen.name}: applied {latency:.3f} s after the commit"
        vias = await c.until_sampled(project, counts[id(c)] + 1)
        assert vias[-1] == "poke", f"{c.seen.name}: came {vias[-1]}, not by poke"
        staleness_ms = c.seen.samples(project)[-1]["staleness_ms"]
        assert staleness_ms < POKE_LATENCY * 1000, f"{c.seen.name}: staleness {staleness_ms} ms"


async def change_arrives_by_poll(stack: Stack, project: int, clients: list[Followed]) -> None:
    """Make one change; every client must apply it within the fallback interval, by poll."""
    counts = {id(c): len(c.seen.samples(project)) for c in clients}
    version, committed = await stack.change(project, "by poll")
    for c in clients:
        await c.until_applied(version, FALLBACK_BOUND + 1.0)
        latency = c.seen.applied[version] - committed
        assert latency < FALLBACK_BOUND, f"{c.seen.name}: applied {latency:.3f} s after the commit"
        vias = await c.until_sampled(project, counts[id(c)] + 1)
        assert vias[-1] == "poll", f"{c.seen.name}: came {vias[-1]} while push was down or off"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_change_arrives_by_poke_within_a_fraction_of_a_second(
    stack: Stack, transport: Transport
) -> None:
    project, _ = await stack.new_project(f"poke {transport}")
    by_poke = 'tidings_client_staleness_seconds_count{via="poke"}'
    before = await stack.app_metric(by_poke)
    async with following(stack, project, transport) as c:
        await c.until_status(Status.LIVE, GO_LIVE)
        for _ in range(3):
            await change_arrives_by_poke(stack, project, [c])
        assert c.seen.missed_pokes == 0
        assert c.status == Status.LIVE

    # The client's reports reached the app: what an operator watches to know push works.
    async def counted() -> bool:
        return await stack.app_metric(by_poke) >= before + 3

    await until(counted, 3.0, "the app to count the client's three samples by poke")


async def test_push_servers_killed_then_polling_then_live_again(stack: Stack) -> None:
    """One client per transport, at once (a push server restart is the slow part)."""
    project, _ = await stack.new_project("push down")
    async with following_all(stack, project, TRANSPORTS) as clients:
        for c in clients:
            await c.until_status(Status.LIVE, GO_LIVE)
        await stack.kill_pushes()
        # SIGKILL closes the sockets at once: the clients notice without waiting for
        # a heartbeat to be overdue.
        for c in clients:
            await c.until_status(Status.PUSH_UNAVAILABLE, 2.0)
        await change_arrives_by_poll(stack, project, clients)
        for c in clients:
            assert c.status == Status.PUSH_UNAVAILABLE
        await stack.start_pushes()
        for c in clients:
            await c.until_status(Status.LIVE, RECONNECT_BOUND)
        await change_arrives_by_poke(stack, project, clients)


async def test_drain_moves_clients_to_the_other_push_server(stack: Stack) -> None:
    """Two push servers share the port (SO_REUSEPORT). SIGTERM on the one holding
    the clients: they hear ``drain``, poll meanwhile, reconnect after at most the
    drain window to the survivor, and are live there."""
    await stack.start_pushes(2)
    project, _ = await stack.new_project("drain")
    async with following_all(stack, project, TRANSPORTS) as clients:
        for c in clients:
            await c.until_status(Status.LIVE, GO_LIVE)
        # Drain the first server: afterwards every client is on the second (it was
        # there already, or it moved).
        assert await stack.drain_push(0) == 0
        for c in clients:
            await c.until_status(Status.LIVE, RECONNECT_BOUND)
        await stack.start_pushes(2)
        # Now the second server certainly holds every client: drain it.
        marks = {id(c): len(c.seen.statuses) for c in clients}
        started = time.monotonic()
        assert await stack.drain_push(1) == 0
        for c in clients:
            since_drain = c.seen.statuses[marks[id(c)] :]
            assert Status.PUSH_UNAVAILABLE in [s for _, s in since_drain], (
                f"{c.seen.name}: the drain went unnoticed: {since_drain}"
            )
            await c.until_status(Status.LIVE, RECONNECT_BOUND)
        assert time.monotonic() - started < DRAIN_WINDOW + RECONNECT_BOUND
        await change_arrives_by_poke(stack, project, clients)
        for c in clients:
            assert c.seen.missed_pokes == 0, c.seen.reports


async def test_kill_switch_off_then_on(stack: Stack) -> None:
    """Off (``tidings flags push off``, as an operator does): within the app's flag
    cache plus one (long) poll interval every client polls at the short one and
    holds no push connection, so pokes cannot reach it. On (the admin API, which
    drops the cache): live again."""
    project, _ = await stack.new_project("kill switch")
    async with following_all(stack, project, TRANSPORTS) as clients:
        for c in clients:
            await c.until_status(Status.LIVE, GO_LIVE)
        await stack.set_push_cli(False)
        for c in clients:
            await c.until_status(Status.PUSH_OFF, FLAG_CACHE_TTL + FLAG_OFF_BOUND)
            # The controller wants no connection; the driver closed it.
            assert c.push_state() == "off"
        await change_arrives_by_poll(stack, project, clients)
        for c in clients:
            assert c.status == Status.PUSH_OFF
        await stack.set_push(True)
        for c in clients:
            await c.until_status(Status.LIVE, FLAG_ON_BOUND)
        await change_arrives_by_poke(stack, project, clients)
