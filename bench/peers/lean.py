"""The Python floor for bench/fanout.py: the leanest uvloop WebSocket fan-out.

One ``asyncio.Protocol`` with ``__slots__`` per client; a UDP datagram on the
control port carries a poke's JSON, framed once and written to every transport.
With ``--os-write`` (the ``python-oswrite`` probe) each frame is written with
``os.write`` on the socket's file descriptor instead of ``transport.write``:
this isolates what uvloop's write path costs per call.

    python bench/peers/lean.py <port> <control-udp-port> [--os-write]
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import sys
from typing import cast

import uvloop

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
CLIENTS: set[asyncio.Transport] = set()
FDS: dict[asyncio.Transport, int] = {}


def text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload


class Client(asyncio.Protocol):
    __slots__ = ("head", "transport")

    def __init__(self) -> None:
        self.head: bytes | None = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self.head is None:
            return
        head = self.head + data
        if b"\r\n\r\n" not in head:
            self.head = head if len(head) < 8192 else None
            return
        self.head = None
        key = b""
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"sec-websocket-key":
                key = value.strip()
        accept = base64.b64encode(hashlib.sha1(key + GUID).digest())
        assert self.transport is not None
        self.transport.write(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
        )
        CLIENTS.add(self.transport)
        FDS[self.transport] = self.transport.get_extra_info("socket").fileno()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is not None:
            CLIENTS.discard(self.transport)
            FDS.pop(self.transport, None)
            self.transport = None


class Control(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        frame = text_frame(data)
        for transport in CLIENTS:
            transport.write(frame)


class OsWriteControl(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        frame = text_frame(data)
        write = os.write
        for fd in FDS.values():
            try:
                write(fd, frame)
            except OSError:  # a full or broken socket: this probe just skips it
                continue


async def main(port: int, control: int, os_write: bool) -> None:
    loop = asyncio.get_running_loop()
    handler = OsWriteControl if os_write else Control
    await loop.create_datagram_endpoint(handler, local_addr=("127.0.0.1", control))
    server = await loop.create_server(Client, "127.0.0.1", port, backlog=4096)
    print(f"lean listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2]), "--os-write" in sys.argv[3:]))
