"""A new Socket.IO client's server CPU, in one process: no sockets, no peer.

    PYTHONPATH=$PWD/src .venv/bin/python bench/sio_open.py [--ws] [--profile]

Drives a real push server's objects (``PushServer`` started on the in-process
broker; its listener is never used) along a client's connection path, from
``connection_made`` to the ``subscribed`` frame written, with stand-in
transports: each client sends what ``bench/storm.py``'s burst clients send (the
WebSocket handshake with ``EIO=4&transport=websocket`` and the CONNECT frame
with a JWT pipelined behind it; ``/ws``: the handshake and a subscribe) in one
read. It times the calls with ``time.thread_time`` (this thread's CPU only),
``--clients`` a round, and reports the median of ``--rounds`` rounds per
client and the lowest (the least disturbed by other work on the machine);
``--ws`` runs ``/ws``'s path in the same rounds, alternating, for the ratio.
With ``--profile``, one more round of each under cProfile gives the calls per
client (Python functions and all calls) and the costliest functions. The
kernel, uvloop and the event loop's own work are not in these figures
(``bench/storm.py --burst`` measures them); the socket closes, not timed,
follow each round.

Another tree's server: ``PYTHONPATH=/tmp/before/src`` (the first line printed
says which tree was measured).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import pstats
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import uvloop

import tidings
from tidings.broker.memory import MemoryBroker
from tidings.protocol.tokens import KeyRing, sign_push_token
from tidings.push.http import HttpConnection
from tidings.push.server import PushServer
from tidings.push.settings import PushSettings

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.burst import request

PROJECT = 7
PORT = 8080


class StandInSocket:
    """What ``direct_fd`` reads of uvloop's socket object."""

    __slots__ = ("fileno", "type")

    def __init__(self, fd: int) -> None:
        self.type = socket.SOCK_STREAM
        self.fileno = fd.__index__  # a builtin: no Python frame, as uvloop's is not one


class StandInTransport:
    """The transport calls on the connection path, recording what is written."""

    __slots__ = ("_extra", "closing", "protocol", "written")

    def __init__(self, cid: int) -> None:
        self._extra = {
            "peername": (f"127.0.{cid // 250 % 250}.{cid % 250 + 1}", 40_000 + cid % 20_000),
            "socket": StandInSocket(1000 + cid),
            "sslcontext": None,
        }
        self.closing = False
        self.protocol: asyncio.BaseProtocol | None = None
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._extra.get(name, default)

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol | None:
        return self.protocol

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


async def start_server(clients: int) -> tuple[PushServer, str]:
    """A push server as ``bench/storm.py`` starts it, ready (state ``ok``)."""
    keys = KeyRing.generate()
    settings = PushSettings(
        ip_rate=0,  # storm's: every client from a few loopback addresses
        heartbeat_interval=3600,
        max_connections=clients + 100,
        # The rounds hold the loop for a second or so: no link alarm meanwhile.
        link_deaf_after=60.0,
    )
    broker = MemoryBroker()
    server = PushServer(settings, broker.subscriber(), keys)
    await server.start("127.0.0.1", 0)
    deadline = time.monotonic() + 10
    while server.hub.state.value != "ok":
        if time.monotonic() > deadline:
            raise RuntimeError("the server never became ready")
        await asyncio.sleep(0.02)
    return server, keys.spec()


def requests(kind: str, keys_spec: str, first: int, count: int) -> list[bytes]:
    """Each client's first read, its own token (each new to the server)."""
    keys = KeyRing.parse(keys_spec)
    return [
        request(kind, PORT, sign_push_token(keys, first + i + 1, [PROJECT], ttl=3600)[0], PROJECT)
        for i in range(count)
    ]


def connect(server: PushServer, reads: list[bytes], first: int) -> list[StandInTransport]:
    """The measured part: every client's accept and first read."""
    ctx = server.context
    transports = [StandInTransport(first + i) for i in range(len(reads))]
    for transport, data in zip(transports, reads, strict=True):
        conn = HttpConnection(ctx)
        conn.connection_made(transport)  # type: ignore[arg-type]
        conn.data_received(data)
    return transports


