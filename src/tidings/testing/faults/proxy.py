"""A TCP proxy that injects one network fault on command: a process of its own.

``python -m tidings.testing.faults.proxy --listen PORT --target HOST:PORT --mode MODE``.
SIGUSR1 starts the fault, SIGUSR2 ends it. Modes:

- ``blackhole``: bytes in both directions are read and thrown away (the peer's
  writes succeed, nothing arrives: a deaf path, as a partition looks to TCP),
  and so is a close (no FIN goes through: the other side keeps the connection).
  When it ends, every connection that lost bytes is closed (its byte stream is
  no longer a valid protocol stream) and new ones forward again.
- ``stall``: the proxy stops reading from both sides, so the kernel buffers
  fill and the sender's writes back up, as with a client that stops reading.
  When it ends, reading resumes and everything buffered flows on.

It does not model latency or loss of single packets. Each direction's buffer is
bounded by ``CHUNK`` plus the transport's write buffer (flow control pauses the
reader past ``HIGH_WATER``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

CHUNK = 64 * 1024
HIGH_WATER = 256 * 1024


class Pipe:
    """Both directions of one proxied connection."""

    def __init__(
        self,
        proxy: Proxy,
        down_reader: asyncio.StreamReader,
        down_writer: asyncio.StreamWriter,
    ) -> None:
        self.proxy = proxy
        self.down = (down_reader, down_writer)
        self.tainted = False
        self.writers: list[asyncio.StreamWriter] = [down_writer]

    async def run(self) -> None:
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*self.proxy.target), 5.0
            )
        except (OSError, TimeoutError):
            self.close()
            return
        self.writers.append(up_writer)
        await asyncio.gather(
            self.copy(self.down[0], up_writer),
            self.copy(up_reader, self.down[1]),
            return_exceptions=True,
        )
        self.close()

    async def copy(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            while self.proxy.faulty and self.proxy.mode == "stall":
                await self.proxy.changed.wait()
            data = await reader.read(CHUNK)
            if not data:
                if self.proxy.faulty and self.proxy.mode == "blackhole":
                    # A partition carries no FIN either: the other side keeps the
                    # connection (Redis still lists it) until the fault ends.
                    self.tainted = True
                    return
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if self.proxy.faulty and self.proxy.mode == "blackhole":
                self.tainted = True
                continue
            writer.write(data)
            if writer.transport.get_write_buffer_size() > HIGH_WATER:
                await writer.drain()

    def close(self) -> None:
        for writer in self.writers:
            writer.close()
        self.proxy.pipes.discard(self)


class Proxy:
    def __init__(self, target: tuple[str, int], mode: str) -> None:
        self.target = target
        self.mode = mode
        self.faulty = False
        self.changed = asyncio.Event()
        self.pipes: set[Pipe] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        pipe = Pipe(self, reader, writer)
        self.pipes.add(pipe)
        await pipe.run()

    def set_fault(self, on: bool) -> None:
        self.faulty = on
        if not on and self.mode == "blackhole":
            for pipe in [p for p in self.pipes if p.tainted]:
                pipe.close()
        self.changed.set()
        self.changed = asyncio.Event()
        print(f"fault {'on' if on else 'off'}", flush=True)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--target", required=True, help="host:port")
    parser.add_argument("--mode", choices=("blackhole", "stall"), required=True)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    proxy = Proxy((host, int(port)), args.mode)
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, proxy.set_fault, True)
    loop.add_signal_handler(signal.SIGUSR2, proxy.set_fault, False)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    server = await asyncio.start_server(proxy.accept, "127.0.0.1", args.listen)
    print(f"proxy listening {args.listen} -> {args.target} ({args.mode})", flush=True)
    async with server:
        await stop.wait()
    for pipe in list(proxy.pipes):
        pipe.close()


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
