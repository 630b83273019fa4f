"""One load-generator process for bench/fanout.py: N idle clients, then count pokes.

Opens ``count`` connections (WebSocket, SSE or Engine.IO over WebSocket; the HTTP
request is given whole in the spec) from the spec's source addresses in
127.0.0.0/8, walks each through the spec's handshake ``steps`` (wait for a
marker, then optionally send a masked text frame), and then records, for every
poke version it sees, the monotonic time each connection got it. Built on uvloop
raw ``asyncio.Protocol`` objects: no frame parsing after the handshake, a poke
is found by its ``"version":N`` field, whatever the framing around it.

Talks to its parent on stdin/stdout, one line each:
    -> progress <ready> <failed>         while connecting
    -> ready <ready> <failed> <seconds>  every connection attempt finished
    -> got <version> <count>             every ready connection got this version
    <- report <path>                     write arrival times as JSON, answer "reported"
    <- quit (or EOF)                     close everything and exit

    python bench/fanout_load.py '<json spec>'
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
from typing import Any, cast

import uvloop

IP_BIND_ADDRESS_NO_PORT = 24
VERSION = re.compile(rb'"version":(\d+)[^\d]')
MASK = b"\x00\x00\x00\x00"  # a zero mask is valid (RFC 6455 5.3) and leaves the payload as is


def client_frame(payload: str | bytes, opcode: int = 0x1) -> bytes:
    """A masked client frame (text unless ``opcode`` says otherwise)."""
    if isinstance(payload, str):
        payload = payload.encode()
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + MASK + payload


class Stats:
    """Arrival times per poke version, shared by the process's connections."""

    def __init__(self, first_version: int, last_version: int) -> None:
        self.first = first_version
        self.last = last_version
        self.arrivals: dict[int, list[float]] = {
            v: [] for v in range(first_version, last_version + 1)
        }
        self.ready = 0
        self.failed = 0
        self.lost = 0
        self.unexpected = 0

    def got(self, version: int, now: float) -> None:
        times = self.arrivals.get(version)
        if times is None:
            self.unexpected += 1
            return
        times.append(now)
        if len(times) == self.ready:
            sys.stdout.write(f"got {version} {len(times)}\n")
            sys.stdout.flush()


class Client(asyncio.Protocol):
    __slots__ = ("buf", "opened", "ready", "spec", "stats", "step", "tail", "transport", "waiter")

    def __init__(self, spec: dict[str, Any], stats: Stats, waiter: asyncio.Future[bool]) -> None:
        self.spec = spec
        self.stats = stats
        self.waiter = waiter
        self.transport: asyncio.Transport | None = None
        self.buf = b""
        self.opened = False
        self.ready = False
        self.step = 0
        self.tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        transport.write(self.spec["request_bytes"])

    def _fail(self) -> None:
        if not self.waiter.done():
            self.waiter.set_result(False)
        if self.transport is not None:
            self.transport.close()

    def _advance(self) -> None:
        """Run the handshake steps as far as the bytes received allow."""
        steps = self.spec["steps"]
        while self.step < len(steps):
            marker, reply = steps[self.step]
            if marker:
                at = self.buf.find(marker)
                if at < 0:
                    return
                self.buf = self.buf[at + len(marker) :]
            if reply is not None and self.transport is not None:
                self.transport.write(reply)
            self.step += 1
        self.ready = True
        self.tail = self.buf[-32:]
        self.buf = b""
        if not self.waiter.done():
            self.waiter.set_result(True)

    def data_received(self, data: bytes) -> None:
        if self.ready:
            now = time.monotonic()
            if self.spec["ping"] and data == self.spec["ping"]:
                assert self.transport is not None
                self.transport.write(self.spec["pong"])
                return
            buf = self.tail + data if self.tail else data
            end = 0
            for match in VERSION.finditer(buf):
                self.stats.got(int(match.group(1)), now)
                end = match.end() - 1
            # Keep what follows the last complete match: a poke split across reads.
            self.tail = buf[end:][-32:]
            return
        self.buf += data
        if len(self.buf) > 65536:
            self._fail()
            return
        if not self.opened:
            head_end = self.buf.find(b"\r\n\r\n")
            if head_end < 0:
                return
            status = self.buf[:13]
            if status not in (b"HTTP/1.1 101 ", b"HTTP/1.1 200 ", b"HTTP/1.0 200 "):
                self._fail()
                return
            self.opened = True
            self.buf = self.buf[head_end + 4 :]
        self._advance()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.stats.lost += 1
        self._fail()
        self.transport = None


