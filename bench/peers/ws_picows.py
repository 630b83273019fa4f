"""Peer for bench/fanout.py: a ``picows`` fan-out server with a pre-encoded frame.

Each poke's text frame is built once and the same bytes are written to every
client's underlying transport (picows' own ``send`` frames per call). A UDP
datagram on the control port carries a poke's JSON.

    python bench/peers/ws_picows.py <port> <control-udp-port>
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from picows import WSFrame, WSListener, WSTransport, WSUpgradeRequest, ws_create_server

CLIENTS: set[asyncio.Transport] = set()


def text_frame(payload: bytes) -> bytes:
    n = len(payload)
    if n < 126:
        return bytes((0x81, n)) + payload
    return bytes((0x81, 126)) + n.to_bytes(2, "big") + payload


class Client(WSListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.raw: asyncio.Transport | None = None

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.raw = transport.underlying_transport
        CLIENTS.add(self.raw)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        pass

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.raw is not None:
            CLIENTS.discard(self.raw)
            self.raw = None


class Control(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        frame = text_frame(data)
        for transport in CLIENTS:
            transport.write(frame)


def listener(request: WSUpgradeRequest) -> Client:
    return Client()


async def main(port: int, control: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Control, local_addr=("127.0.0.1", control))
    server = await ws_create_server(listener, "127.0.0.1", port, backlog=4096)
    print(f"picows listening on 127.0.0.1:{port}", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
