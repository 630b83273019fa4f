"""Reconnect storms: what a new authenticated client costs a push server, and one of
three push servers dying while its clients land on the others.

Two measurements in one run, each side by side:

**Bursts** (``--burst``): one server per target, N clients (``--burst-clients``)
connected in waves of 200, each new client sending its request and its
subscribe at once and counted when ``subscribed`` comes back. The target's CPU
(utime + stime of its threads, /proc/PID/task/*/schedstat) over the burst, less
its idle rate, divided by N: the CPU one new client costs, with nothing else
going on. Targets: tidings ``/ws``, SSE and Socket.IO over WebSocket (handshake
+ JWT verify + subscribe), and, for scale, servers doing a bare WebSocket
handshake (no token, no subscribe): Node ``ws``, the leanest Python one
(bench/peers/lean.py) and C epoll (bench/peers/c_epoll.c). A warm-up round of
every target (not counted: Node's JIT, the servers' caches), then ``--rounds``
rounds, targets interleaved; medians.

**Storms**: a private Redis and N ``tidings push`` processes (3 by default), M
clients on each (``--clients-per-server``) held by a few client processes (each
under the per-process descriptor limit), one project poked every
``--poke-interval``. One server is killed with SIGKILL; each of its clients
reconnects to a survivor (alternately) after a delay uniform in ``--window-min``
.. ``--window-max`` (the client's first backoff). Every client has its own token
(its own user), so no server has seen the token it is given in the storm.
Measured per storm: the time from the kill until every moved client is
``subscribed`` again; the peak accept rate of a survivor (its resubscribes per
100 ms, x10); the survivors' CPU from the kill to the last resubscribe, less
what they spent in an equal quiet window just before (the same pokes, no
storm), per moved client; the poke latency (the poke's ``ts`` to arrival) of a
sample of the clients left untouched, quiet and during the storm. One storm
per transport (``--transports``), each on fresh servers. ``--profile`` records
one survivor with py-spy during the /ws storm (bench extra).

    .venv/bin/python bench/storm.py                      # bursts of 3,000, storms of 3 x 3,000
    .venv/bin/python bench/storm.py --clients-per-server 13000 --poke-interval 1 --transports ws
    .venv/bin/python bench/storm.py --quick              # CI: 2 servers x 60, bursts of 100

Writes bench/results/storm.json and .png. Results and how to read them:
docs/PERFORMANCE.md, "Reconnect storms".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import random
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from churn import raise_nofile, spawn_logged
from churn import start_push as churn_push
from fanout import cpu_sched, free_port, git_state, log, start_redis, stop_process, wait_port
from fanout_load import IP_BIND_ADDRESS_NO_PORT, client_frame
from lib.burst import request
from machine import describe
from report import finish, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
PEERS = Path(__file__).resolve().parent / "peers"
RESULTS = ROOT / "bench" / "results"
#: Source addresses: each has ~28,000 ephemeral ports per destination.
SOURCES = [f"127.78.{k // 250}.{k % 250 + 1}" for k in range(64)]
CONNECT_TIMEOUT_S = 60.0
STORM_TIMEOUT_S = 300.0
#: Largest unparsed tail a client keeps before it is ready (the handshake answer).
MAX_BUFFER = 65536
GOAL_US = 100.0
#: Clients one client process holds at most: its sockets stay under the
#: per-process descriptor limit (20,000 on the machine of the figures).
CLIENTS_PER_PROCESS = 15_000
#: Descriptors a push server needs beyond its clients (listener, Redis, logs).
SERVER_SPARE_FDS = 100
#: Untouched clients whose poke latencies are kept (a sample: every k-th client).
LATENCY_SAMPLE = 3000
TRANSPORTS = {"ws": "/ws", "sse": "SSE", "sio": "Socket.IO over WebSocket"}
#: Burst targets: tidings transports, and bare WebSocket handshakes for scale.
BURST_TARGETS = {
    "tidings-ws": "tidings /ws: handshake + JWT verify + subscribe",
    "tidings-sse": "tidings SSE: request + JWT verify + subscribe",
    "tidings-sio": "tidings Socket.IO over WebSocket: handshake + open + CONNECT with JWT",
    "node-ws": "Node ws: bare WebSocket handshake, no auth",
    "python-lean": "leanest Python (uvloop) WebSocket handshake, no auth",
    "c-epoll": "C epoll WebSocket handshake, no auth",
}
#: An Engine.IO ping in a server text frame, and the client's masked pong.
EIO_PING = b"\x81\x012"
EIO_PONG = client_frame("3")
TS = re.compile(rb'"ts":([0-9.]+)')


# -- clients ---------------------------------------------------------------------------


class Crowd:
    """Clients in one process and what they saw. ``kind`` is a transport, or
    ``bare``: a WebSocket handshake alone, ready at the ``101``."""

    def __init__(
        self,
        kind: str,
        ports: list[int],
        tokens: list[str],
        project: int,
        first_cid: int = 0,
        servers: list[int] | None = None,
        window: tuple[float, float] = (1.0, 2.0),
        sample_every: int = 1,
    ) -> None:
        self.kind = kind
        self.ports = ports
        self.project = project
        self.window = window
        self.victim = -1
        self.armed = False
        #: The victim's clients, fixed when armed (a moved client's server changes).
        self.moved_set: list[Client] = []
        # Sampled: every k-th client of each server (a client's server is its id
        # modulo the servers, so every k-th id could all be the victim's).
        self.clients = [
            Client(self, cid, token, (cid // len(ports)) % sample_every == 0)
            for cid, token in enumerate(tokens, first_cid)
        ]
        self.home = servers or [c.cid % len(ports) for c in self.clients]
        #: (poke ts, latency) of sampled untouched clients, wall-clock seconds.
        self.latencies: list[tuple[float, float]] = []
        self.resubscribed: list[tuple[float, int]] = []  # (monotonic time, server index)
        self.failed = 0
        self.rng = random.Random(first_cid + 7)
        self.tasks: set[asyncio.Task[None]] = set()

    async def connect_all(self, batch: int = 200) -> None:
        clients = self.clients
        for start in range(0, len(clients), batch):
            for c in clients[start : start + batch]:
                self.connect(c, self.home[c.cid - clients[0].cid])
            upto = min(start + batch, len(clients))
            await wait_until(
                lambda upto=upto: sum(c.ready for c in clients[:upto]) >= upto - self.failed,
                CONNECT_TIMEOUT_S,
                "a wave of clients to be ready",
            )
        if self.failed:
            raise RuntimeError(f"{self.failed} clients failed to connect before the storm")

    def connect(self, client: Client, server: int) -> None:
        client.server = server
        task = asyncio.get_running_loop().create_task(self._connect(client, server))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _connect(self, client: Client, server: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((SOURCES[client.cid % len(SOURCES)], 0))
            sock.setblocking(False)
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", self.ports[server])), 10)
            await loop.create_connection(lambda: client, sock=sock)
        except (OSError, TimeoutError):
            sock.close()
            client.failed()

    def victims(self) -> list[Client]:
        return self.moved_set or [c for c in self.clients if c.server == self.victim]

    def on_ready(self, client: Client, now: float) -> None:
        if client.moved:
            self.resubscribed.append((now, client.server))

    def on_lost(self, client: Client) -> None:
        """A client whose server died reconnects after the client's first backoff."""
        if not self.armed or (client.server != self.victim and not client.moved):
            if not self.armed:
                self.failed += 1
            return
        client.moved = True
        self._retry(client)

    def _retry(self, client: Client) -> None:
        survivors = [i for i in range(len(self.ports)) if i != self.victim]
        target = survivors[client.cid % len(survivors)]
        delay = self.rng.uniform(*self.window)
        asyncio.get_running_loop().call_later(delay, self.connect, client, target)

    def on_failed(self, client: Client) -> None:
        self.failed += 1
        if client.moved:  # refused (503/429) or dropped mid-handshake: back off, retry
            self._retry(client)

    def close(self) -> None:
        for c in self.clients:
            if c.transport is not None:
                c.transport.abort()


