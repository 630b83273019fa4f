"""Socket.IO fan-out cost: python-socketio, Node socket.io and the sans-I/O session.

    .venv/bin/python tests/push/sio/bench_sio.py --clients 5000 --pokes 20

Starts each server in its own process, connects N WebSocket clients (one driver
process, minimal raw-socket clients) that each subscribe to one project, then
broadcasts K ~60-byte pokes one after another, each once all clients got the last.
Reports the server's CPU time per client per poke and its RSS growth per
connection. The "tidings" server is the leanest integration: uvloop, one
asyncio.Protocol per connection, one pre-encoded WebSocket frame written to
every upgraded session. Not a test (pytest does not collect it); python-socketio
and Node socket.io are installed by hand for their parts (see bench_node_server.mjs).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import struct
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

PROJECT = 7
ROOT = Path(__file__).resolve().parents[3]
NODE_SERVER = Path(__file__).with_name("bench_node_server.mjs")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def ws_frame(payload: bytes, opcode: int = 1, mask: bool = False) -> bytes:
    """One unfragmented WebSocket frame (a zero mask key when masking: valid and cheap)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    return head + (b"\0\0\0\0" if mask else b"") + payload


def parse_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take complete frames off the buffer: (opcode, unmasked payload)."""
    frames = []
    while len(buf) >= 2:
        opcode, second = buf[0] & 0x0F, buf[1]
        n, i = second & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                break
            n, i = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                break
            n, i = struct.unpack_from("!Q", buf, 2)[0], 10
        masked = second & 0x80
        key = bytes(buf[i : i + 4]) if masked else b""
        i += 4 if masked else 0
        if len(buf) < i + n:
            break
        payload = bytes(buf[i : i + n])
        if masked and key != b"\0\0\0\0":
            payload = bytes(b ^ key[j % 4] for j, b in enumerate(payload))
        frames.append((opcode, payload))
        del buf[: i + n]
    return frames


# -- the tidings server: SioSession on a bare asyncio.Protocol --------------------------


def serve_tidings(port: int, control_port: int) -> None:
    from tidings.protocol import push
    from tidings.protocol.poke import Poke, encode_poke
    from tidings.push.sio.session import SioSession, SocketIOServer, Subscribe
    from tidings.push.sio.socketio import encode_message

    server = SocketIOServer()
    subscribers: dict[int, list[Conn]] = {}

    class Conn(asyncio.Protocol):
        __slots__ = ("buf", "session", "transport")

        def __init__(self) -> None:
            self.buf = bytearray()
            self.session: SioSession | None = None
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.buf += data
            now = loop.time()
            if self.session is None:
                end = self.buf.find(b"\r\n\r\n")
                if end < 0:
                    return
                head = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
                del self.buf[: end + 4]
                query = head[0].split(" ")[1].partition("?")[2]
                key = next(
                    h.split(":", 1)[1].strip()
                    for h in head
                    if h.lower().startswith("sec-websocket-key")
                )
                session, out = server.handle_websocket(query, now)
                if session is None:
                    self.transport.close()
                    return
                accept = base64.b64encode(hashlib.sha1(key.encode() + WS_GUID).digest())
                self.transport.write(
                    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
                )
                self.session = session
                self.apply(out)
            for opcode, payload in parse_frames(self.buf):
                if opcode == 1:
                    self.apply(self.session.receive_ws(payload, now))
                elif opcode == 8:
                    self.apply(self.session.ws_closed(now))
                    self.transport.close()

        def connection_lost(self, exc: object) -> None:
            if self.session is not None and not self.session.closed:
                self.session.ws_closed(loop.time())
            for subs in subscribers.values():
                if self in subs:
                    subs.remove(self)

        def apply(self, out: Any) -> None:
            for frame in out.frames:
                self.transport.write(ws_frame(frame))
            if out.close_websocket:
                self.transport.close()
            for event in out.events:
                if isinstance(event, Subscribe):
                    for project in event.projects:
                        subscribers.setdefault(project, []).append(self)
                    msg = push.subscribed(event.projects, push.ServerState.OK, 25.0)
                    assert self.session is not None
                    self.apply(self.session.send_message(msg, loop.time()))

    version = 0

    def broadcast() -> None:
        nonlocal version
        version += 1
        packet = encode_message(encode_poke(Poke(PROJECT, version, time.time())))
        frame = ws_frame(packet)  # encoded once, written to every socket
        for conn in subscribers.get(PROJECT, ()):
            if conn.session.websocket:  # type: ignore[union-attr]
                conn.transport.write(frame)

    async def ticker() -> None:
        while True:
            await asyncio.sleep(1.0)
            for session, out in server.tick(loop.time()):
                del session, out  # pings of idle clients: not part of this measurement

    async def main() -> None:
        await loop.create_server(Conn, "127.0.0.1", port, backlog=4096)
        await control(control_port, broadcast)
        tick_task = asyncio.ensure_future(ticker())
        await asyncio.Event().wait()
        tick_task.cancel()

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())


# -- python-socketio on uvicorn (ASGI, uvloop, httptools, websockets) -----------------


def serve_python_socketio(port: int, control_port: int) -> None:
    import socketio
    import uvicorn

    sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"])
    version = 0

    async def subscribe(sid: str, data: dict[str, Any]) -> None:
        for project in data.get("projects", {}):
            await sio.enter_room(sid, f"p{project}")
        await sio.emit("subscribed", {"type": "subscribed", "projects": data["projects"]}, to=sid)

    sio.on("subscribe", subscribe)  # not as a decorator: socketio has no type hints

    emits: set[asyncio.Future[None]] = set()

    def broadcast() -> None:
        nonlocal version
        version += 1
        poke = {"type": "poke", "project": PROJECT, "version": version, "ts": time.time()}
        emit = asyncio.ensure_future(sio.emit("poke", poke, room=f"p{PROJECT}"))
        emits.add(emit)
        emit.add_done_callback(emits.discard)

    async def main() -> None:
        config = uvicorn.Config(
            socketio.ASGIApp(sio),
            host="127.0.0.1",
            port=port,
            loop="none",
            ws="websockets-sansio",
            log_level="warning",
            lifespan="off",
            backlog=4096,
        )
        await control(control_port, broadcast)
        await uvicorn.Server(config).serve()

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())


async def control(port: int, broadcast: Any) -> None:
    """A line protocol for the driver: ``rss``, ``cpu``, ``poke``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            command = line.strip()
            if command == b"rss":
                writer.write(b"%d\n" % rss_bytes())
            elif command == b"cpu":
                writer.write(b"%.6f\n" % time.process_time())
            elif command == b"poke":
                broadcast()
                writer.write(b"ok\n")

    await asyncio.start_server(handle, "127.0.0.1", port)


