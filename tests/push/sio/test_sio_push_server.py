"""``/socket.io/`` on the real push server (hub, tokens, broker), driven by the npm
socket.io-client in Node over each transport."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tidings.protocol.channels import project_channel
from tidings.protocol.errors import CloseCode
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.server import PushServer
from tidings.push.sio.endpoint import SioConnection
from tidings.testing.clients import RawWebSocket

from ..conftest import StartServer, token
from .test_sio_client import _require_client

LIVE_CLIENT = __file__.rsplit("/", 1)[0] + "/live_client.mjs"
WAIT = 10.0


class LiveClient:
    """One Node process: its JSON lines as they come, and commands to its stdin."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []

    async def next(self, key: str, value: Any = None) -> dict[str, Any]:
        """The next line with ``key`` (equal to ``value`` if given), skipping others."""
        assert self.proc.stdout is not None
        try:
            async with asyncio.timeout(WAIT):
                while True:
                    raw = await self.proc.stdout.readline()
                    if not raw:
                        raise AssertionError(f"client ended; saw {self.lines}")
                    line: dict[str, Any] = json.loads(raw)
                    self.lines.append(line)
                    if key in line and (value is None or line[key] == value):
                        return line
        except TimeoutError:
            raise AssertionError(f"no {key}={value!r} in {WAIT} s; saw {self.lines}") from None

    async def event(self, name: str) -> dict[str, Any]:
        return (await self.next("event", name))["message"]  # type: ignore[no-any-return]

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command.encode() + b"\n")


@pytest.fixture
async def live_client() -> AsyncIterator[Any]:
    node = _require_client()
    procs: list[asyncio.subprocess.Process] = []

    async def start(
        server: PushServer, mode: str, how: str, tok: str, projects: dict[str, int]
    ) -> LiveClient:
        proc = await asyncio.create_subprocess_exec(
            node,
            LIVE_CLIENT,
            f"http://127.0.0.1:{server.port}",
            mode,
            how,
            tok,
            json.dumps(projects),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        return LiveClient(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


async def _gone(server: PushServer) -> None:
    """The hub forgot every Socket.IO connection (bounded wait)."""
    for _ in range(int(WAIT / 0.02)):
        if not len(server.hub) and not server.hub.connections.get("socketio"):
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"still attached: {server.hub.connections}")


async def _direct(conn: SioConnection, expected: bool) -> None:
    """Wait until the session has (or has not) a socket for direct sends."""
    for _ in range(int(WAIT / 0.02)):
        if (conn.wfd >= 0) is expected and (conn.transport is not None) is expected:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"wfd={conn.wfd} transport={conn.transport}, expected {expected}")


@pytest.mark.parametrize(
    ("mode", "how"), [("upgrade", "auth"), ("websocket", "event"), ("polling", "auth")]
)
async def test_subscribe_poke_refresh_and_leave_on_the_real_server(
    start_server: StartServer, live_client: Any, mode: str, how: str
) -> None:
    server, broker = await start_server()
    client = await live_client(server, mode, how, token(projects=[7, 9]), {"7": 1})
    hello = await client.event("subscribed")
    assert hello["projects"] == {"7": 1} and hello["state"] == "ok"
    assert server.hub.connections["socketio"] == 1
    if mode == "upgrade" and {"upgrade": "websocket"} not in client.lines:
        await client.next("upgrade", "websocket")
    (conn,) = list(server.hub)
    assert isinstance(conn, SioConnection)
    # On a WebSocket the native fan-out may send() pokes itself (fanout.py).
    await _direct(conn, mode != "polling")
    await broker.publish(project_channel(7), encode_poke(Poke(7, 2, time.time())))
    poke = await client.event("poke")
    assert (poke["project"], poke["version"]) == (7, 2)
    client.send("refresh " + token(projects=[7, 9]))
    again = await client.event("subscribed")
    assert again["projects"] == {"7": 2}
    # The refresh said it holds version 1 again: a recovery poke comes first.
    assert (await client.event("poke"))["version"] == 2
    await broker.publish(project_channel(7), encode_poke(Poke(7, 3, time.time())))
    line = await client.next("event", "poke")
    assert line["message"]["version"] == 3
    assert line["transport"] == ("polling" if mode == "polling" else "websocket")
    client.send("quit")
    await client.next("disconnect", "io client disconnect")
    await _gone(server)
    await _direct(conn, False)


