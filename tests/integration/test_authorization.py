"""Authorization by every path, on the real stack (app on PostgreSQL, Redis, two push
server processes): a user never receives a poke, event or snapshot of a project
they are not a member of; removing a member takes effect on the poll path at once
and on every push transport within about a second (the ``revoke`` control
message, docs/PROTOCOL.md 3.2), and tokens issued before the removal are refused
for that project afterwards.

Covered elsewhere, not repeated here: the session cookie's HttpOnly and SameSite
flags, the CSRF refusal and sign-in rate limiting (tests/app/test_api.py), the
Origin refusal on /ws, /sse and Socket.IO (tests/push/test_websocket.py,
tests/push/test_sse.py, tests/push/sio/test_sio_push_server.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import quote, urlsplit

import redis.asyncio as redis

from tests.app.conftest import CHEAP_HASHER
from tests.app.conftest import PASSWORD as APP_PASSWORD
from tests.app.conftest import Stack as AppStack
from tests.app.test_api import make_project
from tests.push.sio.test_sio_client import _require_client
from tests.push.sio.test_sio_push_server import LIVE_CLIENT, LiveClient
from tidings.app.main import build_services, create_app
from tidings.app.settings import AppSettings, PushUrls
from tidings.protocol.channels import project_channel
from tidings.protocol.errors import CloseCode
from tidings.protocol.poke import Poke, encode_poke
from tidings.store.accounts import Accounts
from tidings.store.engine import create_engines
from tidings.testing.clients import RawSse, RawWebSocket
from tidings.testing.stack import Stack

#: From the removal's commit to the ``revoked`` message on every transport. The
#: path is commit -> publish -> Redis -> push server: milliseconds when idle; the
#: bound leaves room for a busy shared machine.
REVOKED_WITHIN = 1.5
#: Any one wait for a push message.
WAIT = 10.0

Msg = dict[str, Any]


async def _user(stack: Stack, email: str) -> tuple[int, str]:
    """A user made in the stack's database, and an API token for it."""
    engines = create_engines(stack.database_url)
    try:
        accounts = Accounts(engines)
        user = await accounts.create_user(email, email.split("@")[0].title(), "pw-" + email)
        return user.id, await accounts.issue(user.id, "api", ttl=None)
    finally:
        await engines.dispose()


async def _command(stack: Stack, token: str, project: int, command: Msg) -> Msg:
    async with stack.http(token) as http:
        r = await http.post(f"/api/projects/{project}/commands", json={"command": command})
        assert r.status_code == 200, r.text
        body: Msg = r.json()
        return body


async def _push_token(stack: Stack, token: str, projects: list[int] | None = None) -> Msg:
    async with stack.http(token) as http:
        body = None if projects is None else {"projects": projects}
        r = await http.post("/api/push/token", json=body)
        assert r.status_code == 200, r.text
        found: Msg = r.json()
        return found


class Conn:
    """One push connection on one transport; every message it got, read with a bound."""

    def __init__(self, name: str, read: Callable[[], Any], close: Callable[[], None]) -> None:
        self.name = name
        self._read = read
        self._close = close
        self.seen: list[Msg] = []

    async def until(self, wanted: Callable[[Msg], bool], what: str) -> Msg:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            try:
                async with asyncio.timeout(max(0.01, deadline - time.monotonic())):
                    msg: Msg = await self._read()
            except TimeoutError:
                break
            self.seen.append(msg)
            if wanted(msg):
                return msg
        raise AssertionError(f"{self.name}: no {what} within {WAIT} s; saw {self.seen}")

    def pokes(self, project: int) -> list[int]:
        return [m["version"] for m in self.seen if m["type"] == "poke" and m["project"] == project]

    def close(self) -> None:
        self._close()


def _port(stack: Stack) -> int:
    port = urlsplit(stack.push_url).port
    assert port is not None
    return port


