"""Hostile clients against a real ``tidings push`` process on real Redis.

What every hostile test needs, so that each attack is a small async function:
the process (its RSS read from /proc, its ``/metrics`` and ``/healthz``), a
legitimate subscribed client that measures poke latency while an attack runs
(:class:`Watch`), and raw attacker sockets that write frames and never read
(:func:`attack_socket`, :func:`flood`). The bounds the tests assert are the ones
docs/SECURITY.md states.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import random
import select
import socket
import statistics
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from tidings.broker.redis_publisher import RedisPublisher
from tidings.protocol.channels import project_channel
from tidings.protocol.poke import Poke, encode_poke
from tidings.push.wsframe import OP_CLOSE, OP_TEXT
from tidings.testing.clients import RawWebSocket, client_frame
from tidings.testing.keys import KEYS, token
from tidings.testing.processes import cpu_seconds, free_port, stop_popen, tidings_argv
from tidings.testing.redis import RedisServer
from tidings.testing.waiting import wait_http_ok

#: RSS a server may gain from one attacker connection, whatever it sends and for
#: as long as it likes (docs/SECURITY.md): far above the arithmetic bound (send
#: buffer + one message + reader), far below what an unbounded queue reaches.
RSS_BOUND_PER_ATTACKER_KB = 20 * 1024

#: A legitimate client's poke latency, p99, while an attack runs.
P99_BOUND = 0.25

#: The environment every hostile test's server gets (on top of the caller's).
BASE_ENV = {
    # Attackers and the legitimate client share 127.0.0.1: a distributed attack.
    "TIDINGS_PUSH_IP_RATE": "0",
}


def project_id() -> int:
    """Tests share one Redis, whose channels are named by project id."""
    return random.randrange(10**9, 10**12)


class PushProcess:
    """A running ``python -m tidings push`` and a Redis publisher speaking to it as an app would."""

    def __init__(
        self, proc: subprocess.Popen[bytes], port: int, publisher: RedisPublisher, log: Path
    ) -> None:
        self.proc = proc
        self.port = port
        self.publisher = publisher
        self.log = log

    def rss_kb(self) -> int:
        with open(f"/proc/{self.proc.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

    def cpu_seconds(self) -> float:
        """User + system CPU the process has used (from /proc/PID/stat)."""
        return cpu_seconds(self.proc.pid)

    async def get(self, path: str, limit: float = 5.0) -> tuple[int, bytes]:
        """One HTTP/1.1 request on a new socket, within ``limit`` seconds: (status, body)."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port), limit
        )
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            raw = await asyncio.wait_for(reader.read(), limit)
        finally:
            writer.close()
        head, _, body = raw.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), body

    async def metrics(self) -> dict[str, float]:
        status, body = await self.get("/metrics")
        assert status == 200, (status, body[:200])
        out = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    async def poke(self, project: int, version: int) -> float:
        """Publish a poke as the app would; its send time (monotonic)."""
        data = encode_poke(Poke(project, version, time.time(), None))
        sent = time.monotonic()
        await asyncio.wait_for(self.publisher.publish(project_channel(project), data), 5.0)
        return sent


def launch(port: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    cmd = tidings_argv("push", "--host", "127.0.0.1", "--port", str(port), "--log-level", "WARNING")
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=out)


StartPush = Callable[..., Awaitable[PushProcess]]


@contextlib.contextmanager
def private_redis(log_dir: Path) -> Iterator[str]:
    """A Redis server of the suite's own. Pub/sub channels are global to a Redis
    server: on a shared one, app processes of other tests or programs heard on the
    control channel (and then gone) could make a push server ``degraded`` for
    reasons that have nothing to do with the attack under test."""
    redis = RedisServer(log_dir)
    try:
        yield redis.start()
    finally:
        redis.stop()


