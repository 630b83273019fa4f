"""``tidings demo``: the whole system in one process on embedded defaults.

SQLite file, the in-process broker, the app and a push server sharing it, and
sample data on first start. The same code as a scaled-out deployment, composed
differently: nothing here is demo-only but the seed data.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

import httpx
import uvicorn

from tidings.app.main import build_services, create_app
from tidings.app.seed import DEMO_PASSWORD, USERS, seed
from tidings.app.serve import uvicorn_config
from tidings.app.settings import AppSettings, PushUrls
from tidings.broker.memory import MemoryBroker
from tidings.protocol.tokens import KeyRing
from tidings.push.server import PushServer
from tidings.push.settings import PushSettings
from tidings.store import migrate

log = logging.getLogger("tidings.demo")


def database_url(db: str) -> str:
    return db if "://" in db else f"sqlite:///{Path(db).resolve()}"


def run_demo(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    url = database_url(args.db)
    if args.fresh and url.startswith("sqlite:///"):
        for suffix in ("", "-wal", "-shm"):
            Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(demo(args, url))
    return 0


async def demo(args: argparse.Namespace, url: str) -> None:
    public_host = "localhost" if args.host in ("0.0.0.0", "::", "127.0.0.1") else args.host
    push_port = args.push_port or args.port + 1
    keys = KeyRing.generate()
    # Everything else (poll intervals, jitter, full push) from TIDINGS_* as for `tidings app`.
    settings = AppSettings.from_env(
        database_url=url,
        redis_url=args.redis_url,
        push_keys=keys,
        push_urls=PushUrls.from_base(f"http://{public_host}:{push_port}"),
        migrate=False,
    )
    broker = None if args.redis_url else MemoryBroker()
    services = build_services(settings, broker)
    await migrate.upgrade(services.engines)
    if await services.accounts.by_email(USERS[0][0]) is None:
        seeded = await seed(services.accounts, services.store)
        log.info("seeded project %s", seeded.project_id)

    push: PushSwitch | PushProcesses
    if broker is None:
        push = PushProcesses(args.redis_url, keys, args.host, push_port, args.push_processes)
    else:
        push = PushSwitch(broker, keys, args.host, push_port)
    await push.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: loop.create_task(push.stop()))
    loop.add_signal_handler(signal.SIGUSR2, lambda: loop.create_task(push.start()))
    app = create_app(settings, services=services)
    server = uvicorn.Server(uvicorn_config(app, args.host, args.port))
    print(banner(f"http://{public_host}:{args.port}", f"http://{public_host}:{push_port}"))
    # After its graceful shutdown uvicorn raises the signal it caught again, to the
    # handler it found; with the default one the process would die right there,
    # before the push processes below are stopped (they would outlive the demo).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _already_handled)
    try:
        await server.serve()
    finally:
        await push.stop()


def _already_handled(signum: int, frame: object) -> None:
    """uvicorn has shut down for this signal; the demo finishes its own cleanup."""


class PushSwitch:
    """The demo's push server, which can be stopped and started again (SIGUSR1 and
    SIGUSR2) to watch clients fall back to polling and come back to push."""

    def __init__(self, broker: MemoryBroker, keys: KeyRing, host: str, port: int) -> None:
        self._broker = broker
        self._keys = keys
        self._address = (host, port)
        self._server: PushServer | None = None

    async def start(self) -> None:
        if self._server is None:
            server = PushServer(
                PushSettings(allowed_origins=()), self._broker.subscriber(), self._keys
            )
            await server.start(*self._address)
            self._server = server
            log.info("push server started on port %s", server.port)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.close()
            log.info("push server stopped")


class PushProcesses:
    """Separate ``tidings push`` processes on Redis sharing one port (SO_REUSEPORT),
    as deployed; stopped with SIGTERM (drain) and started again like PushSwitch."""

    #: Seconds a push process gets to drain before it is killed.
    STOP_TIMEOUT = 10.0
    #: Seconds the processes get to become ready before the demo goes on without them.
    READY_TIMEOUT = 30.0

    def __init__(self, redis_url: str, keys: KeyRing, host: str, port: int, count: int) -> None:
        self._env = {**os.environ, "REDIS_URL": redis_url, "TIDINGS_PUSH_KEYS": keys.spec()}
        self._command = [
            sys.executable,
            "-m",
            "tidings",
            "push",
            "--host",
            host,
            "--port",
            str(port),
            "--reuse-port",
            "--drain-window",
            "3",
        ]
        self._count = count
        self._ready_url = f"http://{_local(host)}:{port}/readyz"
        self._processes: list[asyncio.subprocess.Process] = []

    async def start(self) -> None:
        if not self._processes:
            for _ in range(self._count):
                self._processes.append(
                    await asyncio.create_subprocess_exec(*self._command, env=self._env)
                )
            log.info("started %d push processes", self._count)
            await self._until_ready()

    async def _until_ready(self) -> None:
        """Until every process has answered ready: they share one port, so a
        client's first connection may reach any of them, and one still joining
        its broker would greet it as ``degraded``."""
        ready: set[str] = set()
        try:
            async with asyncio.timeout(self.READY_TIMEOUT):
                while len(ready) < self._count:
                    # A new connection each time: the kernel picks a process per connection.
                    async with httpx.AsyncClient(timeout=2) as http:
                        with contextlib.suppress(httpx.HTTPError, ValueError):
                            r = await http.get(self._ready_url)
                            if r.status_code == 200:
                                ready.add(r.json()["server"])
                    if len(ready) < self._count:
                        await asyncio.sleep(0.05)
        except TimeoutError:
            log.warning(
                "%d of %d push processes ready after %.0f s; going on",
                len(ready),
                self._count,
                self.READY_TIMEOUT,
            )
            return
        log.info("push processes ready")

    async def stop(self) -> None:
        processes, self._processes = self._processes, []
        for process in processes:
            if process.returncode is None:
                process.terminate()
        for process in processes:
            try:
                await asyncio.wait_for(process.wait(), self.STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if processes:
            log.info("push processes stopped")


def _local(host: str) -> str:
    """Where this machine reaches a server listening on ``host``."""
    return {"0.0.0.0": "127.0.0.1", "::": "[::1]", "": "127.0.0.1"}.get(host, host)


def banner(app_url: str, push_url: str) -> str:
    logins = "\n".join(
        f"    {email:<20} password: {DEMO_PASSWORD}{'  (admin)' if admin else ''}"
        for email, _name, admin in USERS
    )
    return (
        f"\ntidings demo\n  app:  {app_url}\n  push: {push_url}\n  sign in as:\n{logins}\n"
        "  kill -USR1 <pid> stops the push server (clients fall back to polling);"
        " kill -USR2 <pid> starts it again.\n  Ctrl-C to stop.\n"
    )
