"""The fault-injection topology: every part a real process on loopback.

Its own ``redis-server`` on a free port (so it can be restarted and paused
without touching the shared one), a fresh PostgreSQL database, two ``tidings
app`` processes and two or more ``tidings push`` processes, each pair behind
haproxy (generated config; health checks on ``/healthz`` and ``/readyz``).
The app processes reach Redis through a black-hole proxy (tests/faults/proxy.py)
so that pokes can be lost between app and Redis while the push servers' own
link stays healthy; one client's push connection goes through a stall proxy.
Every wait is bounded; everything is stopped by ``close()``, at interpreter
exit, and (Linux) when the runner dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.integration.stack import (
    ADMIN_EMAIL,
    PASSWORD,
    START_TIMEOUT,
    Proc,
    _create_database,
    _die_with_parent,
    _drop_database,
    _env,
    _live,
    _offset_project_ids,
    answers,
    tidings_cli,
    until,
)

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Intervals:
    """The cadence the app advises (seconds) and the push servers' timings."""

    short: float = 2.0  # TIDINGS_POLL_INTERVAL: while push is not healthy
    long: float = 8.0  # TIDINGS_POLL_INTERVAL_PUSH: while it is
    jitter: float = 0.2  # each interval times a factor in [1 - jitter, 1 + jitter]
    heartbeat: float = 2.0  # push heartbeat; a client gives push up after 2.5 of them
    drain_window: float = 3.0


@dataclass
class Child:
    """A non-tidings process (redis-server, haproxy, a proxy), output in a log file."""

    name: str
    argv: list[str]
    log_path: Path
    popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        assert not self.alive, f"{self.name} is already running"
        with self.log_path.open("ab") as log:
            log.write(f"--- start {time.strftime('%H:%M:%S')} ---\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                self.argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
                cwd=ROOT,
            )
        _live.add(self.popen)

    @property
    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def signal(self, sig: int) -> None:
        assert self.popen is not None and self.alive, f"{self.name} is not running"
        self.popen.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGCONT)  # a paused process cannot handle SIGTERM
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(timeout=timeout)
        _live.discard(self.popen)

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


async def port_open(port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 1.0)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


def haproxy_config(
    app_port: int, push_port: int, apps: list[int], pushes: list[int], stats_port: int
) -> str:
    """Both tiers behind one haproxy. Health checks every 0.5 s, down after 2 (push)
    or 3 (app) failures: a dead or draining backend is out of rotation within about
    1 s (a refusal or a 503 fails a check at once); a refused connection is retried
    on the other backend (``redispatch``), so an app restart is not an error for
    clients. A check may take 2 s: with 0.5 s, both app processes, slowed by a herd
    of polls during a Redis pause, were marked down together and clients got 503s.
    Tunnel and server timeouts cover SSE and WebSocket."""
    app_servers = "\n".join(
        f"  server app{n} 127.0.0.1:{p} check inter 500ms fall 3 rise 2"
        for n, p in enumerate(apps, 1)
    )
    push_servers = "\n".join(
        f"  server push{n} 127.0.0.1:{p} check inter 500ms fall 2 rise 2"
        for n, p in enumerate(pushes, 1)
    )
    return f"""global
  maxconn 8000

defaults
  mode http
  timeout connect 2s
  timeout check 2s
  timeout client 1h
  timeout server 1h
  timeout tunnel 1h
  timeout http-request 10s
  timeout http-keep-alive 60s
  retries 3
  option redispatch 1

frontend app
  bind 127.0.0.1:{app_port}
  default_backend apps

backend apps
  balance roundrobin
  option httpchk GET /healthz
  retry-on conn-failure empty-response
{app_servers}

frontend push
  bind 127.0.0.1:{push_port}
  default_backend pushes

backend pushes
  balance leastconn
  option httpchk GET /readyz
{push_servers}

frontend stats
  bind 127.0.0.1:{stats_port}
  stats enable
  stats uri /stats
"""