@contextlib.contextmanager
def push_process(
    redis_url: str, log_dir: Path, **extra: str
) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A push server (``extra``: more ``TIDINGS_*`` variables) until the block ends:
    (process, port, log file)."""
    port = free_port()
    log = log_dir / f"push-{port}.log"
    env = {**os.environ, "REDIS_URL": redis_url, "TIDINGS_PUSH_KEYS": KEYS.spec()}
    proc = launch(port, {**env, **BASE_ENV, **extra}, log)
    try:
        wait_http_ok(
            f"http://127.0.0.1:{port}/readyz",
            proc,
            time.monotonic() + 60,
            lambda: log.read_text(errors="replace"),
        )
        yield proc, port, log
    finally:
        stop_popen(proc)


@contextlib.asynccontextmanager
async def push_processes(redis_url: str, log_dir: Path) -> AsyncIterator[StartPush]:
    """``start(**env)`` runs a push server (env: extra ``TIDINGS_*`` variables);
    every one is stopped on exit."""
    publisher = RedisPublisher.from_url(redis_url)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(publisher.close)

        async def start(**extra: str) -> PushProcess:
            running = push_process(redis_url, log_dir, **extra)
            proc, port, log = await asyncio.to_thread(running.__enter__)
            stack.callback(running.__exit__, None, None, None)
            return PushProcess(proc, port, publisher, log)

        yield start


# -- the legitimate client --------------------------------------------------------


@dataclass
class Report:
    """What a legitimate client and the server went through during an attack."""

    latencies: list[float] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    states: list[str] = field(default_factory=list)
    healthz: list[float] = field(default_factory=list)
    healthz_failures: int = 0
    rss_before_kb: int = 0
    rss_peak_kb: int = 0
    rss_after_kb: int = 0
    reconnects: float = 0.0
    state_after: str = ""
    cpu_seconds: float = 0.0
    seconds: float = 0.0

    def quantile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        xs = sorted(self.latencies)
        return xs[min(len(xs) - 1, int(q * len(xs)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies) if self.latencies else float("nan")

    @property
    def p99(self) -> float:
        return self.quantile(0.99)

    @property
    def rss_growth_kb(self) -> int:
        return self.rss_peak_kb - self.rss_before_kb

    def summary(self) -> str:
        return (
            f"pokes {len(self.latencies)} p50 {self.p50 * 1000:.1f} ms "
            f"p99 {self.p99 * 1000:.1f} ms lost {len(self.lost)}; healthz max "
            f"{max(self.healthz, default=0) * 1000:.0f} ms failures {self.healthz_failures}; "
            f"RSS {self.rss_before_kb} -> peak {self.rss_peak_kb} KB; states {set(self.states)}, "
            f"after {self.state_after or 'no answer'}, broker reconnects {self.reconnects:g}; "
            f"server CPU {self.cpu_seconds:.2f} s in {self.seconds:.1f} s"
        )

    def assert_unharmed(self, *, rss_bound_kb: int, p99: float = P99_BOUND) -> None:
        """The bounds of docs/SECURITY.md: memory, latency, no lost poke, no false
        ``degraded``, health answered, the broker link never reconnected."""
        info = self.summary()
        assert self.latencies, info
        assert not self.lost, (self.lost[:10], info)
        assert self.rss_growth_kb <= rss_bound_kb, (rss_bound_kb, info)
        assert self.p99 < p99, info
        assert set(self.states) <= {"ok"}, info
        assert self.healthz and self.healthz_failures == 0, info
        assert self.reconnects == 0, info
        assert self.state_after == "ok", info


class Watch:
    """While an attack runs: a subscribed ``/ws`` client gets a poke every
    ``interval`` (published on Redis as the app does), ``/healthz`` is asked every
    ``health_interval``, and the server's RSS is sampled."""

    def __init__(
        self, push: PushProcess, *, interval: float = 0.02, health_interval: float = 0.2
    ) -> None:
        self.push = push
        self.interval = interval
        self.health_interval = health_interval
        self.project = project_id()
        self.report = Report()
        self._sent: dict[int, float] = {}
        self._got: dict[int, float] = {}
        self._ws: RawWebSocket | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._version = 0
        self._metrics0: dict[str, float] = {}
        self._cpu0 = 0.0
        self._t0 = 0.0
        self._stopping = False
        self._done = False
        self._caught_up = asyncio.Event()

    async def __aenter__(self) -> Watch:
        push = self.push
        ws = self._ws = await RawWebSocket.connect(push.port)
        p = self.project
        ws.send_json({"type": "subscribe", "token": token(projects=[p]), "projects": {str(p): 0}})
        first = await ws.message()
        assert first["type"] == "subscribed", first
        self.report.states.append(first["state"])
        await self._first_poke()
        self._metrics0 = await push.metrics()
        self.report.rss_before_kb = self.report.rss_peak_kb = push.rss_kb()
        self._cpu0 = push.cpu_seconds()
        self._t0 = time.monotonic()
        self._tasks = [
            asyncio.create_task(self._read()),
            asyncio.create_task(self._poke()),
            asyncio.create_task(self._health()),
            asyncio.create_task(self._rss()),
        ]
        return self

    async def _first_poke(self) -> None:
        """The server answers ``subscribed`` before Redis confirms its SUBSCRIBE:
        poke until one arrives, then measure from the next."""
        assert self._ws is not None
        deadline = time.monotonic() + 10
        got = asyncio.ensure_future(self._ws.message())
        try:
            while True:
                self._version += 1
                await self.push.poke(self.project, self._version)
                await asyncio.wait({got}, timeout=0.3)
                if got.done():
                    msg = got.result()
                    if msg["type"] == "poke":
                        self._version = max(self._version, msg["version"])
                        return
                    got = asyncio.ensure_future(self._ws.message())
                assert time.monotonic() < deadline, "no poke arrived"
        finally:
            got.cancel()

    async def _read(self) -> None:
        ws = self._ws
        assert ws is not None
        while not self._done:
            try:
                op, payload = await ws.frame()
            except TimeoutError:
                continue
            now = time.monotonic()
            if op != OP_TEXT:
                continue
            msg: dict[str, Any] = orjson.loads(payload)
            if msg["type"] == "poke":
                self._got.setdefault(msg["version"], now)
                if self._stopping and self._sent.keys() <= self._got.keys():
                    self._caught_up.set()
            elif msg["type"] in ("heartbeat", "subscribed"):
                self.report.states.append(msg["state"])

    async def _poke(self) -> None:
        while not self._stopping:
            self._version += 1
            self._sent[self._version] = await self.push.poke(self.project, self._version)
            await asyncio.sleep(self.interval)

    async def _health(self) -> None:
        while not self._done:
            t0 = time.monotonic()
            try:
                status, _ = await self.push.get("/healthz", limit=2.0)
                ok = status == 200
            except (OSError, TimeoutError):
                ok = False
            if ok:
                self.report.healthz.append(time.monotonic() - t0)
            else:
                self.report.healthz_failures += 1
            await asyncio.sleep(self.health_interval)

    async def _rss(self) -> None:
        while not self._done:
            self.report.rss_peak_kb = max(self.report.rss_peak_kb, self.push.rss_kb())
            await asyncio.sleep(0.02)

    async def __aexit__(self, *exc: object) -> None:
        self._stopping = True
        poker = self._tasks[1]
        poker.cancel()
        await asyncio.wait({poker}, timeout=10)
        # Pokes in flight get a second to land before any counts as lost.
        if self._sent.keys() <= self._got.keys():
            self._caught_up.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._caught_up.wait(), 1.0)
        # The flag as well as the cancel: on Python 3.11 a cancel that lands as a
        # wait_for times out can be swallowed, and a loop would go on forever.
        self._done = True
        for task in self._tasks:
            task.cancel()
        await asyncio.wait(self._tasks, timeout=10)
        # Scraped while the client is still connected, so the state is judged
        # with a watcher on the server, as during the attack.
        try:
            m = await self.push.metrics()
        except (OSError, TimeoutError):
            m = {}  # the server did not answer in 5 s: state_after "" fails the check
        if self._ws is not None:
            self._ws.close()
        report = self.report
        report.seconds = time.monotonic() - self._t0
        report.cpu_seconds = self.push.cpu_seconds() - self._cpu0
        report.rss_after_kb = self.push.rss_kb()
        report.rss_peak_kb = max(report.rss_peak_kb, report.rss_after_kb)
        report.latencies = [self._got[v] - t for v, t in self._sent.items() if v in self._got]
        report.lost = sorted(v for v in self._sent if v not in self._got)
        name = "tidings_push_broker_reconnects_total"
        report.reconnects = m.get(name, float("nan")) - self._metrics0.get(name, 0.0)
        report.state_after = next(
            (
                s
                for s in ("ok", "degraded", "draining")
                if m.get(f'tidings_push_state{{state="{s}"}}')
            ),
            "",
        )