@pytest.mark.parametrize("mode", ["polling", "websocket"])
async def test_a_bad_token_gets_a_close_event_then_io_server_disconnect(
    start_server: StartServer, live_client: Any, mode: str
) -> None:
    server, _ = await start_server()
    client = await live_client(server, mode, "auth", "not-a-token", {"7": 1})
    closing = await client.event("close")
    assert closing["code"] == CloseCode.UNAUTHORIZED
    await client.next("disconnect", "io server disconnect")
    await _gone(server)


async def test_a_project_outside_the_token_is_forbidden(
    start_server: StartServer, live_client: Any
) -> None:
    server, _ = await start_server()
    client = await live_client(server, "websocket", "event", token(projects=[9]), {"7": 1})
    closing = await client.event("close")
    assert closing["code"] == CloseCode.FORBIDDEN
    await client.next("disconnect", "io server disconnect")


async def test_drain_tells_socket_io_clients_then_closes_them(
    start_server: StartServer, live_client: Any
) -> None:
    server, _ = await start_server()
    polling = await live_client(server, "polling", "auth", token(), {"7": 1})
    websocket = await live_client(server, "websocket", "auth", token(), {"7": 1})
    for client in (polling, websocket):
        await client.event("subscribed")
    drained = asyncio.create_task(server.drain(window=0.3))
    drain = await websocket.event("drain")
    assert 0 <= drain["reconnect_after"] < 0.3
    closing = await websocket.event("close")
    assert closing["code"] == CloseCode.GOING_AWAY
    await websocket.next("disconnect", "io server disconnect")
    # A draining server stops listening, so a poller gets the drain only if its
    # GET was held at that moment, and cannot come back for the close: it sees
    # its transport fail (and, having had the drain, knows when to return).
    await polling.next("disconnect")
    await drained
    await _gone(server)


