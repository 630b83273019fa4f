"""App heartbeats: a push server that stops hearing an app stops promising push.

The unit tests drive ``AppWatch`` with a fake clock. The end-to-end test runs a
real app (in-process, SQLite) whose only path to Redis goes through a
black-hole proxy, a real push server whose own Redis link stays healthy, and a
WebSocket client: the app's pokes are lost, so the client must hear
``degraded`` (and poll at the short interval), then ``ok`` and a recovery poke
for the change committed during the fault once the path heals.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import websockets

from tests.app.conftest import CHEAP_HASHER, Stack
from tests.conftest import free_port
from tests.support import until
from tidings.app.main import build_services, create_app
from tidings.app.services import Services
from tidings.app.settings import AppSettings, PushUrls
from tidings.broker.redis_subscriber import RedisSubscriber
from tidings.protocol.channels import app_client_name
from tidings.protocol.push import ServerState
from tidings.push.apps import MAX_APPS, AppWatch
from tidings.push.server import PushServer
from tidings.testing.database import offset_project_ids
from tidings.testing.faults.proxy import Proxy
from tidings.testing.waiting import wait_http_ok

from .conftest import FAST, KEYS
from .test_redis_integration import TIMEOUT, next_of, recv_json, subscribe_msg


def state_of(server: PushServer) -> ServerState:
    """The hub's state read afresh: a type checker keeps ``hub.state`` narrowed across awaits."""
    return server.hub.state


# -- AppWatch, on a fake clock -------------------------------------------------


def test_an_app_heard_recently_and_then_silent_is_reported_until_heard_again() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    assert watch.silent(0.0) == []
    watch.heard("a", 0.0)
    watch.heard("b", 0.0)
    assert watch.silent(3.0) == []  # exactly deaf_after is still fine
    watch.heard("b", 2.0)
    assert watch.silent(3.5) == ["a"]
    watch.heard("a", 4.0)
    assert watch.silent(4.0) == []
    assert watch.silent(5.5) == ["b"]


def test_a_goodbye_ends_the_silence_at_once() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    watch.heard("a", 0.0)
    assert watch.silent(4.0) == ["a"]
    watch.bye("a")
    assert watch.silent(4.0) == [] and watch.known(4.0) == 0
    watch.bye("never heard")  # harmless


def test_an_app_that_died_without_goodbye_is_forgotten_after_forget_after() -> None:
    """kill -9 keeps clients on the short interval for at most forget_after."""
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    watch.heard("dead", 0.0)
    watch.heard("alive", 0.0)
    for t in range(1, 40):
        watch.heard("alive", float(t))
    assert watch.silent(30.0) == ["dead"]
    assert watch.silent(30.5) == [] and watch.known(30.5) == 1
    assert "dead" not in watch and "alive" in watch
    watch.heard("dead", 31.0)  # it came back: watched again like any other
    assert watch.silent(35.0) == ["dead"]


def test_our_own_link_outage_is_not_counted_against_the_apps() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    watch.heard("a", 0.0)
    watch.grace(10.0)  # our link came back at t=10
    assert watch.silent(12.0) == []
    assert watch.silent(13.5) == ["a"]  # still quiet deaf_after after the link came back


def test_an_app_is_unheard_from_our_links_return_until_its_next_heartbeat() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    watch.heard("a", 0.0)
    watch.heard("b", 0.0)
    watch.heard("c", 0.0, client="tidings-app-c")
    assert watch.unheard(1.0) == []
    watch.grace(10.0)  # our link came back at t=10: what they said is stale
    assert watch.unheard(10.0) == ["a", "b", "c"] and watch.silent(10.0) == []
    watch.heard("a", 10.5)
    watch.bye("b")
    watch.gone("c")
    assert watch.unheard(11.0) == []
    watch.heard("b", 11.0)  # back after its goodbye: a fresh heartbeat
    watch.grace(12.0)
    assert watch.unheard(12.0) == ["a", "b"]
    assert watch.unheard(15.5) == [] and watch.silent(15.5) == ["a", "b"]  # silent now


def test_the_watch_is_bounded_oldest_heard_dropped_first() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    for n in range(MAX_APPS + 5):
        watch.heard(f"app{n}", float(n) / 1000)
    assert watch.known(5.0) == MAX_APPS
    assert "app0" not in watch and f"app{MAX_APPS + 4}" in watch


def test_an_app_saying_push_is_off_switches_it_off_while_it_is_heard() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0)
    watch.heard("a", 0.0)
    watch.heard("b", 0.0, push_off=True)
    assert watch.switched_off(1.0)  # one app is enough: each rereads flags on its own
    watch.heard("b", 2.0)  # switched on again
    assert not watch.switched_off(2.0)
    watch.heard("b", 3.0, push_off=True)
    assert watch.switched_off(6.0)
    # An app no longer heard says nothing now (its silence degrades on its own).
    assert not watch.switched_off(6.5)
    watch.heard("b", 7.0, push_off=True)
    watch.bye("b")
    assert not watch.switched_off(7.0)
    watch.heard("c", 8.0, push_off=True)
    assert not watch.switched_off(40.0) and "c" not in watch  # forgotten