# -- the driver: clients and measurement -----------------------------------------------


class Client(asyncio.Protocol):
    """A minimal Socket.IO client over WebSocket: connect, subscribe, count pokes."""

    pokes = 0
    ready = 0
    lost = 0

    def __init__(self, port: int) -> None:
        self.port = port
        self.buf = bytearray()
        self.upgraded = False
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        key = base64.b64encode(os.urandom(16))
        transport.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "
            + key
            + b"\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )

    def send(self, text: bytes) -> None:
        self.transport.write(ws_frame(text, mask=True))

    def connection_lost(self, exc: object) -> None:
        Client.lost += 1

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            del self.buf[: end + 4]
            self.upgraded = True
        for opcode, payload in parse_frames(self.buf):
            if opcode != 1:
                continue
            if payload.startswith(b'42["poke"'):
                Client.pokes += 1
            elif payload == b"2":
                self.send(b"3")
            elif payload.startswith(b"0{"):
                self.send(b"40")
            elif payload.startswith(b"40"):
                self.send(b'42["subscribe",{"token":"t","projects":{"%d":0}}]' % PROJECT)
            elif payload.startswith(b'42["subscribed"'):
                Client.ready += 1


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, command: bytes) -> bytes:
    writer.write(command + b"\n")
    return (await reader.readline()).strip()