async def connect_one(
    loop: asyncio.AbstractEventLoop,
    spec: dict[str, Any],
    stats: Stats,
    source: str,
    clients: list[Client],
) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((source, 0))
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, (spec["host"], spec["port"])), 10)
    except (OSError, TimeoutError):
        sock.close()
        return False
    waiter: asyncio.Future[bool] = loop.create_future()
    client = Client(spec, stats, waiter)
    try:
        await loop.create_connection(lambda: client, sock=sock)
        ok = await asyncio.wait_for(waiter, spec.get("handshake_timeout", 30))
    except (OSError, TimeoutError):
        client._fail()
        return False
    if ok:
        clients.append(client)
    return ok


def write_json(path: str, data: dict[str, Any]) -> None:
    with open(path, "w") as f:
        json.dump(data, f)


async def run(spec: dict[str, Any]) -> int:
    loop = asyncio.get_running_loop()
    spec["request_bytes"] = spec["request"].encode()
    spec["steps"] = [
        (
            m.encode() if m else b"",
            None if r is None else client_frame(r) if spec["ws"] else r.encode(),
        )
        for m, r in spec["steps"]
    ]
    spec["ping"] = b"\x81\x012" if spec.get("eio_pong") else b""
    spec["pong"] = client_frame("3")
    stats = Stats(spec["first_version"], spec["last_version"])
    clients: list[Client] = []
    sources: list[str] = spec["sources"]
    per_source = -(-spec["count"] // len(sources))
    sem = asyncio.Semaphore(spec.get("concurrency", 100))
    started = time.monotonic()
    deadline = started + spec.get("connect_seconds", 180)

    async def one(i: int) -> None:
        async with sem:
            if time.monotonic() > deadline:
                stats.failed += 1
                return
            if await connect_one(loop, spec, stats, sources[i // per_source], clients):
                stats.ready += 1
            else:
                stats.failed += 1

    async def progress() -> None:
        while True:
            await asyncio.sleep(0.5)
            sys.stdout.write(f"progress {stats.ready} {stats.failed}\n")
            sys.stdout.flush()

    reporter = loop.create_task(progress())
    await asyncio.gather(*(one(i) for i in range(spec["count"])))
    reporter.cancel()
    elapsed = time.monotonic() - started
    sys.stdout.write(f"ready {stats.ready} {stats.failed} {elapsed:.3f}\n")
    sys.stdout.flush()

    async def seen() -> None:
        # Partial counts every 0.5 s, so that a stalled poke shows.
        shown: dict[int, int] = {}
        while True:
            await asyncio.sleep(0.5)
            for version, times in stats.arrivals.items():
                if shown.get(version, 0) != len(times):
                    shown[version] = len(times)
                    sys.stdout.write(f"seen {version} {len(times)}\n")
            sys.stdout.flush()

    seer = loop.create_task(seen())
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    end_of_life = started + spec.get("max_seconds", 1800)
    while time.monotonic() < end_of_life:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
        except TimeoutError:
            continue
        words = line.decode().split()
        if not words or words[0] == "quit":
            break
        if words[0] == "report":
            report = {
                "ready": stats.ready,
                "failed": stats.failed,
                "lost": stats.lost,
                "unexpected": stats.unexpected,
                "arrivals": {str(v): t for v, t in stats.arrivals.items()},
            }
            await asyncio.to_thread(write_json, words[1], report)
            sys.stdout.write("reported\n")
            sys.stdout.flush()
    seer.cancel()
    for client in clients:
        if client.transport is not None:
            client.transport.abort()
    await asyncio.sleep(0.1)
    return 0


def main() -> int:
    spec = json.loads(sys.argv[1])
    return uvloop.run(run(spec))


if __name__ == "__main__":
    sys.exit(main())