def test_a_silent_app_that_named_its_connections_can_be_found_gone() -> None:
    watch = AppWatch(deaf_after=3.0, forget_after=30.0, gone_hold=5.0)
    watch.heard("named", 0.0, client="tidings-app:named")
    watch.heard("anonymous", 0.0)
    assert watch.to_check(2.0) == {}  # not silent yet
    assert watch.to_check(4.0) == {"named": "tidings-app:named"}
    watch.gone("named")
    assert "named" not in watch
    # Still silent until gone_hold after it fell silent (t=3): every client polls once.
    assert watch.silent(7.9) == ["anonymous", "named"]
    assert watch.silent(8.0) == ["anonymous"]
    assert watch.to_check(8.0) == {}  # nothing to look for: only forget_after ends it
    # Found gone wrongly (a reconnect in progress) and heard again: simply back.
    watch.heard("back", 10.0, client="tidings-app:back")
    watch.gone("back")
    watch.heard("back", 14.0, client="tidings-app:back")
    assert "back" not in watch.silent(14.0) and "back" in watch
    # A later heartbeat without a name takes the name back.
    watch.heard("later", 5.0, client="tidings-app:later")
    watch.heard("later", 6.0)
    assert watch.to_check(10.0) == {}


def test_deaf_after_must_be_shorter_than_forget_after() -> None:
    with pytest.raises(ValueError):
        AppWatch(deaf_after=30.0, forget_after=3.0)


# -- end to end: app -> (black hole) -> Redis <- push server <- client ----------


@contextlib.asynccontextmanager
async def black_hole(target_port: int) -> AsyncIterator[tuple[Proxy, int]]:
    proxy = Proxy(("127.0.0.1", target_port), "blackhole")
    server = await asyncio.start_server(proxy.accept, "127.0.0.1", 0)
    try:
        yield proxy, int(server.sockets[0].getsockname()[1])
    finally:
        server.close()
        for pipe in list(proxy.pipes):
            pipe.close()