# -- attackers --------------------------------------------------------------------


def masked(op: int, payload: bytes = b"", *, fin: bool = True) -> bytes:
    """One client frame (masked, as a client must)."""
    return client_frame(op, payload, fin=fin)


def subscribe_frame(project: int) -> bytes:
    body = {"type": "subscribe", "token": token(projects=[project]), "projects": {str(project): 0}}
    return masked(OP_TEXT, orjson.dumps(body))


async def attack_socket(
    port: int, path: str = "/ws", *, rcvbuf: int = 4096, subscribe: int | None = None
) -> tuple[socket.socket, bytes]:
    """A raw socket past the WebSocket handshake, with a small receive buffer (so a
    peer that never reads leaves the server's backlog in the server, where the
    bounds apply); returns it and any bytes read past the ``101`` head. With
    ``subscribe`` (a project; ``/ws`` only), subscribed with a valid token first."""
    loop = asyncio.get_running_loop()
    timeout = 10.0
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        head = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        await loop.sock_sendall(sock, head.encode())
        got = b""
        while b"\r\n\r\n" not in got:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
            assert chunk, got
            got += chunk
        status, _, rest = got.partition(b"\r\n\r\n")
        assert b" 101 " in status.split(b"\r\n", 1)[0] + b" ", status
        if subscribe is not None:
            await loop.sock_sendall(sock, subscribe_frame(subscribe))
            while b'"subscribed"' not in rest:
                chunk = await asyncio.wait_for(loop.sock_recv(sock, 4096), timeout)
                assert chunk, rest
                rest += chunk
    except BaseException:
        sock.close()
        raise
    return sock, rest


