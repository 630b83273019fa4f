"""Origin for pushpin in bench/fanout.py: answers every request with a GRIP stream hold.

Pushpin forwards a client's ``GET /sse`` here once; the answer's ``Grip-Hold:
stream`` and ``Grip-Channel`` make pushpin keep the stream open and subscribe
it to the channel, after which pokes are published to pushpin directly.

    python bench/peers/grip_backend.py <port> <channel>
"""

from __future__ import annotations

import asyncio
import sys
from typing import cast

import uvloop


class Origin(asyncio.Protocol):
    __slots__ = ("buf", "transport")

    answer = b""

    def __init__(self) -> None:
        self.buf = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        while b"\r\n\r\n" in self.buf:
            _, self.buf = self.buf.split(b"\r\n\r\n", 1)
            assert self.transport is not None
            self.transport.write(Origin.answer)


async def main(port: int, channel: str) -> None:
    body = b"retry: 5000\n\n"
    Origin.answer = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-store\r\n"
        b"Grip-Hold: stream\r\nGrip-Channel: " + channel.encode() + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Origin, "127.0.0.1", port, backlog=4096)
    print(f"grip origin listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2]))