async def metrics_text(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        return (await http.get(f"http://127.0.0.1:{port}/metrics")).text


DEAF_AFTER = 2.0


@dataclass
class CutOff:
    """A push server on a Redis of its own and an app (in process) that reaches the
    same Redis through a black hole, which passes everything until ``proxy.set_fault``."""

    server: PushServer
    services: Services
    stack: Stack
    proxy: Proxy
    lifespan: AbstractAsyncContextManager[Any]
    app_running: bool = True

    async def stop_app(self) -> None:
        """The app's graceful shutdown (its goodbye on the control channel)."""
        if self.app_running:
            self.app_running = False
            await self.lifespan.__aexit__(None, None, None)


@contextlib.asynccontextmanager
async def app_behind_black_hole(own_redis: str, sqlite_url: str) -> AsyncIterator[CutOff]:
    redis_port = int(own_redis.rsplit(":", 1)[1].split("/")[0])
    subscriber = RedisSubscriber(own_redis, ping_after=1.0, dead_after=2.0, backoff_max=0.5)
    server = PushServer(FAST.with_(app_deaf_after=DEAF_AFTER), subscriber, KEYS)
    try:
        async with black_hole(redis_port) as (proxy, proxy_port):
            settings = AppSettings(
                database_url=sqlite_url,
                redis_url=f"redis://127.0.0.1:{proxy_port}/0",
                push_urls=PushUrls.from_base("http://push.test"),
            )
            services = build_services(settings, hasher=CHEAP_HASHER)
            app = create_app(settings, services=services)
            lifespan = app.router.lifespan_context(app)
            await server.start("127.0.0.1", 0)
            await lifespan.__aenter__()
            cut = CutOff(server, services, Stack(app, services, settings), proxy, lifespan)
            try:
                await offset_project_ids(services.engines)
                yield cut
            finally:
                await cut.stop_app()
    finally:
        await server.close()


async def test_an_app_cut_off_from_redis_degrades_push_until_its_lost_poke_is_recovered(
    own_redis: str, sqlite_url: str
) -> None:
    async with app_behind_black_hole(own_redis, sqlite_url) as rig:
        server, services, stack, proxy = rig.server, rig.services, rig.stack, rig.proxy
        _user, api_token = await stack.user("ada@x.io")
        async with stack.client(api_token) as http:
            pid = (await http.post("/api/projects", json={"name": "P"})).json()["project"]
            await until(lambda: server.hub.state is ServerState.OK, TIMEOUT, "push ok")
            await until(lambda: services.pokes.app_id in server.apps, TIMEOUT, "app heard")
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
                await ws.send(subscribe_msg({pid: 1}))
                await recv_json(ws)
                proxy.set_fault(True)
                cut = time.monotonic()
                r = await http.post(
                    f"/api/projects/{pid}/commands",
                    json={"command": {"type": "create_story", "title": "lost poke"}},
                )
                assert r.status_code == 200
                version = int(r.json()["version"])
                seen: list[dict[str, Any]] = []

                async def read() -> dict[str, Any]:
                    message = await recv_json(ws)
                    seen.append(message)
                    return message

                async def degraded() -> None:
                    while (await next_of(read, "heartbeat"))["state"] != "degraded":
                        pass

                await asyncio.wait_for(degraded(), DEAF_AFTER + 1.0 + (time.monotonic() - cut))
                detected = time.monotonic() - cut
                assert not [m for m in seen if m["type"] == "poke"], (
                    "a poke got through the black hole"
                )
                assert "tidings_push_apps_silent 1.0" in await metrics_text(server.port)
                assert 'tidings_push_state{state="degraded"} 1.0' in await metrics_text(server.port)
                # The app named its connections, so the server looks for them in
                # CLIENT LIST every second: a partition leaves them listed (no FIN
                # gets through), so the app is silent, not gone.
                app_id = services.pokes.app_id
                assert server.apps.to_check(server.context.now()) == {
                    app_id: app_client_name(app_id)
                }
                await asyncio.sleep(2.5 * FAST.app_check_interval)
                assert server.hub.state is ServerState.DEGRADED
                assert server.counters.apps_gone == 0
                proxy.set_fault(False)
                healed = time.monotonic()
                seen.clear()

                def ok_and_poked() -> bool:
                    return {"type": "heartbeat", "state": "ok"} in seen and any(
                        m["type"] == "poke" and m["project"] == pid for m in seen
                    )

                async def recovered() -> None:
                    # The re-sent poke may come before or after the state change.
                    while not ok_and_poked():
                        await read()

                await asyncio.wait_for(recovered(), 10)
                back = time.monotonic() - healed
                (poke,) = [m for m in seen if m["type"] == "poke"]
                assert poke["version"] == version
        print(f"\ndegraded {detected:.2f} s after the cut; ok + poke {back:.2f} s after")
        await rig.stop_app()
        # A graceful shutdown says goodbye: forgotten at once, no degraded state.
        await until(lambda: services.pokes.app_id not in server.apps, 5, "app_bye heard")
        assert state_of(server) is ServerState.OK


async def test_an_app_killed_without_goodbye_stops_degrading_push_within_seconds(
    own_redis: str, sqlite_url: str
) -> None:
    """kill -9 of a real ``tidings app``: its sockets close with it, Redis lists no
    connection of that name any more, and the server drops the app at its next
    check instead of keeping everyone degraded for ``app_forget_after``."""
    subscriber = RedisSubscriber(own_redis, ping_after=1.0, dead_after=2.0, backoff_max=0.5)
    forget, hold = 60.0, 1.5
    server = PushServer(
        FAST.with_(app_deaf_after=DEAF_AFTER, app_forget_after=forget, app_gone_hold=hold),
        subscriber,
        KEYS,
    )
    await server.start("127.0.0.1", 0)
    port = free_port()
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": sqlite_url,
        "REDIS_URL": own_redis,
        "TIDINGS_PUSH_KEYS": "k1:" + "s" * 40,
    }
    proc = await asyncio.to_thread(
        subprocess.Popen,
        [sys.executable, "-m", "tidings", "app", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        await asyncio.to_thread(
            wait_http_ok, f"http://127.0.0.1:{port}/healthz", proc, time.monotonic() + 60
        )
        await until(lambda: server.apps.known(server.context.now()) == 1, TIMEOUT, "app heard")
        assert server.hub.state is ServerState.OK
        proc.kill()
        await asyncio.to_thread(proc.wait, 10)
        killed = time.monotonic()
        # Silent DEAF_AFTER after its last heartbeat (up to one heartbeat, 1 s,
        # before the kill): degraded, and CLIENT LIST is asked at once.
        await until(lambda: server.counters.apps_gone == 1, forget, "app found gone")
        gone = time.monotonic() - killed
        assert DEAF_AFTER - 1.1 < gone < DEAF_AFTER + 2 * FAST.app_check_interval + 1.0
        assert server.apps.known(server.context.now()) == 0
        # Degraded until `hold` after it fell silent, so every client polls once.
        assert state_of(server) is ServerState.DEGRADED
        await until(lambda: server.hub.state is ServerState.OK, forget, "ok again")
        back = time.monotonic() - killed
        print(
            f"\napp found gone {gone:.2f} s, ok again {back:.2f} s after kill -9 "
            f"(app_deaf_after {DEAF_AFTER:g} s, app_gone_hold {hold:g} s, "
            f"app_forget_after {forget:g} s)"
        )
        assert DEAF_AFTER + hold - 1.1 < back < DEAF_AFTER + hold + 1.0
    finally:
        if proc.poll() is None:
            proc.kill()
            await asyncio.to_thread(proc.wait, 10)
        await server.close()


async def test_a_member_removed_while_the_app_is_cut_off_is_revoked_once_it_heals(
    own_redis: str, sqlite_url: str
) -> None:
    # The kept poke of a project may be a later change than the removal: the
    # revocation is re-sent on its own, not only as part of a poke.
    async with app_behind_black_hole(own_redis, sqlite_url) as rig:
        server, services, stack, proxy = rig.server, rig.services, rig.stack, rig.proxy
        _owner, owner_token = await stack.user("ada@x.io")
        member, _ = await stack.user("bob@x.io")
        async with stack.client(owner_token) as http:
            pid = (await http.post("/api/projects", json={"name": "P"})).json()["project"]
            url = f"/api/projects/{pid}/commands"
            add = {"type": "add_member", "email": "bob@x.io", "role": "member"}
            assert (await http.post(url, json={"command": add})).status_code == 200
            await until(lambda: services.pokes.app_id in server.apps, TIMEOUT, "app heard")
            proxy.set_fault(True)
            remove = {"type": "remove_member", "user_id": member.id}
            r = await http.post(url, json={"command": remove})
            assert r.status_code == 200, r.text
            at = r.json()["event"]["ts"]
            later = {"type": "create_story", "title": "after the removal"}
            assert (await http.post(url, json={"command": later})).status_code == 200
            await asyncio.sleep(DEAF_AFTER)
            assert server.counters.revocations_received == 0
            proxy.set_fault(False)
            await until(
                lambda: server.hub.revocations.revokes(member.id, pid, at - 60, time.time()),
                10,
                "revocation heard after the path healed",
            )


async def test_the_kill_switch_reaches_connected_clients_through_the_app_heartbeat(
    own_redis: str, sqlite_url: str
) -> None:
    """Push switched off: within seconds every push server says ``degraded``, so
    its clients poll now (and the poll's advice tells them push is off) instead
    of at their long interval; /readyz stays ready. Switched on: ``ok`` again."""
    subscriber = RedisSubscriber(own_redis, ping_after=1.0, dead_after=2.0, backoff_max=0.5)
    server = PushServer(FAST.with_(app_deaf_after=DEAF_AFTER), subscriber, KEYS)
    settings = AppSettings(
        database_url=sqlite_url,
        redis_url=own_redis,
        push_urls=PushUrls.from_base("http://push.test"),
        flag_cache_ttl=1.0,
    )
    services = build_services(settings, hasher=CHEAP_HASHER)
    app = create_app(settings, services=services)
    lifespan = app.router.lifespan_context(app)
    await server.start("127.0.0.1", 0)
    await lifespan.__aenter__()
    # Flag cache + one heartbeat + the judge's tick, with room for a busy machine.
    bound = settings.flag_cache_ttl + 1.0 + 3.0
    try:
        await until(lambda: services.pokes.app_id in server.apps, TIMEOUT, "app heard")
        await until(lambda: server.hub.state is ServerState.OK, TIMEOUT, "push ok")
        async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            await ws.send(subscribe_msg({1: 0}))
            assert (await recv_json(ws))["state"] == "ok"

            async def state(wanted: str) -> float:
                started = time.monotonic()
                while (await next_of(lambda: recv_json(ws), "heartbeat"))["state"] != wanted:
                    pass
                return time.monotonic() - started

            await services.flags.set("push.enabled", False)
            took = await asyncio.wait_for(state("degraded"), bound)
            assert "tidings_push_switched_off 1.0" in await metrics_text(server.port)
            async with httpx.AsyncClient(timeout=5) as http:
                ready = await http.get(f"http://127.0.0.1:{server.port}/readyz")
            assert ready.status_code == 200
            assert ready.json() == {
                "status": "degraded",
                "server": server.server_id,
                "switched_off": True,
            }

            await services.flags.set("push.enabled", True)
            back = await asyncio.wait_for(state("ok"), bound)
            assert "tidings_push_switched_off 0.0" in await metrics_text(server.port)
            # A rollout of 0% is push off for everyone too.
            await services.flags.set("push.rollout_percent", 0)
            await asyncio.wait_for(state("degraded"), bound)
        print(f"\nswitched off: degraded after {took:.2f} s; switched on: ok after {back:.2f} s")
    finally:
        await lifespan.__aexit__(None, None, None)
        await server.close()
