"""A private ``redis-server``: a test or benchmark that restarts, pauses or
silences Redis, or must share no channel with other work, runs its own."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from pathlib import Path

from tidings.testing.processes import START_TIMEOUT, Process, free_port

#: Free ports tried before giving up: one found free may be taken before Redis binds it.
PORT_ATTEMPTS = 5


def pings(port: int) -> bool:
    """Whether a Redis server on 127.0.0.1:``port`` answers PING within half a second."""
    with socket.socket() as s, contextlib.suppress(OSError):
        s.settimeout(0.5)
        s.connect(("127.0.0.1", port))
        s.sendall(b"PING\r\n")
        return s.recv(16).startswith(b"+PONG")
    return False


class RedisServer:
    """``redis-server`` on a free port of 127.0.0.1 (the address the port was found
    free on: by default Redis binds every address, where another socket may hold
    it), no persistence, its log in ``workdir``. Restarted on the same port."""

    def __init__(self, workdir: Path, name: str = "redis") -> None:
        self.workdir = workdir
        self.port = 0
        self.process = Process(name, [], workdir / f"{name}.log", cwd=workdir)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [
            *("redis-server", "--port", str(self.port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no", "--dir", str(self.workdir)),
        ]

    def start(self, within: float = START_TIMEOUT) -> str:
        """Start on a free port (another if Redis exits at once); its URL once it
        answers PING. Blocks: from a running event loop use :meth:`restart`'s way,
        ``asyncio.to_thread``."""
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            if self._run(within):
                return self.url
        raise RuntimeError(
            f"redis-server exited at start on {PORT_ATTEMPTS} free ports:\n"
            f"{self.process.log_tail(2000)}"
        )

    def _run(self, within: float) -> bool:
        """Start on ``self.port``; True once it answers, False if it exited first."""
        self.process.argv = self._argv()
        self.process.start()
        deadline = time.monotonic() + within
        while not pings(self.port):
            if not self.process.alive:
                self.process.forget()
                return False
            if time.monotonic() > deadline:
                self.process.stop()
                raise RuntimeError(
                    f"redis-server did not answer within {within} s:\n{self.process.log_tail()}"
                )
            time.sleep(0.05)
        return True

    async def restart(self) -> None:
        """Stop (its data gone, as after a crash without persistence) and start
        again on the same port, without blocking the event loop."""
        self.process.stop()
        if not await asyncio.to_thread(self._run, START_TIMEOUT):
            raise RuntimeError(f"redis-server did not restart:\n{self.process.log_tail()}")

    def stop(self) -> None:
        self.process.stop()
