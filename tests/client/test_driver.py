"""The asyncio driver against small fake servers: it polls, follows pokes over
WebSocket and SSE, refetches its token after 4401, and reports telemetry."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from tests.support import until
from tidings.client.actions import Status
from tidings.client.driver import ClientOptions, Endpoints, SyncClient, Transport
from tidings.protocol.advice import Advice

from .fake_servers import PROJECT, FakeApp

#: Cadences so slow that only a poke can explain a change seen within a second.
SLOW = Advice(push=True, interval=60, fallback_interval=60, jitter=0.1)
#: Fast polling, push off.
FAST = Advice(push=False, interval=0.2, fallback_interval=0.2, jitter=0.1)


class Seen:
    def __init__(self) -> None:
        self.versions: list[int] = []
        self.statuses: list[Status] = []
        self.changed = asyncio.Event()

    def apply(self, project: int, events: Any, snapshot: Any) -> None:
        self.versions.extend(e["version"] for e in events)
        self.changed.set()

    def status(self, status: Status) -> None:
        self.statuses.append(status)
        self.changed.set()

    async def until(self, check: Callable[[], bool], within: float = 3.0) -> None:
        await until(
            check,
            within,
            "the client",
            wake=self.changed,
            detail=lambda: f"versions={self.versions} statuses={self.statuses}",
        )


@contextlib.asynccontextmanager
async def started(
    app: FakeApp, transport: Transport, **controller: Any
) -> AsyncIterator[tuple[SyncClient, Seen]]:
    seen = Seen()
    http = httpx.AsyncClient(base_url="http://app", transport=app.transport(), timeout=5)
    client = SyncClient(
        ClientOptions(
            url="http://app",
            projects=[PROJECT],
            api_token="api-token",
            transport=transport,
            controller={"poke_delay": 0.01, **controller},
        ),
        on_apply=seen.apply,
        on_status=seen.status,
        http=http,
    )
    runner = asyncio.ensure_future(client.run())
    try:
        yield client, seen
    finally:
        client.stop()
        await asyncio.wait_for(runner, 5)
        await http.aclose()


@pytest.fixture
async def ws_app() -> AsyncIterator[FakeApp]:
    app = FakeApp(SLOW, push=True)
    await app.start_ws()
    yield app
    await app.stop_ws()


async def test_client_sees_a_change_via_websocket_poke_within_a_second(ws_app: FakeApp) -> None:
    async with started(ws_app, Transport.WS) as (client, seen):
        await seen.until(lambda: Status.LIVE in seen.statuses)
        event = ws_app.change("project_renamed", {"name": "Shop"})
        began = time.monotonic()
        await ws_app.publish(event)
        await seen.until(lambda: event["version"] in seen.versions)
        assert time.monotonic() - began < 1.0
        snapshot = client.snapshot(PROJECT)
        assert snapshot is not None and snapshot["name"] == "Shop"
        assert set(ws_app.subscribes[0]["projects"]) == {str(PROJECT)}


async def test_client_sees_a_change_via_sse_poke_within_a_second() -> None:
    app = FakeApp(SLOW, push=True)
    async with started(app, Transport.SSE) as (_, seen):
        await seen.until(lambda: Status.LIVE in seen.statuses)
        event = app.change("project_renamed", {"name": "Shop"})
        began = time.monotonic()
        await app.publish(event)
        await seen.until(lambda: event["version"] in seen.versions)
        assert time.monotonic() - began < 1.0


async def test_client_polls_when_push_is_disabled() -> None:
    app = FakeApp(FAST, push=False)
    async with started(app, Transport.WS) as (_, seen):
        await seen.until(lambda: Status.PUSH_OFF in seen.statuses)
        event = app.change("project_renamed", {"name": "Polled"})
        await seen.until(lambda: event["version"] in seen.versions)
        assert app.tokens_issued == 0


async def test_client_takes_push_up_when_the_kill_switch_flips_back_on() -> None:
    app = FakeApp(FAST, push=False)
    await app.start_ws()
    try:
        async with started(app, Transport.WS) as (_, seen):
            await seen.until(lambda: Status.PUSH_OFF in seen.statuses)
            assert app.tokens_issued == 0
            app.advice = Advice(push=True, interval=60, fallback_interval=0.2, jitter=0.1)
            await seen.until(lambda: Status.LIVE in seen.statuses)
            event = app.change("project_renamed", {"name": "Pushed"})
            await app.publish(event)
            await seen.until(lambda: event["version"] in seen.versions)
    finally:
        await app.stop_ws()


async def test_client_fetches_a_new_token_after_4401(ws_app: FakeApp) -> None:
    ws_app.ws_close_first_with = 4401
    async with started(ws_app, Transport.WS, push_backoff_floor=0.05, push_backoff_base=0.1) as (
        _,
        seen,
    ):
        await seen.until(lambda: Status.LIVE in seen.statuses)
        assert ws_app.tokens_issued == 2
        assert [s["token"] for s in ws_app.subscribes] == ["tok-1", "tok-2"]


async def test_sse_close_message_code_is_honoured() -> None:
    app = FakeApp(SLOW, push=True)
    app.sse_close_first_with = 4401
    fast = {"push_backoff_floor": 0.05, "push_backoff_base": 0.1}
    async with started(app, Transport.SSE, **fast) as (_, seen):
        await seen.until(lambda: Status.LIVE in seen.statuses)
        assert [s["token"] for s in app.subscribes] == ["tok-1", "tok-2"]


async def test_client_reports_telemetry(ws_app: FakeApp) -> None:
    async with started(ws_app, Transport.WS, telemetry_interval=0.3) as (_, seen):
        await seen.until(lambda: Status.LIVE in seen.statuses)
        event = ws_app.change("project_renamed", {"name": "Shop"})
        await ws_app.publish(event)
        await seen.until(lambda: event["version"] in seen.versions)
        await seen.until(lambda: bool(ws_app.telemetry), within=2)
    samples = [s for report in ws_app.telemetry for s in report.samples]
    assert [s.via for s in samples] == ["poke"]


async def test_client_follows_another_apps_urls_and_event_rules() -> None:
    """Endpoints name an app's own URLs; without a several-projects poll, each
    project is polled on its own; apply_event applies that app's events."""
    paths: list[str] = []
    events: dict[int, list[dict[str, Any]]] = {
        3: [{"version": 2, "type": "renamed", "data": {"name": "Shop"}, "ts": time.time()}]
    }

    def handle(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        paths.append(path)
        if path == "/cfg":
            return httpx.Response(200, json={"advice": FAST.to_json()})
        parts = path.split("/")
        list_id = int(parts[2])
        if parts[1:] == ["lists", str(list_id)]:
            return httpx.Response(200, json={"version": 1, "name": "List"})
        since = int(request.url.params["since"])
        news = [e for e in events.get(list_id, []) if e["version"] > since]
        version = max([since, *(e["version"] for e in news)])
        body = {"version": version, "events": news, "advice": FAST.to_json()}
        return httpx.Response(200, json=body)

    def apply_event(snapshot: dict[str, Any], event: dict[str, Any]) -> None:
        snapshot["name"] = event["data"]["name"]
        snapshot["version"] = event["version"]

    seen = Seen()
    http = httpx.AsyncClient(base_url="http://app", transport=httpx.MockTransport(handle))
    client = SyncClient(
        ClientOptions(
            url="http://app",
            projects=[3, 4],
            endpoints=Endpoints(
                config="/cfg",
                snapshot="/lists/{project}",
                events="/lists/{project}/events",
                poll=None,
            ),
            apply_event=apply_event,
        ),
        on_apply=seen.apply,
        http=http,
    )
    runner = asyncio.ensure_future(client.run())
    try:
        await seen.until(lambda: 2 in seen.versions)
        await until(lambda: "/lists/4/events" in paths, 3.0, "list 4 polled")
        snapshot = client.snapshot(3)
        assert snapshot is not None and snapshot == {"version": 2, "name": "Shop"}
        assert not [p for p in paths if p.startswith("/api/")], paths
    finally:
        client.stop()
        await asyncio.wait_for(runner, 5)
        await http.aclose()
