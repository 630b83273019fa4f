"""Malformed input over real sockets against a real push server, per transport.

Each connection must end in a clean refusal or close within a timeout (an HTTP
4xx with its JSON body, a WebSocket close frame with a code from
docs/PROTOCOL.md, an Engine.IO error answer), or, when the input was harmless,
keep working (a probe sent after it is answered). Where the protocol lets a
connection go on, several inputs share it; after a fatal one, a new connection.
Throughout, a well-behaved client stays subscribed and must still get a poke
sent after the fuzzing, the loop must log no exception, and every socket and
hub connection must be released. Sizes: ``TIDINGS_FUZZ_FRAMES`` per transport.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from tidings.protocol.channels import project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.server import PushServer
from tidings.push.wsframe import OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, FrameError, FrameReader
from tidings.testing.clients import RawWebSocket, client_frame

from ..conftest import StartServer, token
from . import strategies as s

#: Longest a connection may take to answer a probe or to end after a refusal:
#: generous for a contended machine; a stuck connection never gets there.
WAIT = 10.0
#: Client connections fuzzing at once.
WORKERS = 16
#: The server's handshake timeout here: a request or subscribe left incomplete
#: by a malformed input is ended this quickly (408 / 1008), not after 10 s.
HANDSHAKE = 0.5


#: Codes a server close frame may carry: ours (PROTOCOL.md 4.3) or an echo of
#: a valid client code (RFC 6455 7.4).
def _valid_close(code: int) -> bool:
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


@dataclass
class Tally:
    """What the inputs led to, by outcome; the test asserts each kind was reached."""

    inputs: int = 0
    connections: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)

    def saw(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


@dataclass
class Fuzzing:
    server: PushServer
    port: int
    token: str
    tally: Tally = field(default_factory=Tally)


async def _run(inputs: list[Any], worker: Callable[[list[Any]], Awaitable[None]]) -> None:
    """Share the inputs among WORKERS concurrent workers."""
    chunks = [inputs[i::WORKERS] for i in range(WORKERS)]
    await asyncio.gather(*(worker(chunk) for chunk in chunks if chunk))


async def _read_until_eof(reader: asyncio.StreamReader) -> bytes:
    data = bytearray()
    async with asyncio.timeout(WAIT):
        while chunk := await reader.read(65536):
            data += chunk
    return bytes(data)


def _status(answer: bytes) -> tuple[int, bytes, bytes]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 "), answer[:200]
    return int(head[9:12]), head, body


# -- the transports -------------------------------------------------------------------


async def _closed_by_server(f: Fuzzing, ws: RawWebSocket, payload: bytes) -> None:
    """A close frame came: its code is one a server may send, and the socket ends."""
    code = int.from_bytes(payload[:2], "big")
    assert _valid_close(code), code
    f.tally.saw(f"close {code}")
    assert await ws.eof(), "no EOF after the close frame"


async def _ws_frames(f: Fuzzing, inputs: list[bytes]) -> None:
    """Subscribed /ws connections; each input, then a ping: pong (alive) or close + EOF."""
    pending = list(inputs)
    probe = 0
    while pending:
        ws = await RawWebSocket.connect(f.port)
        f.tally.connections += 1
        ws.send_json({"type": "subscribe", "token": f.token, "projects": {"7": 0}})
        assert (await ws.message())["type"] == "subscribed"
        try:
            while pending:
                data = pending.pop()
                f.tally.inputs += 1
                model = FrameReader(f.server.settings.max_message_bytes)
                try:
                    model.feed(data)
                except FrameError:
                    pass
                else:
                    if not model.idle:
                        # A frame left incomplete: nothing would answer a probe.
                        # The client gives up; the server must release the socket.
                        ws.writer.write(data)
                        f.tally.saw("incomplete")
                        break
                probe += 1
                marker = b"probe-%d" % probe
                ws.writer.write(data + client_frame(OP_PING, marker))
                async with asyncio.timeout(WAIT):
                    while True:
                        op, payload = await ws.frame()
                        if op == OP_PONG and payload == marker:
                            f.tally.saw("alive")
                            break
                        if op == OP_CLOSE:
                            await _closed_by_server(f, ws, payload)
                            break
                        assert op in (OP_TEXT, OP_PONG), op
                if op == OP_CLOSE:
                    break
        finally:
            ws.close()


async def _http_requests(f: Fuzzing, inputs: list[bytes]) -> None:
    """Raw requests (handshakes included): an answer (4xx with a JSON body, 101, or a
    2xx on a kept-alive socket) or a close, within WAIT."""
    for data in inputs:
        f.tally.inputs += 1
        f.tally.connections += 1
        reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
        try:
            writer.write(data)
            try:
                async with asyncio.timeout(WAIT):
                    head = await reader.readuntil(b"\r\n\r\n")
                    if head.startswith(b"HTTP/1.1 101"):
                        f.tally.saw("101")
                        continue  # a WebSocket now, which ws-frames fuzzes
                    length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    body = await reader.readexactly(length)
            except asyncio.IncompleteReadError as exc:
                assert not exc.partial, exc.partial
                f.tally.saw("closed")
                continue
            except TimeoutError:
                raise AssertionError(f"no answer and no close within {WAIT} s: {data!r}") from None
            status, lines, _ = _status(head)
            assert status < 500 and status != 429, lines
            f.tally.saw(str(status))
            if status >= 400 and b"application/json" in lines:
                answer = orjson.loads(body)
                assert "error" in answer or "code" in answer, answer
        finally:
            writer.close()


async def _sse_queries(f: Fuzzing, inputs: list[str]) -> None:
    """GET /sse with each query (half after a valid token): 4xx + JSON, or a stream."""
    for i, query in enumerate(inputs):
        f.tally.inputs += 1
        f.tally.connections += 1
        if i % 2:
            query = f"token={f.token}&{query}"
        target = quote(query, safe="=&:%+/?")
        raw = f"GET /sse?{target} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
        reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
        try:
            writer.write(raw)
            async with asyncio.timeout(WAIT):
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                if status == 200:
                    event = await reader.readuntil(b"\n\n")
                    event += await reader.readuntil(b"\n\n")  # after "retry:"
                    assert b'"type":"subscribed"' in event, event
                    f.tally.saw("stream")
                    continue
                body = await _read_until_eof(reader)
            assert status in (400, 401, 403, 431), head
            assert orjson.loads(body)["error"], body
            f.tally.saw(str(status))
        finally:
            writer.close()


async def _polling_bodies(f: Fuzzing, inputs: list[bytes]) -> None:
    """Long-polling POSTs on kept-alive sockets; a session takes bodies until one ends it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
    f.tally.connections += 1

    async def request(method: str, query: str, body: bytes = b"") -> tuple[int, bytes]:
        nonlocal reader, writer
        raw = (
            f"{method} /socket.io/?{query} HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: {len(body)}\r\nContent-Type: text/plain\r\n\r\n"
        ).encode() + body
        if writer.is_closing():
            reader, writer = await asyncio.open_connection("127.0.0.1", f.port)
            f.tally.connections += 1
        writer.write(raw)
        async with asyncio.timeout(WAIT):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
            answer = await reader.readexactly(length)
        if b"Connection: close" in head:
            writer.close()
        return int(head[9:12]), answer

    sid: str | None = None
    try:
        for body in inputs:
            f.tally.inputs += 1
            for _attempt in range(2):
                if sid is None:
                    status, answer = await request("GET", "EIO=4&transport=polling")
                    assert status == 200 and answer.startswith(b"0"), answer
                    sid = orjson.loads(answer[1:])["sid"]
                status, answer = await request("POST", f"EIO=4&transport=polling&sid={sid}", body)
                if status == 400 and orjson.loads(answer)["code"] == 1:
                    sid = None  # ended by an earlier input or a timeout: a new session
                    continue
                break
            assert status in (200, 400, 413), (status, answer)
            if status == 400:
                assert orjson.loads(answer)["code"] == 3, answer
            f.tally.saw(str(status))
            if status != 200:
                sid = None
        if sid is not None:
            await request("POST", f"EIO=4&transport=polling&sid={sid}", b"1")
    finally:
        writer.close()