@asynccontextmanager
async def _connections(
    stack: Stack, token: str, projects: dict[int, int]
) -> AsyncIterator[list[Conn]]:
    """The same subscription on /ws, /sse and Socket.IO (the npm client, in Node)."""
    port, node = _port(stack), _require_client()
    wire = {str(p): v for p, v in projects.items()}
    ws = await RawWebSocket.connect(port)
    assert ws.status == 101
    ws.send_json({"type": "subscribe", "token": token, "projects": wire})
    query = f"token={quote(token)}" + "".join(f"&p={p}:{v}" for p, v in projects.items())
    sse = await RawSse.connect(port, query)
    proc = await asyncio.create_subprocess_exec(
        node,
        LIVE_CLIENT,
        stack.push_url,
        "websocket",
        "auth",
        token,
        json.dumps(wire),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    sio = LiveClient(proc)

    async def sio_read() -> Msg:
        message: Msg = (await sio.next("event"))["message"]
        return message

    def sio_close() -> None:
        if proc.returncode is None:
            proc.kill()

    conns = [
        Conn("ws", ws.message, ws.close),
        Conn("sse", sse.event, sse.close),
        Conn("socketio", sio_read, sio_close),
    ]
    try:
        yield conns
    finally:
        for conn in conns:
            conn.close()
        await proc.wait()


def _poke_of(project: int, version: int) -> Callable[[Msg], bool]:
    return lambda m: m["type"] == "poke" and m["project"] == project and m["version"] >= version


async def _publish_full_push(stack: Stack, project: int, version: int) -> None:
    """A poke carrying events, as an app in full-push mode publishes it."""
    event = {"version": version, "type": "story_created", "data": {"title": "secret"}, "ts": 1.0}
    client = redis.from_url(stack.redis_url)
    try:
        async with asyncio.timeout(WAIT):
            data = encode_poke(Poke(project, version, time.time(), (event,)))
            await client.publish(project_channel(project), data)
    finally:
        await client.aclose()


async def test_an_outsider_gets_no_poke_event_or_snapshot_by_any_path(stack: Stack) -> None:
    _eve, eve_api = await _user(stack, "eve@authz.test")
    secret_project, _ = await stack.new_project("Secret")
    async with stack.http(eve_api) as http:
        r = await http.post("/api/projects", json={"name": "Eve's"})
        assert r.status_code == 201, r.text
        own = int(r.json()["project"])
        # The poll path: snapshot, poll and multi-poll all say "not found".
        assert (await http.get(f"/api/projects/{secret_project}")).status_code == 404
        r = await http.get(f"/api/projects/{secret_project}/events?since=0")
        assert r.status_code == 404
        r = await http.get("/api/poll", params={"p": [f"{secret_project}:0", f"{own}:0"]})
        assert r.status_code == 200
        assert r.json()["projects"][str(secret_project)] == {"error": "not_found"}
        assert r.json()["projects"][str(own)]["version"] == 1
    # The token names only her own project, even when she asks for the other.
    assert (await _push_token(stack, eve_api))["projects"] == [own]
    assert (await _push_token(stack, eve_api, [secret_project]))["projects"] == []
    token = (await _push_token(stack, eve_api))["token"]

    # Subscribing to the other project with her token is refused on every transport.
    port = _port(stack)
    ws = await RawWebSocket.connect(port)
    ws.send_json({"type": "subscribe", "token": token, "projects": {str(secret_project): 0}})
    assert (await ws.close_code())[0] == CloseCode.FORBIDDEN
    ws.close()
    sse = await RawSse.connect(port, f"token={quote(token)}&p={secret_project}:0")
    assert sse.status == 403
    sse.close()
    async with _connections(stack, token, {secret_project: 0}) as conns:
        sio = conns[2]
        closed = await sio.until(lambda m: m["type"] == "close", "close")
        assert closed["code"] == CloseCode.FORBIDDEN

    # Watching her own project on every transport: the other project's pokes,
    # plain or carrying events (full push), never reach her. Her own project's
    # poke is published after them, so once it arrived theirs would have too.
    async with _connections(stack, token, {own: 1}) as conns:
        for conn in conns:
            await conn.until(lambda m: m["type"] == "subscribed", "subscribed")
        version, _ = await stack.change(secret_project, "not for eve")
        await _publish_full_push(stack, secret_project, version + 1)
        mine = await _command(stack, eve_api, own, {"type": "create_story", "title": "x"})
        for conn in conns:
            await conn.until(_poke_of(own, mine["version"]), "her own project's poke")
            assert all(m.get("project") != secret_project for m in conn.seen), conn.seen
            assert not any("events" in m for m in conn.seen), conn.seen


async def test_removing_a_member_revokes_poll_and_push_at_once(stack: Stack) -> None:
    bob, bob_api = await _user(stack, "bob@authz.test")
    shared, _ = await stack.new_project("Shared")
    kept, _ = await stack.new_project("Kept")
    for project in (shared, kept):
        await _command(
            stack,
            stack.admin_token,
            project,
            {"type": "add_member", "email": "bob@authz.test", "role": "member"},
        )
    old = await _push_token(stack, bob_api)
    assert set(old["projects"]) >= {shared, kept}
    metric = 'tidings_revocations_total{outcome="published"}'
    published_before = await stack.app_metric(metric)

    async with _connections(stack, old["token"], {shared: 2, kept: 2}) as conns:
        for conn in conns:
            await conn.until(lambda m: m["type"] == "subscribed", "subscribed")
        before, _ = await stack.change(shared, "seen by bob")
        for conn in conns:
            await conn.until(_poke_of(shared, before), "a poke while still a member")

        removal = await _command(
            stack, stack.admin_token, shared, {"type": "remove_member", "user_id": bob}
        )
        removed_at = float(removal["event"]["ts"])

        # The poll path refuses at once: snapshot, poll and multi-poll.
        async with stack.http(bob_api) as http:
            assert (await http.get(f"/api/projects/{shared}")).status_code == 404
            r = await http.get(f"/api/projects/{shared}/events?since={before}")
            assert r.status_code == 404
            r = await http.get("/api/poll", params={"p": [f"{shared}:{before}", f"{kept}:0"]})
            assert r.json()["projects"][str(shared)] == {"error": "not_found"}

        # Every push connection is told, within about a second of the commit.
        for conn in conns:
            await conn.until(lambda m: m["type"] == "revoked", "revoked")
            late = time.time() - removed_at
            assert late < REVOKED_WITHIN, f"{conn.name}: revoked {late:.2f} s after the commit"
            assert {"type": "revoked", "project": shared} in conn.seen

        # And it gets nothing more of that project: not the removal's own poke,
        # not later changes, not events; the project it kept still works.
        after, _ = await stack.change(shared, "not for bob")
        await _publish_full_push(stack, shared, after + 1)
        still, _ = await stack.change(kept, "for bob")
        for conn in conns:
            await conn.until(_poke_of(kept, still), "the kept project's poke")
            assert conn.pokes(shared) == [before], conn.seen
            assert not any("events" in m for m in conn.seen), conn.seen

    # Reconnecting with the token from before the removal: refused for that project
    # (told `revoked`), subscribed for the rest. Several WebSockets, so that the
    # kernel spreads them over both push servers sharing the port.
    port = _port(stack)
    for _ in range(4):
        ws = await RawWebSocket.connect(port)
        ws.send_json(
            {"type": "subscribe", "token": old["token"], "projects": {str(shared): 0, str(kept): 0}}
        )
        hello = await ws.message()
        assert hello["type"] == "subscribed" and set(hello["projects"]) == {str(kept)}, hello
        assert await ws.message() == {"type": "revoked", "project": shared}
        ws.close()
    sse = await RawSse.connect(port, f"token={quote(old['token'])}&p={shared}:0&p={kept}:0")
    assert sse.status == 200
    hello = await sse.event()
    assert set(hello["projects"]) == {str(kept)}, hello
    assert await sse.event() == {"type": "revoked", "project": shared}
    sse.close()
    async with _connections(stack, old["token"], {shared: 0, kept: 0}) as conns:
        sio = conns[2]
        hello = await sio.until(lambda m: m["type"] == "subscribed", "subscribed")
        assert set(hello["projects"]) == {str(kept)}
        await sio.until(lambda m: m["type"] == "revoked", "revoked")

    # Every push server heard the revocation; the app counted what it published.
    for push in stack.running_pushes():
        assert f"event=revoke user={bob} project={shared}" in push.proc.current_log()
    assert await stack.app_metric(metric) == published_before + 1
    # A new token no longer names the project at all.
    assert shared not in (await _push_token(stack, bob_api))["projects"]


@asynccontextmanager
async def _app_in_process(postgres_url: str, **overrides: Any) -> AsyncIterator[AppStack]:
    """The app in-process (ASGI) on PostgreSQL, with some settings changed."""
    settings = AppSettings(
        database_url=postgres_url, push_urls=PushUrls.from_base("http://push.test"), **overrides
    )
    services = build_services(settings, hasher=CHEAP_HASHER)
    app = create_app(settings, services=services)
    async with app.router.lifespan_context(app):
        yield AppStack(app, services, settings)


async def test_a_member_removal_never_fails_when_the_revoke_cannot_be_published(
    postgres_url: str,
) -> None:
    # Nothing listens on port 1: every publish fails fast.
    async with _app_in_process(postgres_url, redis_url="redis://127.0.0.1:1/0") as app:
        p = await make_project(app)
        async with app.client(p["tokens"]["owner"]) as http:
            r = await http.post(
                f"/api/projects/{p['pid']}/commands",
                json={"command": {"type": "remove_member", "user_id": p["ids"]["member"]}},
            )
            assert r.status_code == 200, r.text
        async with app.client(p["tokens"]["member"]) as http:
            assert (await http.get(f"/api/projects/{p['pid']}/events?since=0")).status_code == 404
        await app.services.pokes.close()
        assert app.services.metrics.revocations.labels("failed")._value.get() == 1
        assert app.services.metrics.revocations.labels("published")._value.get() == 0


async def test_session_cookies_are_secure_when_configured(postgres_url: str) -> None:
    """Behind HTTPS (``TIDINGS_SECURE_COOKIES=1``) both cookies carry ``Secure``;
    the CSRF cookie must stay readable by the page (no HttpOnly)."""
    async with _app_in_process(postgres_url, secure_cookies=True) as app:
        await app.user("ada@secure.test")
        async with app.client() as http:
            r = await http.post(
                "/api/session", json={"email": "ada@secure.test", "password": APP_PASSWORD}
            )
            assert r.status_code == 200, r.text
    cookies = {c.split("=", 1)[0]: c for c in r.headers.get_list("set-cookie")}
    session, csrf = cookies["tidings_session"], cookies["tidings_csrf"]
    assert "Secure" in session and "HttpOnly" in session and "SameSite=lax" in session
    assert "Secure" in csrf and "HttpOnly" not in csrf and "SameSite=strict" in csrf