class Client(asyncio.Protocol):
    """A raw-socket client: sends its request and subscribe at once, then reads pokes."""

    __slots__ = (
        "buf",
        "cid",
        "crowd",
        "moved",
        "ready",
        "sampled",
        "server",
        "tail",
        "token",
        "transport",
    )

    def __init__(self, crowd: Crowd, cid: int, token: str, sampled: bool) -> None:
        self.crowd = crowd
        self.cid = cid
        self.token = token
        self.sampled = sampled
        self.server = 0
        self.moved = False
        self.ready = False
        self.buf = b""
        self.tail = b""
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.ready = False
        self.buf = b""
        c = self.crowd
        transport.write(request(c.kind, c.ports[self.server], self.token, c.project))  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        crowd = self.crowd
        if crowd.kind == "sio" and EIO_PING in data and self.transport is not None:
            self.transport.write(EIO_PONG)
        if not self.ready:
            self.buf += data
            done = b"\r\n\r\n" in self.buf if crowd.kind == "bare" else b'"subscribed"' in self.buf
            if done and self.buf.startswith(b"HTTP/1.1 "):
                self.ready = True
                self.buf = b""
                crowd.on_ready(self, time.monotonic())
            elif self.transport is not None and (
                len(self.buf) > MAX_BUFFER
                or (self.buf.startswith(b"HTTP/1.1 ") and self.buf[9:12] not in (b"101", b"200"))
            ):
                self.transport.close()
            return
        if self.moved or not self.sampled:
            return
        now = time.time()
        buf = self.tail + data
        end = 0
        for match in TS.finditer(buf):
            if match.end() < len(buf):  # the number is whole: a delimiter follows
                sent = float(match.group(1))
                crowd.latencies.append((sent, now - sent))
                end = match.end()
        self.tail = buf[end:][-48:]

    def connection_lost(self, exc: Exception | None) -> None:
        was_ready = self.ready
        self.transport = None
        self.ready = False
        if was_ready:
            self.crowd.on_lost(self)
        else:
            self.crowd.on_failed(self)

    def failed(self) -> None:
        self.crowd.on_failed(self)


