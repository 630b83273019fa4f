"""Peer for bench/fanout.py: python-socketio (ASGI) under uvicorn, uvloop + httptools.

``AsyncServer.emit("poke", message)`` to every client of namespace ``/``; a UDP
datagram on the control port carries a poke's JSON. Engine.IO pings and
uvicorn's WebSocket pings are pushed out past the run (the generator does not
answer pings unless asked to; tidings and the other servers send none either).

    python bench/peers/sio_python.py <port> <control-udp-port>
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import socketio
import uvicorn
import uvloop

sio = socketio.AsyncServer(
    async_mode="asgi", ping_interval=3600, ping_timeout=600, cors_allowed_origins="*"
)
app = socketio.ASGIApp(sio)
TASKS: set[asyncio.Task[Any]] = set()


class Control(asyncio.DatagramProtocol):
    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        task = asyncio.get_running_loop().create_task(sio.emit("poke", json.loads(data)))
        TASKS.add(task)
        task.add_done_callback(TASKS.discard)


async def main(port: int, control: int) -> None:
    loop = asyncio.get_running_loop()
    await loop.create_datagram_endpoint(Control, local_addr=("127.0.0.1", control))
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="none",
        http="httptools",
        ws="websockets-sansio",
        ws_ping_interval=None,
        lifespan="off",
        log_level="warning",
        backlog=4096,
        access_log=False,
    )
    print(f"python-socketio listening on 127.0.0.1:{port}", flush=True)
    await uvicorn.Server(config).serve()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), int(sys.argv[2])))
