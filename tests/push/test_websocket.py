"""``/ws`` over real sockets on loopback: handshake, framing rules, auth refusals, limits."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import orjson
import pytest
import websockets

from tests.support import until
from tidings.protocol.channels import project_channel
from tidings.protocol.errors import CloseCode
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.websocket import PONG_BUFFER_BYTES, PushWebSocket
from tidings.push.wsframe import OP_BINARY, OP_CONT, OP_PING, OP_PONG, OP_TEXT, text_frame
from tidings.testing.clients import TIMEOUT as WAIT
from tidings.testing.clients import RawWebSocket, client_frame

from .conftest import StartServer, token


async def subscribed(port: int, held: dict[str, int] | None = None, **kw: Any) -> RawWebSocket:
    ws = await RawWebSocket.connect(port)
    assert ws.status == 101
    ws.send_json({"type": "subscribe", "token": token(**kw), "projects": held or {"7": 1}})
    assert (await ws.message())["type"] == "subscribed"
    return ws


async def test_subscribe_then_pokes_arrive_as_text_frames(start_server: StartServer) -> None:
    server, broker = await start_server()
    async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
        hello_msg = {"type": "subscribe", "token": token(), "projects": {"7": 1}}
        await ws.send(orjson.dumps(hello_msg).decode())
        hello = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert hello == {
            "type": "subscribed",
            "projects": {"7": 1},
            "state": "ok",
            "heartbeat": server.settings.heartbeat_interval,
        }
        await broker.publish(project_channel(7), encode_poke(Poke(7, 2, time.time())))
        await broker.publish(project_channel(9), encode_poke(Poke(9, 2, time.time())))
        await broker.publish(project_channel(7), encode_poke(Poke(7, 3, time.time())))
        first = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        second = orjson.loads(await asyncio.wait_for(ws.recv(), 5))
        assert [(m["project"], m["version"]) for m in (first, second)] == [(7, 2), (7, 3)]


async def test_ping_is_answered_with_the_same_payload(start_server: StartServer) -> None:
    server, _ = await start_server()
    ws = await subscribed(server.port)
    ws.send(OP_PING, b"are you there")
    assert await ws.frame() == (OP_PONG, b"are you there")
    ws.close()


async def test_a_message_split_over_fragments_and_writes_is_understood(
    start_server: StartServer,
) -> None:
    server, _ = await start_server()
    ws = await RawWebSocket.connect(server.port)
    body = orjson.dumps({"type": "subscribe", "token": token(), "projects": {"7": 1}})
    data = client_frame(OP_TEXT, body[:10], fin=False) + client_frame(OP_CONT, body[10:])
    for i in range(0, len(data), 7):
        ws.writer.write(data[i : i + 7])
        await ws.writer.drain()
        await asyncio.sleep(0)
    assert (await ws.message())["type"] == "subscribed"
    ws.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (client_frame(OP_TEXT, b"{}", mask=False), CloseCode.PROTOCOL_ERROR),
        (client_frame(OP_BINARY, b"\x00"), CloseCode.UNSUPPORTED_DATA),
        (client_frame(OP_TEXT, b"not json"), CloseCode.UNSUPPORTED_DATA),
        (client_frame(OP_TEXT, b'{"type":"hello","token":"x"}'), CloseCode.UNSUPPORTED_DATA),
        (client_frame(OP_TEXT, b"\xc3\x28"), CloseCode.INVALID_PAYLOAD),
        (client_frame(OP_TEXT, b"x" * (16 * 1024 + 1)), CloseCode.TOO_BIG),
    ],
)
async def test_bad_frames_close_with_a_code(
    start_server: StartServer, frame: bytes, code: int
) -> None:
    server, _ = await start_server()
    ws = await RawWebSocket.connect(server.port)
    ws.writer.write(frame)
    assert (await ws.close_code())[0] == code
    assert await ws.eof()
    await until(lambda: len(server.hub) == 0, WAIT, "the hub to forget the connection")


async def test_a_client_close_is_echoed_and_forgotten(start_server: StartServer) -> None:
    server, _ = await start_server()
    ws = await subscribed(server.port)
    ws.send(0x8, (4000).to_bytes(2, "big") + b"bye")
    assert await ws.close_code() == (4000, "")
    assert await ws.eof()
    await until(lambda: server.hub.watchers(7) == 0, WAIT, "the hub to forget the watcher")


async def test_refresh_keeps_the_subscription_and_adds_projects(start_server: StartServer) -> None:
    server, broker = await start_server()
    ws = await subscribed(server.port, projects=[7])
    ws.send_json({"type": "refresh", "token": token(projects=[7, 9]), "projects": {"9": 1}})
    answer = await ws.message()
    assert answer["type"] == "subscribed" and set(answer["projects"]) == {"7", "9"}
    await broker.publish(project_channel(9), encode_poke(Poke(9, 2, time.time())))
    assert (await ws.message())["project"] == 9
    ws.close()


async def test_origins_outside_the_allow_list_are_refused_with_403(
    start_server: StartServer,
) -> None:
    server, _ = await start_server(allowed_origins=("https://app.example",))
    bad = await RawWebSocket.connect(server.port, headers={"Origin": "https://evil.example"})
    assert bad.status == 403
    assert orjson.loads((await bad.body()).strip())["error"] == "forbidden"
    good = await RawWebSocket.connect(server.port, headers={"Origin": "https://app.example"})
    assert good.status == 101
    good.close()


async def test_handshake_errors_are_http_refusals(start_server: StartServer) -> None:
    server, _ = await start_server()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"
    )
    head = await asyncio.wait_for(reader.read(4096), 5)
    assert head.startswith(b"HTTP/1.1 426") and b"Sec-WebSocket-Version: 13" in head
    writer.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /ws HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (await asyncio.wait_for(reader.read(4096), 5)).startswith(b"HTTP/1.1 400")
    writer.close()


async def test_a_socket_that_never_subscribes_is_closed(start_server: StartServer) -> None:
    server, _ = await start_server(handshake_timeout=0.3)
    ws = await RawWebSocket.connect(server.port)
    assert (await ws.close_code())[0] == CloseCode.POLICY


async def test_a_full_server_upgrades_then_closes_with_1013(start_server: StartServer) -> None:
    server, _ = await start_server(max_connections=1)
    first = await subscribed(server.port)
    second = await RawWebSocket.connect(server.port)
    assert second.status == 101
    assert (await second.close_code())[0] == CloseCode.TRY_AGAIN_LATER
    assert await second.eof()
    # The third is refused for the first's sake alone: the second's socket is gone.
    await until(lambda: server.context.sockets == 1, WAIT, "the second socket to be closed")
    third = await RawWebSocket.connect(server.port)
    assert (await third.close_code())[0] == CloseCode.TRY_AGAIN_LATER
    first.close()
    await until(lambda: server.context.sockets == 0, WAIT, "every socket to be closed")
    fourth = await subscribed(server.port)
    fourth.close()


async def test_too_many_connections_from_one_address_get_429(start_server: StartServer) -> None:
    server, _ = await start_server(ip_rate=1.0, ip_burst=2)
    socks = [await RawWebSocket.connect(server.port) for _ in range(2)]
    refused = await RawWebSocket.connect(server.port)
    assert refused.status == 429
    assert b"Retry-After: " in refused.head
    assert orjson.loads((await refused.body()).strip())["error"] == "rate_limited"
    for ws in socks:
        ws.close()


async def test_same_bytes_are_written_to_every_client(start_server: StartServer) -> None:
    server, broker = await start_server()
    clients = [await subscribed(server.port) for _ in range(20)]
    await broker.publish(project_channel(7), encode_poke(Poke(7, 2, 1.5)))
    frames = {await c.frame() for c in clients}
    assert frames == {(OP_TEXT, b'{"type":"poke","project":7,"version":2,"ts":1.5}')}
    for c in clients:
        c.close()


async def test_a_subscribed_client_gets_its_whole_budget_then_1008(
    start_server: StartServer,
) -> None:
    """The unsubscribed budget's debt (its subscribe) does not carry over: after
    ``subscribe`` all 32 frames of the larger budget are there, the 33rd closes."""
    server, _ = await start_server()
    ws = await subscribed(server.port)
    for k in range(32):
        ws.send(OP_PING, str(k).encode())
    for k in range(32):
        assert await ws.frame() == (OP_PONG, str(k).encode())
    ws.send(OP_PING, b"one too many")
    assert await ws.close_code() == (CloseCode.POLICY, "too many frames: over 32 at 1 per second")
    ws.close()


async def test_frames_before_subscribe_are_few(start_server: StartServer) -> None:
    server, _ = await start_server()
    ws = await RawWebSocket.connect(server.port)
    for _ in range(9):
        ws.send(OP_PONG, b"")
    assert await ws.close_code() == (CloseCode.POLICY, "too many frames: over 8 at 0.2 per second")
    ws.close()


async def test_no_pong_is_queued_while_the_send_buffer_is_backed_up(
    start_server: StartServer,
) -> None:
    """A client that pings and does not read gets no PONGs queued behind its backlog
    (RFC 6455 5.5.3 lets a server answer only the latest ping); once it has read
    the backlog, its next ping is answered."""
    server, _ = await start_server()
    ws = await subscribed(server.port)
    (conn,) = list(server.hub)
    assert isinstance(conn, PushWebSocket) and conn.transport is not None
    # Small kernel buffers on both ends: the backlog then waits in the process.
    server_sock = conn.transport.get_extra_info("socket")
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    ws.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    backlog = text_frame(b"x" * 30_000)
    for _ in range(2):
        conn.send_frame(backlog)
    before = conn.transport.get_write_buffer_size()
    assert before > PONG_BUFFER_BYTES
    spent = conn._full_at
    for k in range(3):
        ws.send(OP_PING, str(k).encode())
    deadline = time.monotonic() + 5
    while conn._full_at == spent:  # until the server has read the three pings
        assert time.monotonic() < deadline, "the pings were never read"
        await asyncio.sleep(0.01)
    assert conn.transport.get_write_buffer_size() <= before
    server_sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    ws.writer.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    for _ in range(2):
        assert await ws.frame() == (OP_TEXT, b"x" * 30_000)
    ws.send(OP_PING, b"now")
    assert await ws.frame() == (OP_PONG, b"now")
    ws.close()