def sign_tokens(keys_spec: str, first_cid: int, count: int, project: int) -> list[str]:
    """One token per client, each for its own user: no server has seen it before."""
    from tidings.protocol.tokens import KeyRing, sign_push_token

    keys = KeyRing.parse(keys_spec)
    return [sign_push_token(keys, first_cid + i + 1, [project], ttl=3600)[0] for i in range(count)]


def crowd_process(pipe: multiprocessing.connection.Connection, spec: dict[str, Any]) -> None:
    """A client process: connects its share, then answers the storm's commands."""
    raise_nofile()
    uvloop.run(_crowd_main(pipe, spec))


async def _crowd_main(pipe: multiprocessing.connection.Connection, spec: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    tokens = sign_tokens(spec["keys"], spec["first_cid"], spec["count"], spec["project"])
    crowd = Crowd(
        spec["kind"],
        spec["ports"],
        tokens,
        spec["project"],
        spec["first_cid"],
        window=tuple(spec["window"]),
        sample_every=spec["sample_every"],
    )
    try:
        while True:
            command, arg = await loop.run_in_executor(None, pipe.recv)
            if command == "connect":
                try:
                    await crowd.connect_all()
                    pipe.send(("ok", len(crowd.clients)))
                except RuntimeError as exc:
                    pipe.send(("error", str(exc)))
            elif command == "arm":
                crowd.victim, crowd.armed = arg, True
                crowd.moved_set = crowd.victims()
                pipe.send(("ok", len(crowd.victims())))
            elif command == "moved":
                victims = crowd.victims()
                try:
                    await wait_until(
                        lambda v=victims: all(c.moved and c.ready for c in v),
                        STORM_TIMEOUT_S,
                        "the victims to resubscribe",
                    )
                    pipe.send(("ok", crowd.resubscribed))
                except RuntimeError as exc:
                    waiting = [c for c in victims if not (c.moved and c.ready)]
                    pipe.send(
                        (
                            "error",
                            f"{exc}: {len(waiting)} of {len(victims)} not back "
                            f"({sum(c.transport is not None for c in waiting)} connected, "
                            f"{sum(c.moved for c in waiting)} moved)",
                        )
                    )
            elif command == "report":
                pipe.send(("ok", {"latencies": crowd.latencies, "failed": crowd.failed}))
            else:
                break
    finally:
        crowd.close()
        await asyncio.sleep(0.1)


class Crowds:
    """The client processes of one storm, driven together."""

    def __init__(self, kind: str, ports: list[int], keys: str, project: int, args: Any) -> None:
        total = args.clients_per_server * len(ports)
        n = max(1, math.ceil(total / CLIENTS_PER_PROCESS))
        ctx = multiprocessing.get_context("spawn")
        self.pipes: list[multiprocessing.connection.Connection] = []
        self.procs: list[Any] = []
        per = math.ceil(total / n)
        for k in range(n):
            first, count = k * per, min(per, total - k * per)
            ours, theirs = ctx.Pipe()
            spec = {
                "kind": kind,
                "ports": ports,
                "keys": keys,
                "project": project,
                "first_cid": first,
                "count": count,
                "window": [args.window_min, args.window_max],
                "sample_every": max(1, total // LATENCY_SAMPLE),
            }
            proc = ctx.Process(target=crowd_process, args=(theirs, spec), daemon=True)
            proc.start()
            theirs.close()
            self.pipes.append(ours)
            self.procs.append(proc)

    async def ask(self, command: str, arg: Any = None, wait_s: float = 300) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, arg))

        async def answer(pipe: multiprocessing.connection.Connection) -> Any:
            ready = await asyncio.to_thread(pipe.poll, wait_s)
            if not ready:
                raise RuntimeError(f"a client process did not answer {command!r} in {wait_s} s")
            status, value = pipe.recv()
            if status != "ok":
                raise RuntimeError(value)
            return value

        return list(await asyncio.gather(*(answer(p) for p in self.pipes)))

    def close(self) -> None:
        for pipe in self.pipes:
            with contextlib.suppress(OSError):
                pipe.send(("close", None))
        for proc in self.procs:
            proc.join(5)
            if proc.is_alive():
                proc.kill()