async def wait_until(predicate: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark stalled")
        await asyncio.sleep(0.01)


async def drive(impl: str, clients: int, pokes: int, port: int) -> dict[str, float]:
    control_port = port + 1
    if impl == "node-socket.io":
        command = ["node", str(NODE_SERVER), str(port), str(control_port)]
    else:
        command = [sys.executable, __file__, "serve", impl, str(port), str(control_port)]
    proc = await asyncio.create_subprocess_exec(*command, cwd=ROOT)
    try:
        for _ in range(200):
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", control_port)
                break
            except OSError:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        rss0 = int(await ask(reader, writer, b"rss"))
        Client.pokes = Client.ready = Client.lost = 0
        loop = asyncio.get_running_loop()
        conns = []
        for i in range(0, clients, 200):
            batch = [
                loop.create_connection(lambda: Client(port), "127.0.0.1", port)
                for _ in range(min(200, clients - i))
            ]
            conns += await asyncio.gather(*batch)
        await wait_until(lambda: Client.ready >= clients, 120)
        await asyncio.sleep(1.0)
        rss1 = int(await ask(reader, writer, b"rss"))
        cpu0 = float(await ask(reader, writer, b"cpu"))
        start = time.monotonic()
        for k in range(1, pokes + 1):
            await ask(reader, writer, b"poke")
            # A client the server dropped stops counting (reported as "lost").
            await wait_until(lambda k=k: Client.pokes >= k * (clients - Client.lost), 60)
        elapsed = time.monotonic() - start
        cpu1 = float(await ask(reader, writer, b"cpu"))
        lost = Client.lost
        for transport, _ in conns:
            transport.close()
        writer.close()
        return {
            "cpu_us_per_client_per_poke": (cpu1 - cpu0) / (clients * pokes) * 1e6,
            "wall_ms_per_poke": elapsed / pokes * 1e3,
            "rss_kb_per_connection": (rss1 - rss0) / clients / 1024,
            "clients_lost": lost,
        }
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 10)


def micro(n: int) -> None:
    """The session layer alone, no sockets: bytes per session and time per send."""
    import gc
    import tracemalloc

    from tidings.push.sio.session import SocketIOServer
    from tidings.push.sio.socketio import encode_message

    packet = encode_message(b'{"type":"poke","project":7,"version":43,"ts":1732780200.5}')
    for transport in ("websocket", "polling"):
        server = SocketIOServer()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        sessions = []
        for _ in range(n):
            if transport == "websocket":
                session, _ = server.handle_websocket("EIO=4&transport=websocket", 0.0)
                assert session is not None
                session.receive_ws('40{"token":"t","projects":{"7":1}}', 0.0)
            else:
                session, _ = server.handle_http("GET", "EIO=4&transport=polling", b"", 0.0)
                assert session is not None
                q = "EIO=4&transport=polling&sid=" + session.sid
                server.handle_http("POST", q, b'40{"token":"t","projects":{"7":1}}', 0.0)
                server.handle_http("GET", q, b"", 0.0)  # takes the CONNECT answer
                server.handle_http("GET", q, b"", 0.0)  # held
            sessions.append(session)
        gc.collect()
        per_session = (tracemalloc.get_traced_memory()[0] - before) / n
        tracemalloc.stop()
        start = time.perf_counter()
        if transport == "websocket":
            for s in sessions:
                if not s.websocket:  # what the fan-out loop asks a session
                    raise AssertionError
        else:
            for s in sessions:
                s.send_packet(packet, 1.0)
        per_send = (time.perf_counter() - start) / n * 1e6
        print(
            f"session layer, {transport}: {per_session:.0f} B per session "
            f"(table entry and sid included), {per_send:.3f} us per client per poke",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--micro", action="store_true", help="the session layer alone")
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--pokes", type=int, default=20)
    parser.add_argument(
        "--impl", choices=["tidings", "python-socketio", "node-socket.io", "all"], default="all"
    )
    parser.add_argument("--port", type=int, default=18600)
    args = parser.parse_args()
    if args.micro:
        micro(args.clients)
        return
    every = ["python-socketio", "node-socket.io", "tidings"]
    impls = every if args.impl == "all" else [args.impl]
    for impl in impls:
        result = uvloop.run(drive(impl, args.clients, args.pokes, args.port))
        print(impl, {k: round(v, 2) for k, v in result.items()}, flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        _, _, impl, port, control_port = sys.argv
        serve = serve_tidings if impl == "tidings" else serve_python_socketio
        serve(int(port), int(control_port))
    else:
        main()
