"""The fault-injection topology: every part a real process on loopback.

Its own ``redis-server`` on a free port (so it can be restarted and paused
without touching the shared one), a fresh PostgreSQL database, two ``tidings
app`` processes and two or more ``tidings push`` processes, each pair behind
haproxy (generated config; health checks on ``/healthz`` and ``/readyz``).
The app processes reach Redis through a black-hole proxy (faults/proxy.py)
so that pokes can be lost between app and Redis while the push servers' own
link stays healthy; one client's push connection goes through a stall proxy.
Every wait is bounded; everything is stopped by ``close()``, at interpreter
exit, and (Linux) when the runner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tidings.testing.database import (
    create_database,
    drop_database,
    offset_database_project_ids,
)
from tidings.testing.haproxy import balanced, haproxy_config
from tidings.testing.processes import (
    START_TIMEOUT,
    Process,
    clean_env,
    free_port,
    tidings_cli,
    tidings_process,
)
from tidings.testing.redis import RedisServer
from tidings.testing.waiting import answers, until

#: The administrator every topology creates, and its password.
ADMIN_EMAIL = "ada@integration.test"
PASSWORD = "integration-password"


@dataclass
class Intervals:
    """The cadence the app advises (seconds) and the push servers' timings."""

    short: float = 2.0  # TIDINGS_POLL_INTERVAL: while push is not healthy
    long: float = 8.0  # TIDINGS_POLL_INTERVAL_PUSH: while it is
    jitter: float = 0.2  # each interval times a factor in [1 - jitter, 1 + jitter]
    heartbeat: float = 2.0  # push heartbeat; a client gives push up after 2.5 of them
    drain_window: float = 3.0


def proxy_argv(listen: int, target: str, mode: str) -> list[str]:
    """The fault proxy (faults/proxy.py) on ``listen``, in front of ``target``."""
    return [
        *(sys.executable, "-m", "tidings.testing.faults.proxy"),
        *("--listen", str(listen), "--target", target, "--mode", mode),
    ]