# -- servers ---------------------------------------------------------------------------


def push_env(redis_url: str, keys_spec: str, max_pending: int | None = None) -> dict[str, str]:
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TIDINGS_PUSH_KEYS": keys_spec,
        "TIDINGS_PUSH_IP_RATE": "0",  # every client comes from a few loopback addresses
        "TIDINGS_PUSH_HEARTBEAT": "3600",
    }
    if max_pending is not None:
        env["TIDINGS_PUSH_MAX_PENDING"] = str(max_pending)
    return env


def start_push(
    port: int, env: dict[str, str], log_path: Path, max_conn: int
) -> subprocess.Popen[bytes]:
    return churn_push(port, env, log_path, max_conn, ("--drain-window", "1"))


def start_reference(name: str, port: int, work: Path) -> subprocess.Popen[bytes] | None:
    """A bare-handshake server, or None when it cannot run here (said in the log)."""
    control = str(free_port(socket.SOCK_DGRAM))
    if name == "node-ws":
        found = subprocess.run(
            ["node", "-e", "require.resolve('ws')"], cwd=PEERS, capture_output=True, timeout=30
        )
        if found.returncode != 0:
            log("node-ws: the ws package is not installed (npm install in bench/peers): skipped")
            return None
        cmd = ["node", str(PEERS / "node_ws.js"), str(port), control]
    elif name == "python-lean":
        cmd = [sys.executable, str(PEERS / "lean.py"), str(port), control]
    else:
        binary = work / "c_epoll"
        if not binary.exists():
            subprocess.run(
                ["cc", "-O2", "-o", str(binary), str(PEERS / "c_epoll.c")], check=True, timeout=120
            )
        cmd = [str(binary), str(port), control]
    return spawn_logged(cmd, work / f"{name}.log", cwd=PEERS)