async def _head(port: int, request: bytes) -> bytes:
    """The head of the answer to ``request``, sent on a fresh connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    try:
        return await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
    finally:
        writer.close()


async def test_a_refused_origin_gets_403(start_server: StartServer) -> None:
    server, _ = await start_server(allowed_origins=("https://app.example",))
    head = await _head(
        server.port,
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
        b"Origin: https://evil.example\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 403")


async def test_polling_answers_carry_cors_headers_for_allowed_origins(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(allowed_origins=("https://app.example",))
    head = await _head(
        server.port,
        b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
        b"Origin: https://app.example\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 200")
    assert b"Access-Control-Allow-Origin: https://app.example" in head
    assert b"Content-Type: text/plain; charset=UTF-8" in head


async def _http(port: int, method: str, target: str, body: bytes = b"") -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n"
    writer.write(head.encode() + body)
    try:
        async with asyncio.timeout(WAIT):
            answer = await reader.readuntil(b"\r\n\r\n")
            fields = dict(
                line.split(": ", 1) for line in answer.decode("latin-1").split("\r\n")[1:] if line
            )
            data = await reader.readexactly(int(fields["Content-Length"]))
    finally:
        writer.close()
    return int(answer.split()[1]), data


def _poke_versions(body: bytes) -> list[int]:
    return [
        json.loads(p[2:])[1]["version"] for p in body.split(b"\x1e") if p.startswith(b'42["poke"')
    ]


async def test_a_poller_that_stays_away_is_paused_in_the_hub_then_gets_the_latest(
    start_server: StartServer,
) -> None:
    server, broker = await start_server()
    status, body = await _http(server.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200
    sid = json.loads(body[1:])["sid"]
    target = f"/socket.io/?EIO=4&transport=polling&sid={sid}"
    auth = json.dumps({"token": token(projects=[7]), "projects": {"7": 1}}).encode()
    assert await _http(server.port, "POST", target, b"40" + auth) == (200, b"ok")
    status, body = await _http(server.port, "GET", target)
    assert body.startswith(b'40{"sid":') and b'42["subscribed"' in body
    # Far more pokes than the session's queue may hold: past half of it, the hub
    # keeps only the latest for this client instead of ending the session.
    for version in range(2, 600):
        await broker.publish(project_channel(7), encode_poke(Poke(7, version, 1.0)))
    await asyncio.sleep(0.05)
    assert server.counters.pokes_coalesced > 0
    status, body = await _http(server.port, "GET", target)
    queued = _poke_versions(body)
    assert status == 200 and queued == list(range(2, 2 + len(queued)))
    assert len(queued) < 598
    # Taking the queue resumed the client: the latest version is on its way.
    status, body = await _http(server.port, "GET", target)
    assert _poke_versions(body) == [599]
    assert server.hub.connections["socketio"] == 1


async def test_a_preflight_is_answered_for_clients_with_extra_headers(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(allowed_origins=("https://app.example",))
    head = await _head(
        server.port,
        b"OPTIONS /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n"
        b"Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
        b"Access-Control-Request-Headers: x-client\r\n\r\n",
    )
    assert head.startswith(b"HTTP/1.1 204")
    assert b"Access-Control-Allow-Methods: GET, POST" in head
    assert b"Access-Control-Allow-Headers: x-client" in head


async def test_a_full_server_refuses_new_sessions_with_503(start_server: StartServer) -> None:
    server, _ = await start_server(max_connections=0)
    status, body = await _http(server.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 503
    assert json.loads(body)["error"] == "unavailable"


async def test_a_second_websocket_for_a_session_is_upgraded_then_closed(
    start_server: StartServer,
) -> None:
    """As the reference server: the 101, then a close; the session is unharmed."""
    server, _ = await start_server()
    status, body = await _http(server.port, "GET", "/socket.io/?EIO=4&transport=polling")
    assert status == 200
    sid = json.loads(body[1:])["sid"]
    path = f"/socket.io/?EIO=4&transport=websocket&sid={sid}"
    probing = await RawWebSocket.connect(server.port, path=path)
    assert probing.status == 101
    second = await RawWebSocket.connect(server.port, path=path)
    assert second.status == 101
    assert (await second.close_code())[0] == CloseCode.NORMAL
    second.close()
    probing.send(1, b"2probe")  # the first one still upgrades
    assert await probing.frame() == (1, b"3probe")
    probing.close()


async def test_session_timers_fire_at_their_deadline_not_on_the_tick(
    start_server: StartServer,
) -> None:
    """The protocol suites' 300/200 ms timers: a ping 300 ms after the open packet,
    the close 200 ms after an unanswered ping, at their deadlines. The hub's tick is
    set to 30 s, so a timer that waited for it would be seconds late, while the
    bounds leave a loaded machine its scheduling slack."""
    server, _ = await start_server(sio_ping_interval=0.3, sio_ping_timeout=0.2, tick_interval=30)
    ws = await RawWebSocket.connect(server.port, path="/socket.io/?EIO=4&transport=websocket")
    _op, payload = await ws.frame()
    opened = time.monotonic()
    assert payload.startswith(b"0{") and json.loads(payload[1:])["pingInterval"] == 300
    assert await ws.frame() == (1, b"2")
    pinged = time.monotonic()
    code, _ = await ws.close_code()
    closed = time.monotonic()
    assert code == CloseCode.NORMAL
    late_ping, late_close = pinged - opened - 0.3, closed - pinged - 0.2
    print(f"ping {late_ping * 1000:.1f} ms late, ping timeout {late_close * 1000:.1f} ms late")
    # A few ms on an idle machine; a busy 2-core one gets scheduling slack.
    assert -0.01 < late_ping < 0.5, late_ping
    assert -0.01 < late_close < 0.5, late_close


async def test_a_websocket_only_session_is_pending_as_its_socket(
    start_server: StartServer,
) -> None:
    """Without a token, a WebSocket-only session holds a place among the pending
    sockets, not among the long-polling sessions: filling the sessions' pool from
    a kept-alive socket drops the oldest polling session, never it, and its token
    settles its socket."""
    server, _ = await start_server(max_pending=2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    ws = await RawWebSocket.connect(server.port, path="/socket.io/?EIO=4&transport=websocket")
    assert ws.status == 101
    assert (await ws.frame())[1].startswith(b"0{")
    assert len(server.context.pending) == 2  # the kept-alive socket and the WebSocket
    sids = []
    for _ in range(3):  # three polling sessions on one socket: the pool holds two
        writer.write(b"GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n")
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT)
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        body = await asyncio.wait_for(reader.readexactly(length), WAIT)
        assert head.startswith(b"HTTP/1.1 200"), head
        sids.append(json.loads(body[1:])["sid"])
    assert server.counters.pending_evicted == 1  # the first polling session
    assert len(server.context.pending) == 2
    auth = {"token": token(projects=[7]), "projects": {"7": 0}}
    ws.send(1, b"40" + json.dumps(auth).encode())
    assert (await ws.frame())[1].startswith(b'40{"sid":')
    assert (await ws.frame())[1].startswith(b'42["subscribed",')
    assert len(server.context.pending) == 1  # only the kept-alive socket now
    status, body = await _http(
        server.port, "GET", f"/socket.io/?EIO=4&transport=polling&sid={sids[0]}"
    )
    assert status == 400 and json.loads(body)["code"] == 1  # the evicted one is gone
    ws.close()
    writer.close()