async def _sio_packets(f: Fuzzing, inputs: list[str]) -> None:
    """Socket.IO over WebSocket, connected with a token; each packet, then a CONNECT to
    an unknown namespace as a probe: its connect_error (alive) or a close + EOF."""
    pending = list(inputs)
    probe = 0
    while pending:
        ws = await RawWebSocket.connect(f.port, path="/socket.io/?EIO=4&transport=websocket")
        f.tally.connections += 1
        assert ws.status == 101
        assert (await ws.frame())[1].startswith(b"0{")
        auth = orjson.dumps({"token": f.token, "projects": {"7": 0}})
        ws.send(OP_TEXT, b"40" + auth)
        try:
            while pending:
                packet = pending.pop()
                f.tally.inputs += 1
                probe += 1
                marker = f"/probe{probe}".encode()
                ws.writer.write(
                    client_frame(OP_TEXT, packet.encode("utf-8", "surrogatepass"))
                    + client_frame(OP_TEXT, b"40" + marker + b",")
                )
                ended = False
                async with asyncio.timeout(WAIT):
                    while True:
                        op, payload = await ws.frame()
                        if op == OP_TEXT and payload.startswith(b"44" + marker + b","):
                            f.tally.saw("alive")
                            break
                        if op == OP_CLOSE:
                            await _closed_by_server(f, ws, payload)
                            ended = True
                            break
                        assert op == OP_TEXT, op
                if ended:
                    break
        finally:
            ws.close()


