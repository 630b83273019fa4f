"""Peer for bench/fanout.py: a minimal ``websockets`` fan-out server on uvloop.

The library's idiomatic form: one handler coroutine per client, ``broadcast()``
of each poke's text to every connection. No compression, no keepalive pings
(the generator does not answer them; the other servers send none either). A UDP
datagram on the control port carries a poke's JSON.

    python bench/peers/ws_websockets.py <port> <control-udp-port>
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from websockets.asyncio.server import ServerConnection, broadcast, serve

CLIENTS: set[ServerConnection] = set()


async def handler(ws: ServerConnection) -> None:
    CLIENTS.add(ws)
    try:
        await ws.wait_closed()
    finally:
        CLIENTS.discard(ws)


class Control(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        broadcast(CLIENTS, data.decode())


async def main(port: int, control: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Control, local_addr=("127.0.0.1", control))
    async with serve(
        handler,
        "127.0.0.1",
        port,
        compression=None,
        ping_interval=None,
        backlog=4096,
    ) as server:
        print(f"websockets listening on 127.0.0.1:{port}", flush=True)
        await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