@dataclass
class Topology:
    workdir: Path
    postgres_admin_url: str
    intervals: Intervals = field(default_factory=Intervals)
    push_count: int = 2

    def __post_init__(self) -> None:
        w = self.workdir
        self.redis_proxy_port = free_port()
        self.app_front, self.push_front, self.stats_port = free_port(), free_port(), free_port()
        self.stall_port = free_port()
        self.app_ports = [free_port(), free_port()]
        self.push_ports = [free_port() for _ in range(self.push_count)]
        self.redis = RedisServer(w)
        # Its target is Redis's port, known once Redis has started.
        self.redis_proxy = Process("redis-proxy", [], w / "redis-proxy.log")
        self.stall_proxy = Process(
            "stall-proxy",
            proxy_argv(self.stall_port, f"127.0.0.1:{self.push_front}", "stall"),
            w / "stall-proxy.log",
        )
        cfg = w / "haproxy.cfg"
        cfg.write_text(
            haproxy_config(
                self.app_front, self.push_front, self.app_ports, self.push_ports, self.stats_port
            )
        )
        self.haproxy = Process("haproxy", ["haproxy", "-db", "-f", str(cfg)], w / "haproxy.log")
        self.database_url = ""
        self.keys = f"ft{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
        self.apps: list[Process] = []
        self.pushes: list[Process] = []
        self.token = ""

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_front}"

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.push_front}"

    def app_env(self) -> dict[str, str]:
        iv = self.intervals
        return clean_env(
            TIDINGS_DATABASE_URL=self.database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_proxy_port}/0",
            TIDINGS_PUSH_KEYS=self.keys,
            TIDINGS_PUSH_URL=self.push_url,
            TIDINGS_POLL_INTERVAL=str(iv.short),
            TIDINGS_POLL_INTERVAL_PUSH=str(iv.long),
            TIDINGS_POLL_JITTER=str(iv.jitter),
            TIDINGS_MIGRATE="0",
            # One user stands for every client: count all their missed pokes.
            TIDINGS_TELEMETRY_LIMITS="0",
        )

    def push_env(self) -> dict[str, str]:
        iv = self.intervals
        return clean_env(
            REDIS_URL=self.redis.url,
            TIDINGS_PUSH_KEYS=self.keys,
            TIDINGS_PUSH_DRAIN_WINDOW=str(iv.drain_window),
            TIDINGS_PUSH_HEARTBEAT=str(iv.heartbeat),
            # An app found dead keeps push degraded for one short interval with
            # jitter after it fell silent: the least that covers its last commits.
            TIDINGS_PUSH_APP_GONE_HOLD=str(iv.short * (1 + iv.jitter)),
            # Behind haproxy every client has the same address.
            TIDINGS_PUSH_IP_RATE="0",
        )

    async def start(self) -> None:
        await asyncio.to_thread(self.redis.start)
        self.redis_proxy.argv = proxy_argv(
            self.redis_proxy_port, f"127.0.0.1:{self.redis.port}", "blackhole"
        )
        self.redis_proxy.start()
        self.database_url = await create_database(self.postgres_admin_url)
        cli_env = clean_env(TIDINGS_DATABASE_URL=self.database_url)
        # The first CLI call migrates the fresh database.
        await asyncio.to_thread(
            tidings_cli,
            "users",
            "add",
            ADMIN_EMAIL,
            "Ada",
            "--password",
            PASSWORD,
            "--admin",
            env=cli_env,
        )
        await offset_database_project_ids(self.database_url)
        self.apps = [
            tidings_process(
                f"app{n}",
                ["app", "--host", "127.0.0.1", "--port", str(port)],
                self.app_env(),
                self.workdir / f"app{n}.log",
            )
            for n, port in enumerate(self.app_ports, 1)
        ]
        self.pushes = [
            tidings_process(
                f"push{n}",
                ["push", "--host", "127.0.0.1", "--port", str(port)],
                self.push_env(),
                self.workdir / f"push{n}.log",
            )
            for n, port in enumerate(self.push_ports, 1)
        ]
        for proc in [*self.apps, *self.pushes]:
            proc.start()
        self.haproxy.start()
        self.stall_proxy.start()
        self.token = await asyncio.to_thread(
            tidings_cli, "tokens", "create", ADMIN_EMAIL, env=cli_env
        )
        await asyncio.gather(
            *(self.wait_app(n) for n in range(len(self.apps))),
            *(self.wait_push(n) for n in range(len(self.pushes))),
        )
        await until(lambda: answers(f"{self.app_url}/healthz"), START_TIMEOUT, "haproxy app")
        await until(lambda: answers(f"{self.push_url}/readyz"), START_TIMEOUT, "haproxy push")
        for child in (self.redis_proxy, self.stall_proxy, self.haproxy):
            assert child.alive, f"{child.name} exited:\n{child.log_tail()}"

    async def wait_app(self, n: int) -> None:
        await self._wait_serving(self.apps[n], self.app_ports[n], "/healthz", "apps")

    async def wait_push(self, n: int) -> None:
        await self._wait_serving(self.pushes[n], self.push_ports[n], "/readyz", "pushes")

    async def _wait_serving(self, proc: Process, port: int, path: str, backend: str) -> None:
        """Until ``proc`` answers ``path`` and haproxy has it UP in ``backend``."""

        async def up() -> bool:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited:\n{proc.log_tail()}")
            return await answers(f"http://127.0.0.1:{port}{path}")

        await until(up, START_TIMEOUT, f"{proc.name} {path}")
        await until(
            lambda: balanced(self.stats_port, backend, proc.name),
            START_TIMEOUT,
            f"{proc.name} in haproxy",
        )

    async def metrics(self, port: int) -> dict[str, float]:
        """One process's /metrics as {series: value}; empty when it does not answer."""
        try:
            async with httpx.AsyncClient(timeout=2.0) as http:
                text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
        except httpx.HTTPError:
            return {}
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                with contextlib.suppress(ValueError):
                    out[name] = float(value)
        return out

    async def restart_redis(self) -> None:
        """Stop Redis (its data gone, as after a crash without persistence) and start it."""
        await self.redis.restart()

    def close(self) -> None:
        for proc in [*self.pushes, *self.apps]:
            proc.stop()
        for child in (self.haproxy, self.stall_proxy, self.redis_proxy):
            child.stop()
        self.redis.stop()
        if self.database_url:
            asyncio.run(drop_database(self.postgres_admin_url, self.database_url))