@dataclass
class Topology:
    workdir: Path
    postgres_admin_url: str
    intervals: Intervals = field(default_factory=Intervals)
    push_count: int = 2

    def __post_init__(self) -> None:
        w = self.workdir
        self.redis_port = free_port()
        self.redis_proxy_port = free_port()
        self.app_front, self.push_front, self.stats_port = free_port(), free_port(), free_port()
        self.stall_port = free_port()
        self.app_ports = [free_port(), free_port()]
        self.push_ports = [free_port() for _ in range(self.push_count)]
        self.redis = Child(
            "redis",
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            w / "redis.log",
        )
        proxy = [sys.executable, "-m", "tests.faults.proxy"]
        self.redis_proxy = Child(
            "redis-proxy",
            [
                *proxy,
                "--listen",
                str(self.redis_proxy_port),
                "--target",
                f"127.0.0.1:{self.redis_port}",
                "--mode",
                "blackhole",
            ],
            w / "redis-proxy.log",
        )
        self.stall_proxy = Child(
            "stall-proxy",
            [
                *proxy,
                "--listen",
                str(self.stall_port),
                "--target",
                f"127.0.0.1:{self.push_front}",
                "--mode",
                "stall",
            ],
            w / "stall-proxy.log",
        )
        cfg = w / "haproxy.cfg"
        cfg.write_text(
            haproxy_config(
                self.app_front, self.push_front, self.app_ports, self.push_ports, self.stats_port
            )
        )
        self.haproxy = Child("haproxy", ["haproxy", "-db", "-f", str(cfg)], w / "haproxy.log")
        self.database_url = ""
        self.keys = f"ft{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
        self.apps: list[Proc] = []
        self.pushes: list[Proc] = []
        self.token = ""

    @property
    def app_url(self) -> str:
        return f"http://127.0.0.1:{self.app_front}"

    @property
    def push_url(self) -> str:
        return f"http://127.0.0.1:{self.push_front}"

    def app_env(self) -> dict[str, str]:
        iv = self.intervals
        return _env(
            TIDINGS_DATABASE_URL=self.database_url,
            REDIS_URL=f"redis://127.0.0.1:{self.redis_proxy_port}/0",
            TIDINGS_PUSH_KEYS=self.keys,
            TIDINGS_PUSH_URL=self.push_url,
            TIDINGS_POLL_INTERVAL=str(iv.short),
            TIDINGS_POLL_INTERVAL_PUSH=str(iv.long),
            TIDINGS_POLL_JITTER=str(iv.jitter),
            TIDINGS_MIGRATE="0",
        )

    def push_env(self) -> dict[str, str]:
        iv = self.intervals
        return _env(
            REDIS_URL=f"redis://127.0.0.1:{self.redis_port}/0",
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
        self.redis.start()
        await until(lambda: port_open(self.redis_port), START_TIMEOUT, "redis")
        self.redis_proxy.start()
        self.database_url = await _create_database(self.postgres_admin_url)
        cli_env = _env(TIDINGS_DATABASE_URL=self.database_url)
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
        await _offset_project_ids(self.database_url)
        self.apps = [
            Proc(
                f"app{n}",
                ["app", "--host", "127.0.0.1", "--port", str(port)],
                self.app_env(),
                self.workdir / f"app{n}.log",
            )
            for n, port in enumerate(self.app_ports, 1)
        ]
        self.pushes = [
            Proc(
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
        proc, port = self.apps[n], self.app_ports[n]

        async def up() -> bool:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited:\n{proc.log_tail()}")
            return await answers(f"http://127.0.0.1:{port}/healthz")

        await until(up, START_TIMEOUT, f"{proc.name} /healthz")
        await until(
            lambda: self.balanced("apps", proc.name), START_TIMEOUT, f"{proc.name} in haproxy"
        )

    async def wait_push(self, n: int) -> None:
        proc, port = self.pushes[n], self.push_ports[n]

        async def up() -> bool:
            if not proc.alive:
                raise AssertionError(f"{proc.name} exited:\n{proc.log_tail()}")
            return await answers(f"http://127.0.0.1:{port}/readyz")

        await until(up, START_TIMEOUT, f"{proc.name} /readyz")
        await until(
            lambda: self.balanced("pushes", proc.name), START_TIMEOUT, f"{proc.name} in haproxy"
        )

    async def balanced(self, backend: str, server: str) -> bool:
        """Whether haproxy has the server UP (its health checks passed ``rise`` times):
        a restarted server takes no traffic before, so a rolling restart waits for it
        before draining the next one."""
        try:
            async with httpx.AsyncClient(timeout=1.0) as http:
                csv = (await http.get(f"http://127.0.0.1:{self.stats_port}/stats;csv")).text
        except httpx.HTTPError:
            return False
        for line in csv.splitlines():
            fields = line.split(",")
            if len(fields) > 17 and fields[0] == backend and fields[1] == server:
                return fields[17].startswith("UP")
        return False

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
        self.redis.stop()
        self.redis.start()
        await until(lambda: port_open(self.redis_port), START_TIMEOUT, "redis restart")

    def close(self) -> None:
        for proc in [*self.pushes, *self.apps]:
            proc.stop_now()
        for child in (self.haproxy, self.stall_proxy, self.redis_proxy, self.redis):
            child.stop()
        if self.database_url:
            asyncio.run(_drop_database(self.postgres_admin_url, self.database_url))