async def wait_until(predicate: Any, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {seconds:g} s waiting for {what}")
        await asyncio.sleep(0.02)


async def settle(pids: list[int], idle_us_per_s: float = 5000, seconds: float = 10) -> float:
    """Wait until these processes are idle (CPU under ``idle_us_per_s`` for 0.2 s); their
    idle CPU rate, seconds per second."""
    deadline = time.monotonic() + seconds
    while True:
        c0, t0 = cpu_sched(pids), time.monotonic()
        await asyncio.sleep(0.2)
        rate = (cpu_sched(pids) - c0) / (time.monotonic() - t0)
        if rate * 1e6 < idle_us_per_s or time.monotonic() > deadline:
            return rate


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- bursts ----------------------------------------------------------------------------


async def bursts(
    args: argparse.Namespace, work: Path, redis_url: str, others: list[Fleet]
) -> dict[str, Any]:
    """CPU per new client, each target in turn, ``rounds`` times; medians. The
    storms' servers start meanwhile (``others``): they are up and idle before the
    first burst."""
    from tidings.protocol.tokens import KeyRing

    keys = KeyRing.generate().spec()
    project = 600_000_000 + random.randrange(99_000_000)
    n = args.burst_clients
    procs: dict[str, subprocess.Popen[bytes]] = {}
    ports: dict[str, int] = {}
    try:
        port = free_port()
        proc = start_push(port, push_env(redis_url, keys), work / "burst-push.log", n + 100)
        await asyncio.to_thread(wait_port, port, proc)  # type: ignore[arg-type]
        for kind in ("ws", "sse", "sio"):
            if f"tidings-{kind}" in args.burst_targets:
                procs[f"tidings-{kind}"], ports[f"tidings-{kind}"] = proc, port
        for name in args.burst_targets:
            if name.startswith("tidings-"):
                continue
            ref_port = free_port()
            ref = start_reference(name, ref_port, work)
            if ref is None:
                continue
            await asyncio.to_thread(wait_port, ref_port, ref)  # type: ignore[arg-type]
            procs[name], ports[name] = ref, ref_port
        for fleet in others:
            await fleet.wait()
        await asyncio.sleep(0.5)  # the Redis link
        # The tokens of every round, signed before anything is measured.
        tokens = sign_tokens(keys, 0, n * (args.rounds + 1) * 3, project)
        rounds: dict[str, list[float]] = {name: [] for name in procs}
        used = 0
        # Round 0 warms every target up (Node's JIT, the hub's first subscribe to
        # the project, each server's caches) and is not counted.
        for r in range(args.rounds + 1):
            for name in procs:
                kind = name.removeprefix("tidings-") if name.startswith("tidings-") else "bare"
                pid = procs[name].pid
                idle = await settle([pid])
                batch = tokens[used : used + n] if kind != "bare" else [""] * n
                used += n if kind != "bare" else 0
                crowd = Crowd(kind, [ports[name]], batch, project)
                c0, t0 = cpu_sched([pid]), time.monotonic()
                await crowd.connect_all()
                cpu, elapsed = cpu_sched([pid]) - c0, time.monotonic() - t0
                per = (cpu - idle * elapsed) / n * 1e6
                if r > 0:
                    rounds[name].append(round(per, 1))
                what = f"burst {r}" if r > 0 else "warm-up"
                log(f"{what}: {name}: {per:.0f} us per client ({n} in {elapsed:.2f} s)")
                crowd.close()
                await asyncio.sleep(0.2)
        medians = {name: round(statistics.median(v), 1) for name, v in rounds.items()}
        node = medians.get("node-ws")
        return {
            "clients": n,
            "rounds": args.rounds,
            "targets": {
                name: {
                    "describe": BURST_TARGETS[name],
                    "cpu_us_per_client": medians[name],
                    "cpu_us_per_client_rounds": rounds[name],
                    "ratio_to_node_ws": round(medians[name] / node, 2) if node else None,
                }
                for name in rounds
            },
        }
    finally:
        for proc in {id(p): p for p in procs.values()}.values():
            stop_process(proc)


# -- storms ----------------------------------------------------------------------------


def py_spy(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    exe = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(exe).exists():
        log("py-spy not installed (pip install -e '.[bench]'): no profile")
        return None
    cmd = [exe, "record", "-p", str(pid), "-d", str(max(1, round(seconds))), "-r", "250"]
    cmd += ["-f", "raw", "-o", str(out), "--nonblocking"]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def summarize_profile(path: Path, top: int = 25) -> list[dict[str, Any]]:
    """Self and inclusive sample shares per function from py-spy's raw (collapsed) stacks."""
    if not path.is_file():
        return []
    own: dict[str, int] = {}
    incl: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [
            f.split(" (")[0] + " " + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            for f in stack.split(";")
        ]
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            incl[f] = incl.get(f, 0) + n
    if not total:
        return []
    rows = sorted(incl.items(), key=lambda kv: -kv[1])[:top]
    return [
        {
            "function": f,
            "inclusive_pct": round(100 * n / total, 1),
            "self_pct": round(100 * own.get(f, 0) / total, 1),
        }
        for f, n in rows
    ]


class Fleet:
    """The push servers of one storm, started ahead (all storms' at once: they idle
    until their turn, and the run spends the start-up of one fleet, not of each)."""

    def __init__(self, kind: str, args: argparse.Namespace, work: Path, redis_url: str) -> None:
        from tidings.protocol.tokens import KeyRing

        self.kind = kind
        self.redis_url = redis_url
        self.keys = KeyRing.generate().spec()
        env = push_env(redis_url, self.keys, args.max_pending)
        m, servers = args.clients_per_server, args.servers
        most = math.ceil(m * servers / (servers - 1)) + SERVER_SPARE_FDS
        self.ports = [free_port() for _ in range(servers)]
        self.procs = [
            start_push(p, env, work / f"push-{kind}-{i}.log", most)
            for i, p in enumerate(self.ports)
        ]

    async def wait(self) -> None:
        for p, proc in zip(self.ports, self.procs, strict=True):
            await asyncio.to_thread(wait_port, p, proc)  # type: ignore[arg-type]

    def stop(self) -> None:
        for proc in self.procs:
            stop_process(proc)


async def storm(fleet: Fleet, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """One storm on its own servers; what it measured."""
    from tidings.broker.redis_publisher import RedisPublisher
    from tidings.protocol.channels import project_channel
    from tidings.protocol.poke import Poke, encode_poke

    kind, keys, ports, procs = fleet.kind, fleet.keys, fleet.ports, fleet.procs
    project = 700_000_000 + random.randrange(99_000_000)
    m, servers, victim = args.clients_per_server, args.servers, 0
    publisher = RedisPublisher.from_url(fleet.redis_url)
    channel = project_channel(project)
    version = 0
    stop_poking = asyncio.Event()
    crowds: Crowds | None = None

    async def poker() -> None:
        nonlocal version
        while not stop_poking.is_set():
            version += 1
            await publisher.set_version(project, version)
            await publisher.publish(channel, encode_poke(Poke(project, version, time.time())))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop_poking.wait(), args.poke_interval)

    try:
        crowds = Crowds(kind, ports, keys, project, args)
        log(f"{kind}: connecting {m * servers} clients to {servers} servers")
        await crowds.ask("connect", wait_s=CONNECT_TIMEOUT_S * 20)
        poking = asyncio.create_task(poker())
        await asyncio.sleep(args.settle)
        survivors = [p.pid for i, p in enumerate(procs) if i != victim]
        # The quiet window: the same pokes, no storm, as long as the storm will last.
        quiet_s = args.window_max + 0.5
        q0, qw0, qt0 = cpu_sched(survivors), time.time(), time.monotonic()
        await asyncio.sleep(quiet_s)
        quiet_cpu = cpu_sched(survivors) - q0
        quiet_elapsed = time.monotonic() - qt0
        qw1 = time.time()
        moved = sum(await crowds.ask("arm", victim))
        spy = None
        if args.profile and kind == "ws":
            spy = py_spy(survivors[0], args.window_max + 1, work / "profile.txt")
            await asyncio.sleep(0.3)
        c0 = cpu_sched(survivors)
        killed, killed_wall = time.monotonic(), time.time()
        os.killpg(procs[victim].pid, signal.SIGKILL)
        log(f"{kind}: killed server {victim} with {moved} clients")
        parts = await crowds.ask("moved", wait_s=STORM_TIMEOUT_S + 10)
        resubscribed = [tuple(x) for part in parts for x in part]
        done = max(t for t, _ in resubscribed)
        storm_cpu = cpu_sched(survivors) - c0
        storm_s = done - killed
        done_wall = killed_wall + storm_s
        await asyncio.sleep(0.3)
        stop_poking.set()
        await poking
        reports = await crowds.ask("report")
        latencies = [tuple(x) for r in reports for x in r["latencies"]]
        failed = sum(r["failed"] for r in reports)
        if spy is not None:
            await asyncio.to_thread(spy.wait, 30)
        net_cpu = storm_cpu - quiet_cpu / quiet_elapsed * storm_s
        buckets: dict[tuple[int, int], int] = {}
        for t, server in resubscribed:
            key = (int(server), int((t - killed) * 10))
            buckets[key] = buckets.get(key, 0) + 1
        quiet_lat = [lat for sent, lat in latencies if qw0 <= sent <= qw1]
        storm_lat = [lat for sent, lat in latencies if killed_wall <= sent <= done_wall]
        result = {
            "transport": kind,
            "describe": TRANSPORTS[kind],
            "moved_clients": moved,
            "resubscribe_s": round(storm_s, 3),
            "first_resubscribe_s": round(min(t for t, _ in resubscribed) - killed, 3),
            "peak_accept_per_s": max(buckets.values()) * 10,
            "resubscribed_per_100ms": {
                str(srv): [buckets.get((srv, k), 0) for k in range(int(storm_s * 10) + 1)]
                for srv in range(servers)
                if srv != victim
            },
            "survivors_cpu_s": round(storm_cpu, 4),
            "survivors_quiet_cpu_s": round(quiet_cpu / quiet_elapsed * storm_s, 4),
            "cpu_us_per_connection_raw": round(storm_cpu / moved * 1e6, 1),
            "cpu_us_per_connection": round(net_cpu / moved * 1e6, 1),
            "failed_attempts": failed,
            "untouched_latency_ms": {
                "quiet_p50": round(percentile(quiet_lat, 0.5) * 1000, 2),
                "quiet_p99": round(percentile(quiet_lat, 0.99) * 1000, 2),
                "storm_p50": round(percentile(storm_lat, 0.5) * 1000, 2),
                "storm_p99": round(percentile(storm_lat, 0.99) * 1000, 2),
                "storm_max": round(max(storm_lat, default=float("nan")) * 1000, 2),
                "storm_samples": len(storm_lat),
            },
        }
        lat = result["untouched_latency_ms"]
        if spy is not None:
            result["profile"] = summarize_profile(work / "profile.txt")
            if args.profile_out:
                shutil.copy(work / "profile.txt", args.profile_out)
        log(
            f"{kind}: {moved} resubscribed in {storm_s:.2f} s, peak "
            f"{result['peak_accept_per_s']}/s per server, {result['cpu_us_per_connection']:.0f} us "
            f"CPU each (raw {result['cpu_us_per_connection_raw']:.0f}); untouched p50/p99 "
            f"{lat['storm_p50']}/{lat['storm_p99']} ms"
        )
        return result
    finally:
        stop_poking.set()
        if crowds is not None:
            crowds.close()
        fleet.stop()
        with contextlib.suppress(Exception):
            await publisher.close()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="tidings-storm-"))
    redis_proc, redis_url = start_redis(work)
    data: dict[str, Any] = {
        "benchmark": "storm",
        "command": " ".join([".venv/bin/python", "bench/storm.py", *sys.argv[1:]]),
        "machine": describe(),
        "tidings_commit": git_state(),
        "servers": args.servers,
        "clients_per_server": args.clients_per_server,
        "reconnect_window_s": [args.window_min, args.window_max],
        "poke_interval_s": args.poke_interval,
        "max_pending": args.max_pending,
        "goal_us_per_connection": GOAL_US,
        "storms": [],
    }
    fleets: list[Fleet] = []
    try:
        fleets = [Fleet(kind, args, work, redis_url) for kind in args.transports]
        if args.burst_targets:
            data["bursts"] = await bursts(args, work, redis_url, fleets)
        for fleet in fleets:
            await fleet.wait()
        await asyncio.sleep(0.5)  # the Redis links
        for fleet in fleets:
            data["storms"].append(await storm(fleet, args, work))
    finally:
        for fleet in fleets:
            fleet.stop()
        if redis_proc is not None:
            stop_process(redis_proc)
        shutil.rmtree(work, ignore_errors=True)
    by = {r["transport"]: r for r in data["storms"]}
    if "ws" in by:
        base = by["ws"]["cpu_us_per_connection"]
        data["cpu_ratio_to_ws"] = {
            k: round(r["cpu_us_per_connection"] / base, 2) if base > 0 else None
            for k, r in by.items()
        }
    goals = []
    targets = data.get("bursts", {}).get("targets", {})
    node = targets.get("node-ws", {}).get("cpu_us_per_client")
    for name, t in targets.items():
        if name.startswith("tidings-"):
            bound = min(GOAL_US, node) if node else GOAL_US
            goals.append(
                {
                    "goal": f"{t['describe']}: <= {GOAL_US:g} us of server CPU and <= Node ws's "
                    "bare handshake (bursts)",
                    "value_us": t["cpu_us_per_client"],
                    "node_ws_us": node,
                    "met": t["cpu_us_per_client"] <= bound,
                }
            )
    data["goals"] = goals
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return data


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    storms = data["storms"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    ax = axes[0]
    targets = data.get("bursts", {}).get("targets", {})
    names = list(targets)
    if names:
        ax.bar(names, [targets[n]["cpu_us_per_client"] for n in names])
        ax.axhline(GOAL_US, color="gray", linestyle="--", linewidth=1)
        ax.set_ylabel("server CPU per new client, us (median of rounds)")
        ax.set_title(f"bursts of {data['bursts']['clients']:,} clients", fontsize=9)
        ax.tick_params(axis="x", labelrotation=20, labelsize=8)
    else:
        ax.axis("off")
        ax.text(0.5, 0.5, "no bursts in this run", ha="center", transform=ax.transAxes)
    ax = axes[1]
    for r in storms:
        for srv, counts in r["resubscribed_per_100ms"].items():
            ax.plot(
                [k / 10 for k in range(len(counts))],
                [c * 10 for c in counts],
                label=f"{r['transport']} server {srv}",
            )
    ax.set_xlabel("seconds since the kill")
    ax.set_ylabel("resubscribes per second (100 ms bins)")
    ax.set_title(
        f"storms: {data['servers']} servers x {data['clients_per_server']:,} clients, one killed",
        fontsize=9,
    )
    if storms:
        ax.legend(fontsize=8)
    finish(fig, path, machine=data["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--servers", type=int, default=None, help="default 3; quick 2")
    parser.add_argument(
        "--clients-per-server", type=int, default=None, help="default 3000; quick 60"
    )
    parser.add_argument("--transports", default="ws,sse,sio", help="of ws, sse, sio; '' for none")
    parser.add_argument(
        "--burst",
        default=",".join(BURST_TARGETS),
        help=f"burst targets, of {', '.join(BURST_TARGETS)}; '' for none",
    )
    parser.add_argument("--burst-clients", type=int, default=None, help="default 3000; quick 100")
    parser.add_argument("--rounds", type=int, default=None, help="burst rounds; default 5")
    parser.add_argument("--window-min", type=float, default=1.0, help="reconnect delay, s")
    parser.add_argument("--window-max", type=float, default=2.0, help="reconnect delay, s")
    parser.add_argument(
        "--poke-interval",
        type=float,
        default=0.5,
        help="s between pokes to every client (the untouched clients' latency); at 0.1 "
        "the fan-out to 9,000 SSE clients outgrows two shared cores",
    )
    parser.add_argument(
        "--max-pending",
        type=int,
        default=None,
        help="the storm servers' TIDINGS_PUSH_MAX_PENDING (default: the server's, 2000)",
    )
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--profile", action="store_true", help="py-spy on a survivor (/ws)")
    parser.add_argument("--profile-out", type=Path, default=None, help="keep the raw stacks")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS / "storm")
    args = parser.parse_args(argv)
    args.servers = args.servers or (2 if args.quick else 3)
    args.clients_per_server = args.clients_per_server or (60 if args.quick else 3000)
    args.burst_clients = args.burst_clients or (100 if args.quick else 3000)
    args.rounds = args.rounds or (1 if args.quick else 5)
    if args.quick and args.burst == parser.get_default("burst"):
        args.burst = "tidings-ws,tidings-sse,tidings-sio,c-epoll"
    args.transports = [t for t in args.transports.split(",") if t]
    args.burst_targets = [t for t in args.burst.split(",") if t]
    unknown = (set(args.transports) - set(TRANSPORTS)) | (
        set(args.burst_targets) - set(BURST_TARGETS)
    )
    if unknown or args.servers < 2:
        parser.error(f"unknown transports or targets {sorted(unknown)}, or fewer than 2 servers")
    if args.quick:
        args.window_min, args.window_max, args.settle = 0.1, 0.3, 0.2
        if args.poke_interval == parser.get_default("poke_interval"):
            args.poke_interval = 0.1  # 180 clients: samples within a storm this short
    raise_nofile()
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    most = math.ceil(args.clients_per_server * args.servers / (args.servers - 1))
    if args.transports and most + SERVER_SPARE_FDS > limit:
        fits = (limit - SERVER_SPARE_FDS) * (args.servers - 1) // args.servers
        parser.error(
            f"a survivor would hold {most:,} clients, over this machine's {limit:,} descriptors "
            f"per process: at most {fits:,} clients per server"
        )
    data = uvloop.run(run(args))
    print()
    for name, t in data.get("bursts", {}).get("targets", {}).items():
        print(
            f"burst {name}: {t['cpu_us_per_client']} us per client (rounds "
            f"{t['cpu_us_per_client_rounds']}), x{t['ratio_to_node_ws']} Node ws"
        )
    for r in data["storms"]:
        lat = r["untouched_latency_ms"]
        print(
            f"{r['describe']}: {r['moved_clients']} clients resubscribed in "
            f"{r['resubscribe_s']} s, "
            f"peak {r['peak_accept_per_s']}/s per server, {r['cpu_us_per_connection']} us CPU per "
            f"connection (raw {r['cpu_us_per_connection_raw']}), untouched p50/p99 "
            f"{lat['quiet_p50']}/{lat['quiet_p99']} ms quiet, "
            f"{lat['storm_p50']}/{lat['storm_p99']} ms in the storm"
        )
    for goal in data["goals"]:
        print(f"goal: {goal['goal']}: {'met' if goal['met'] else 'MISSED'} ({goal['value_us']} us)")
    for row in next((r.get("profile", []) for r in data["storms"] if r.get("profile")), []):
        print(
            f"  {row['inclusive_pct']:5.1f}% incl {row['self_pct']:5.1f}% self  {row['function']}"
        )
    save(data, args.out, plot, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