def check_and_close(transports: list[StandInTransport]) -> None:
    """Every client got its ``subscribed`` frame; then each socket goes (not timed)."""
    for transport in transports:
        written = b"".join(transport.written)
        if b'"subscribed"' not in written or transport.closing:
            raise RuntimeError(f"a client was not subscribed: {written[:300]!r}")
    for transport in transports:
        transport.closing = True
        protocol = transport.protocol
        assert protocol is not None
        protocol.connection_lost(None)


async def one_round(
    server: PushServer,
    kind: str,
    keys_spec: str,
    first: int,
    n: int,
    profile: cProfile.Profile | None,
) -> float:
    reads = requests(kind, keys_spec, first, n)
    gc.collect()
    await asyncio.sleep(0)
    if profile is not None:
        profile.enable()
    t0 = time.thread_time()
    transports = connect(server, reads, first)
    cpu = time.thread_time() - t0
    if profile is not None:
        profile.disable()
    check_and_close(transports)
    await asyncio.sleep(0.05)  # the server's timers and ticker catch up
    return cpu / n * 1e6


def calls_per_client(profile: cProfile.Profile, n: int, top: int) -> dict[str, Any]:
    stats = pstats.Stats(profile)
    rows = stats.stats  # type: ignore[attr-defined]
    total = sum(row[1] for row in rows.values())
    python = sum(row[1] for (path, _, _), row in rows.items() if path != "~")
    costly = sorted(rows.items(), key=lambda item: item[1][2], reverse=True)[:top]
    return {
        "calls": round(total / n, 1),
        "python_calls": round(python / n, 1),
        "top_self_time": [
            (f"{Path(path).name}:{line}:{name}", round(row[1] / n, 2), round(row[2] / n * 1e6, 2))
            for (path, line, name), row in costly
        ],
    }


async def run(args: argparse.Namespace) -> None:
    n = args.clients
    kinds = ["sio", "ws"] if args.ws else ["sio"]
    server, keys_spec = await start_server(n * (len(kinds) + 1))
    try:
        used = 0
        # A warm-up round of each: caches, the hub's first subscribe to the project.
        for kind in kinds:
            await one_round(server, kind, keys_spec, used, min(n, 500), None)
            used += n
        rounds: dict[str, list[float]] = {kind: [] for kind in kinds}
        for r in range(args.rounds):
            order = kinds if r % 2 == 0 else kinds[::-1]
            for kind in order:
                rounds[kind].append(await one_round(server, kind, keys_spec, used, n, None))
                used += n
        label = {"sio": "Socket.IO over WebSocket", "ws": "/ws"}
        print(f"tidings from {Path(tidings.__file__).parent}")
        medians = {kind: statistics.median(values) for kind, values in rounds.items()}
        lows = {kind: min(values) for kind, values in rounds.items()}
        for kind in kinds:
            figures = ", ".join(f"{v:.1f}" for v in rounds[kind])
            print(
                f"{label[kind]}: {medians[kind]:.1f} us per client, median of {args.rounds} "
                f"rounds (lowest {lows[kind]:.1f}; rounds: {figures})"
            )
        if args.ws:
            print(
                f"Socket.IO / /ws: {medians['sio'] / medians['ws']:.2f}x of the medians, "
                f"{lows['sio'] / lows['ws']:.2f}x of the lowest"
            )
        if args.profile:
            for kind in kinds:
                profile = cProfile.Profile()
                await one_round(server, kind, keys_spec, used, n, profile)
                used += n
                found = calls_per_client(profile, n, args.top)
                print(
                    f"{label[kind]} under cProfile: {found['calls']} calls per client, "
                    f"{found['python_calls']} of them Python functions"
                )
                for name, calls, us in found["top_self_time"]:
                    print(f"  {calls:6.2f} calls {us:7.2f} us  {name}")
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=3000, help="clients per round")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--ws", action="store_true", help="also /ws's path, alternating")
    parser.add_argument("--profile", action="store_true", help="calls per client (cProfile)")
    parser.add_argument("--top", type=int, default=25, help="functions listed with --profile")
    args = parser.parse_args(argv)
    uvloop.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