@dataclass
class Attack:
    """What one attacker connection got."""

    sent_bytes: int = 0
    read_bytes: int = 0
    #: Seconds from its first attacking byte until the server closed (None: still open).
    closed_after: float | None = None
    close_code: int | None = None
    close_reason: str = ""

    def read(self, got: bytes) -> None:
        """Record what the server sent: its length, and its close frame if any."""
        self.read_bytes = len(got)
        close = close_frame_of(got)
        if close is not None:
            self.close_code, self.close_reason = close


def server_closed(sock: socket.socket) -> bool:
    """Has the server sent FIN or reset? Polled without reading a byte."""
    p = select.poll()
    p.register(sock, select.POLLRDHUP | select.POLLHUP | select.POLLERR)
    return bool(p.poll(0))


def close_frame_of(data: bytes) -> tuple[int, str] | None:
    """The server's close frame in what it sent (server frames are unmasked)."""
    pos = 0
    while len(data) - pos >= 2:
        op, n, head = data[pos] & 0x0F, data[pos + 1] & 0x7F, 2
        if n == 126:
            n, head = int.from_bytes(data[pos + 2 : pos + 4], "big"), 4
        elif n == 127:
            n, head = int.from_bytes(data[pos + 2 : pos + 10], "big"), 10
        payload = data[pos + head : pos + head + n]
        if op == OP_CLOSE and len(payload) >= 2:
            return int.from_bytes(payload[:2], "big"), payload[2:].decode(errors="replace")
        pos += head + n
    return None


async def drain_socket(sock: socket.socket, seconds: float) -> bytes:
    """Everything the server sent, until EOF, a reset or ``seconds``."""
    loop = asyncio.get_running_loop()
    out = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 65536), deadline - time.monotonic())
        except (ConnectionError, TimeoutError):
            break
        if not chunk:
            break
        out += chunk
    return bytes(out)


async def flood(
    sock: socket.socket,
    blob: bytes,
    seconds: float,
    *,
    prefix: bytes = b"",
    first: bytes = b"",
) -> Attack:
    """Write ``blob`` again and again for up to ``seconds`` and never read (only
    poll for the server's FIN); then read what the server sent and find its close.
    ``prefix`` goes first (a subscribe); ``first`` is what was read past the head."""
    loop = asyncio.get_running_loop()
    result = Attack()
    t0 = time.monotonic()
    deadline = t0 + seconds
    try:
        if prefix:
            await asyncio.wait_for(loop.sock_sendall(sock, prefix), 10.0)
            result.sent_bytes += len(prefix)
        while time.monotonic() < deadline:
            if server_closed(sock):
                break
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, blob), deadline - time.monotonic())
            except (ConnectionError, TimeoutError):
                break
            result.sent_bytes += len(blob)
        if server_closed(sock):
            result.closed_after = time.monotonic() - t0
        got = first + await drain_socket(sock, 3.0)
        if result.closed_after is None and server_closed(sock):
            result.closed_after = time.monotonic() - t0
        result.read(got)
    finally:
        sock.close()
    return result


async def repeat(attack: Callable[[], Awaitable[Attack]], seconds: float) -> list[Attack]:
    """``attack`` again and again, each on a new connection, for ``seconds``: an
    attacker who reconnects as soon as it is closed."""
    out: list[Attack] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        out.append(await attack())
    return out


async def hold_open(sock: socket.socket, seconds: float, *, first: bytes = b"") -> Attack:
    """Send nothing more; read until the server closes (or ``seconds`` pass)."""
    result = Attack()
    t0 = time.monotonic()
    try:
        got = first + await drain_socket(sock, seconds)
        if time.monotonic() - t0 < seconds:
            result.closed_after = time.monotonic() - t0
        result.read(got)
    finally:
        sock.close()
    return result