Driver = Callable[[Fuzzing, list[Any]], Awaitable[None]]
TRANSPORTS: dict[str, tuple[Any, Driver, set[str]]] = {
    # name: (strategy, driver, outcomes the inputs must reach)
    "ws-frames": (s.ws_inputs, _ws_frames, {"alive", "close 1002", "close 1003", "incomplete"}),
    "http-handshakes": (s.http_inputs, _http_requests, {"101", "400", "404"}),
    "sse-queries": (s.sse_queries, _sse_queries, {"400", "401"}),
    "polling-bodies": (s.eio_bodies, _polling_bodies, {"200", "400"}),
    "socketio-packets": (s.eio_packets, _sio_packets, {"alive", "close 1000"}),
}


#: Inputs sent unmutated before the drawn ones (for example, the 404 comes from the
#: seed for an unknown path).
SEEDS: dict[str, list[Any]] = {
    "http-handshakes": list(s.HTTP_SEEDS),
    # One input per outcome the frames must reach: a ping answered, an unmasked
    # frame (1002), a binary message (1003), a message left unfinished.
    "ws-frames": [
        s.ws_frame(0x9, b"ping"),
        s.ws_frame(0x1, b"x", mask=False),
        s.ws_frame(0x2, b"binary"),
        s.ws_frame(0x1, b"{", fin=False),
    ],
    # A pong and a noop leave the session alive; a disconnect ends it (1000). Drawn
    # packets are nearly all fatal, so "alive" must not hang on a lucky draw.
    "socketio-packets": ["3", "6", "41"],
}


@pytest.fixture
async def loop_errors() -> AsyncIterator[list[dict[str, Any]]]:
    """Every exception the event loop would otherwise only log (a crashing protocol)."""
    loop = asyncio.get_running_loop()
    errors: list[dict[str, Any]] = []
    old = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: errors.append(context))
    yield errors
    loop.set_exception_handler(old)


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_malformed_input_is_refused_cleanly_and_everyone_else_is_served(
    transport: str,
    start_server: StartServer,
    loop_errors: list[dict[str, Any]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    strategy, driver, outcomes = TRANSPORTS[transport]
    # The seed corpus first, unmutated, as a fuzzer starts: each outcome the
    # transport must reach is then reached by some input, whatever Hypothesis draws.
    inputs = [*SEEDS.get(transport, []), *s.collect(strategy, s.SOCKET_FRAMES)]
    server, broker = await start_server(ip_rate=0, handshake_timeout=HANDSHAKE)
    watcher = await RawWebSocket.connect(server.port)
    watcher.send_json({"type": "subscribe", "token": token(projects=[7]), "projects": {"7": 0}})
    assert (await watcher.message())["type"] == "subscribed"
    fuzzing = Fuzzing(server, server.port, token(projects=[7, 9]))

    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="tidings"):
        await _run(inputs, lambda chunk: driver(fuzzing, chunk))
    elapsed = time.monotonic() - started
    tally = fuzzing.tally
    print(
        f"{transport}: {tally.inputs} inputs on {tally.connections} connections in "
        f"{elapsed:.1f} s: {dict(sorted(tally.outcomes.items()))}"
    )

    assert tally.inputs >= s.SOCKET_FRAMES
    assert outcomes <= set(tally.outcomes), tally.outcomes
    assert not loop_errors, loop_errors[:3]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text[:2000]
    # Everyone else is still served: the watcher gets a poke sent now.
    await broker.publish(project_channel(7), encode_poke(Poke(7, 5, time.time())))
    async with asyncio.timeout(WAIT):
        while (message := await watcher.message())["type"] != "poke":
            assert message["type"] == "heartbeat", message
    assert message["version"] == 5
    # And nothing fuzzed lingers: sockets and hub connections are released.
    deadline = time.monotonic() + WAIT
    while server.context.sockets > 1 or len(server.hub) > 1:
        assert time.monotonic() < deadline, (server.context.sockets, len(server.hub))
        await asyncio.sleep(0.05)
    watcher.close()
