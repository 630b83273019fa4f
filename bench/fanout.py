"""Push fan-out, side by side in one run: tidings' transports, peer servers and two floors.

For each target server (pinned to core 0) it opens N idle connections from
several load-generator processes (bench/fanout_load.c, or bench/fanout_load.py
with --generator python; pinned to core 1, source addresses spread over
127.0.0.0/8), waits until every client is open and subscribed, sends one
warm-up poke, measures the server's idle CPU, then sends K
pokes one at a time (each once every client got the previous one, plus a short
pause) and records per poke the time until each client got it. From /proc it
takes the server's RSS before and after connecting (per connection) and its CPU
per connection per poke (idle baseline subtracted); also the connection setup
rate and the generators' own CPU. tidings is poked through Redis PUBLISH (the
real path, on a private redis-server); peers through a UDP datagram carrying the
poke's JSON; pushpin through its HTTP publish endpoint.
Writes bench/results/fanout.json and .png.

    .venv/bin/python bench/fanout.py [--clients 10000] [--pokes 20] [--servers a,b,...]
    .venv/bin/python bench/fanout.py --quick
    .venv/bin/python bench/fanout.py --servers tidings-ws,c-epoll --rounds 3

Results and how to read them: docs/PERFORMANCE.md, "Push fan-out".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import math
import os
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import free_port
from machine import describe
from report import finish, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
PEERS = BENCH / "peers"
RESULTS = BENCH / "results"
TICKS = os.sysconf("SC_CLK_TCK")
WS_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
#: Connections per source address (well inside the 28k ephemeral ports of each).
PER_SOURCE = 2000
#: A poke that reaches no new client for this long is given up; none waits longer than
#: POKE_MAX_S.
STALL_S = 5.0
POKE_MAX_S = 120.0
#: Connections per generator process (open-file limit 20,000 per process).
PER_GENERATOR = 4000
ALL_TARGETS = (
    "tidings-ws",
    "tidings-ws-pyloop",
    "tidings-sse",
    "tidings-sio",
    "c-epoll",
    "python-lean",
    "python-oswrite",
    "node-ws",
    "node-socket.io",
    "websockets",
    "picows",
    "python-socketio",
    "pushpin-sse",
)
QUICK_TARGETS = ("tidings-ws", "tidings-sse", "python-lean", "c-epoll")
DESCRIPTIONS = {
    "tidings-ws": "tidings push /ws (uvloop, hand-written WebSocket, hub)",
    "tidings-ws-pyloop": "tidings push /ws with the pure-Python fan-out loop (no native part)",
    "tidings-sse": "tidings push /sse",
    "tidings-sio": "tidings push /socket.io/ (Engine.IO over WebSocket)",
    "c-epoll": "C floor: single-threaded epoll, one send() per client",
    "python-lean": "Python floor: uvloop asyncio.Protocol + __slots__, one pre-encoded frame",
    "python-oswrite": "probe: the Python floor writing with os.write(fd) instead of uvloop's write",
    "node-ws": "Node ws, client.send(text) per client",
    "node-socket.io": "Node socket.io 4.8 io.emit (Engine.IO over WebSocket)",
    "websockets": "websockets (asyncio API) + uvloop, broadcast()",
    "picows": "picows + uvloop, one pre-encoded frame to each transport",
    "python-socketio": "python-socketio ASGI on uvicorn (uvloop, websockets-sansio)",
    "pushpin-sse": "pushpin (Debian) SSE via GRIP stream hold",
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


# -- /proc -------------------------------------------------------------------


def tree(root: int) -> list[int]:
    """``root`` and all its descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [], [root]
    while todo and len(found) < 1000:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, ()))
    return found


def started_at(pid: int) -> int | None:
    """A process's start time (clock ticks since boot): tells a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def cpu_stat(pids: list[int]) -> float:
    """utime + stime of these processes, seconds (clock-tick resolution)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICKS


def cpu_sched(pids: list[int]) -> float:
    """CPU time of every live thread of these processes, seconds (ns resolution, schedstat)."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for task in os.listdir(f"/proc/{pid}/task"):
                with (
                    contextlib.suppress(OSError, ValueError),
                    open(f"/proc/{pid}/task/{task}/schedstat") as f,
                ):
                    total += int(f.read().split()[0])
    return total / 1e9


def rss_kb(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError), open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
    return total


# -- servers -----------------------------------------------------------------


@dataclass
class Server:
    """A running target: its process (measured with its descendants), how to poke it."""

    proc: subprocess.Popen[bytes]
    port: int
    poke: Callable[[int, bytes], Awaitable[None]]
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    closers: list[Callable[[], Awaitable[None]]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    started: dict[int, int | None] = field(default_factory=dict)

    async def stop(self) -> None:
        for closer in self.closers:
            with contextlib.suppress(Exception):
                await closer()
        # Descendants that left the process group (pushpin's services do).
        self.remember(tree(self.proc.pid))
        descendants = list(self.pids)
        for proc in [self.proc, *self.helpers]:
            stop_process(proc)
        for pid in descendants:
            if started_at(pid) == self.started.get(pid):  # still the same process
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)

    def remember(self, pids: list[int]) -> None:
        for pid in pids:
            if pid != self.proc.pid and pid not in self.started:
                self.started[pid] = started_at(pid)
                self.pids.append(pid)


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """End a process this benchmark started, and its process group (it leads one)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


def spawn(
    cmd: list[str], core: int | None, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    pin = ["taskset", "-c", str(core)] if core is not None else []
    return subprocess.Popen(
        pin + cmd,
        env=env,
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def wait_port(port: int, proc: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"server exited ({proc.returncode}): {err[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on port {port} after {seconds:g} s")


class Env:
    """What every target shares: the cores, a private Redis, tidings' keys."""

    def __init__(self, work: Path, server_core: int | None, redis_url: str, generator: str) -> None:
        self.work = work
        self.generator = generator
        self.server_core = server_core
        self.redis_url = redis_url
        from tidings.protocol.tokens import KeyRing

        self.keys = KeyRing.generate()
        self.project = 900_000_000 + secrets.randbelow(99_999_999)
        self._c_binary: Path | None = None
        self._c_generator: Path | None = None

    def token(self) -> str:
        from tidings.protocol.tokens import sign_push_token

        token, _ = sign_push_token(self.keys, 1, [self.project], ttl=3600)
        return token

    def c_generator(self) -> Path:
        if self._c_generator is None:
            out = self.work / "fanout_load"
            subprocess.run(
                ["cc", "-O2", "-o", str(out), str(BENCH / "fanout_load.c")], check=True, timeout=120
            )
            self._c_generator = out
        return self._c_generator

    def c_binary(self) -> Path:
        if self._c_binary is None:
            out = self.work / "c_epoll"
            subprocess.run(
                ["cc", "-O2", "-o", str(out), str(PEERS / "c_epoll.c")], check=True, timeout=120
            )
            self._c_binary = out
        return self._c_binary


def udp_poker(port: int) -> Callable[[int, bytes], Awaitable[None]]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    async def poke(version: int, payload: bytes) -> None:
        sock.sendto(payload, ("127.0.0.1", port))

    return poke


async def start_peer(name: str, env: Env) -> Server:
    port, control = free_port(), free_port(socket.SOCK_DGRAM)
    args = [str(port), str(control)]
    py = sys.executable
    cmd = {
        "c-epoll": lambda: [str(env.c_binary()), *args],
        "python-lean": lambda: [py, str(PEERS / "lean.py"), *args],
        "python-oswrite": lambda: [py, str(PEERS / "lean.py"), *args, "--os-write"],
        "websockets": lambda: [py, str(PEERS / "ws_websockets.py"), *args],
        "picows": lambda: [py, str(PEERS / "ws_picows.py"), *args],
        "python-socketio": lambda: [py, str(PEERS / "sio_python.py"), *args],
        "node-ws": lambda: ["node", str(PEERS / "node_ws.js"), *args],
        "node-socket.io": lambda: ["node", str(PEERS / "node_sio.js"), *args],
    }[name]()
    if name.startswith("node") and not (PEERS / "node_modules").is_dir():
        await asyncio.to_thread(
            subprocess.run,
            ["npm", "install", "--no-audit", "--no-fund"],
            cwd=PEERS,
            check=True,
            timeout=300,
        )
    proc = spawn(cmd, env.server_core, cwd=PEERS)
    server = Server(proc, port, udp_poker(control))
    try:
        wait_port(port, proc)
    except Exception:
        stop_process(proc)
        raise
    return server


async def start_tidings(env: Env, native: bool = True) -> Server:
    port = free_port()
    penv = {
        **os.environ,
        "REDIS_URL": env.redis_url,
        "TIDINGS_PUSH_KEYS": env.keys.spec(),
        # One client address per 2,000 connections: the per-IP rate limit is for
        # the internet, not for a benchmark (as behind a load balancer).
        "TIDINGS_PUSH_IP_RATE": "0",
        # The other servers send no heartbeat or ping during the run either.
        "TIDINGS_PUSH_HEARTBEAT": "3600",
        # tidings-ws-pyloop: what /ws costs where the extension could not be built.
        "TIDINGS_PUSH_NATIVE_FANOUT": "1" if native else "0",
    }
    cmd = [sys.executable, "-m", "tidings", "push", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--max-connections", "19500", "--drain-window", "1", "--log-level", "WARNING"]
    proc = spawn(cmd, env.server_core, penv)
    from tidings.broker.redis_publisher import RedisPublisher
    from tidings.protocol.channels import project_channel
    from tidings.protocol.poke import Poke, encode_poke

    publisher = RedisPublisher.from_url(env.redis_url)
    channel = project_channel(env.project)

    async def poke(version: int, payload: bytes) -> None:
        ts = json.loads(payload)["ts"]
        await publisher.publish(channel, encode_poke(Poke(env.project, version, ts)))

    server = Server(proc, port, poke, closers=[publisher.close])
    try:
        wait_port(port, proc)
        deadline = time.monotonic() + 20
        async with httpx.AsyncClient() as http:
            while time.monotonic() < deadline:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                await asyncio.sleep(0.2)
            else:
                raise RuntimeError("tidings push did not become ready (Redis link)")
    except Exception:
        await server.stop()
        raise
    return server


PUSHPIN_CONF = """[global]
include={libdir}/internal.conf
rundir=RUNDIR
ipc_prefix=bench-
port_offset=0
stats_connection_ttl=120

[runner]
services=condure,zurl,pushpin-proxy,pushpin-handler
http_port=HTTPPORT
logdir=LOGDIR
log_level=1
client_buffer_size=8192
client_maxconn=50000
condure_bin=condure
zurl_bin=zurl

[proxy]
# Debian's internal.conf points at a system zurl (/var/run/zurl): use our own.
zurl_out_specs=ipc://{rundir}/{ipc_prefix}zurl-in
zurl_out_stream_specs=ipc://{rundir}/{ipc_prefix}zurl-in-stream
zurl_in_specs=ipc://{rundir}/{ipc_prefix}zurl-out
routesfile=routes
debug=false
auto_cross_origin=false
updates_check=off
sig_iss=pushpin
sig_key=changeme

[handler]
push_in_spec=tcp://127.0.0.1:5560
push_in_sub_specs=tcp://127.0.0.1:5562
push_in_sub_connect=false
push_in_http_addr=127.0.0.1
push_in_http_port=5561
stats_spec=ipc://{rundir}/{ipc_prefix}stats
command_spec=tcp://127.0.0.1:5563
message_rate=1000000
message_hwm=1000000
message_wait=5000
id_cache_ttl=60
connection_subscription_max=20
subscription_linger=60
stats_subscription_ttl=60
stats_report_interval=10
stats_format=tnetstring
"""


async def start_pushpin(env: Env) -> Server:
    if not shutil.which("pushpin"):
        raise RuntimeError("pushpin is not installed (apt-get install pushpin)")
    for fixed in (5560, 5561, 5562, 5563):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", fixed)) == 0:
                raise RuntimeError(f"port {fixed} (pushpin's publish ports) is in use")
    port, origin = free_port(), free_port()
    conf_dir = env.work / "pushpin"
    for sub in ("run", "log"):
        (conf_dir / sub).mkdir(parents=True, exist_ok=True)
    conf = (
        PUSHPIN_CONF.replace("RUNDIR", str(conf_dir / "run"))
        .replace("LOGDIR", str(conf_dir / "log"))
        .replace("HTTPPORT", str(port))
    )
    (conf_dir / "pushpin.conf").write_text(conf)
    (conf_dir / "routes").write_text(f"* 127.0.0.1:{origin}\n")
    helper = spawn([sys.executable, str(PEERS / "grip_backend.py"), str(origin), "poke"], None)
    wait_port(origin, helper)
    proc = spawn(["pushpin", "--config", str(conf_dir / "pushpin.conf")], env.server_core)
    http = httpx.AsyncClient(timeout=10)

    async def poke(version: int, payload: bytes) -> None:
        content = b"data: " + payload + b"\n\n"
        item = {"channel": "poke", "formats": {"http-stream": {"content": content.decode()}}}
        answer = await http.post("http://127.0.0.1:5561/publish/", json={"items": [item]})
        answer.raise_for_status()

    server = Server(proc, port, poke, helpers=[helper], closers=[http.aclose])
    try:
        wait_port(port, proc)
        wait_port(5561, proc)
        await asyncio.sleep(1.0)
    except Exception:
        await server.stop()
        raise
    return server


def native_fanout_built() -> bool:
    from tidings.push import fanout

    return fanout.NATIVE is not None


def socketio_mounted() -> bool:
    with contextlib.suppress(ImportError):
        return callable(getattr(importlib.import_module("tidings.push.sio"), "http_handler", None))
    return False


async def start(name: str, env: Env) -> Server:
    if name.startswith("tidings-"):
        return await start_tidings(env, native=name != "tidings-ws-pyloop")
    if name == "pushpin-sse":
        return await start_pushpin(env)
    return await start_peer(name, env)


def client_spec(name: str, env: Env, port: int) -> dict[str, Any]:
    """How a generator client opens, subscribes and knows it is ready."""
    host = f"Host: 127.0.0.1:{port}\r\n"
    upgrade = (
        f"{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    eio = "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\n" + upgrade
    project = env.project
    if name in ("tidings-ws", "tidings-ws-pyloop"):
        sub = json.dumps({"type": "subscribe", "token": env.token(), "projects": {project: 0}})
        return {
            "ws": True,
            "request": "GET /ws HTTP/1.1\r\n" + upgrade,
            "steps": [["", sub], ['"subscribed"', None]],
        }
    if name == "tidings-sse":
        return {
            "ws": False,
            "request": f"GET /sse?token={env.token()}&p={project}:0 HTTP/1.1\r\n{host}"
            "Accept: text/event-stream\r\n\r\n",
            "steps": [['"subscribed"', None]],
        }
    if name == "tidings-sio":
        auth = json.dumps({"token": env.token(), "projects": {str(project): 0}})
        return {
            "ws": True,
            "eio_pong": True,
            "request": eio,
            "steps": [['0{"sid"', "40" + auth], ['"subscribed"', None]],
        }
    if name in ("node-socket.io", "python-socketio"):
        return {
            "ws": True,
            "eio_pong": True,
            "request": eio,
            "steps": [['0{"sid"', "40"], ["40{", None]],
        }
    if name == "pushpin-sse":
        return {
            "ws": False,
            "request": f"GET /sse HTTP/1.1\r\n{host}Accept: text/event-stream\r\n\r\n",
            "steps": [["retry: 5000", None]],
        }
    return {"ws": True, "request": "GET /ws HTTP/1.1\r\n" + upgrade, "steps": []}


def poked_by(name: str) -> str:
    if name.startswith("tidings-"):
        return "Redis PUBLISH"
    if name == "pushpin-sse":
        return "pushpin HTTP publish"
    return "UDP datagram"


# -- generators --------------------------------------------------------------


class Generator:
    def __init__(self, proc: asyncio.subprocess.Process, count: int) -> None:
        self.proc = proc
        self.count = count
        self.ready = 0
        self.failed = 0
        self.elapsed = 0.0
        self.done = asyncio.Event()
        self.reported = asyncio.Event()
        self.got: dict[int, int] = {}
        #: Partial counts per version (every 0.5 s), to tell a slow poke from a stalled one.
        self.seen: dict[int, int] = {}
        self.changed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            line = await self.proc.stdout.readline()
            if not line:
                self.done.set()
                self.changed.set()
                return
            words = line.decode().split()
            if not words:
                continue
            if words[0] == "progress":
                self.ready, self.failed = int(words[1]), int(words[2])
            elif words[0] == "ready":
                self.ready, self.failed = int(words[1]), int(words[2])
                self.elapsed = float(words[3])
                self.done.set()
            elif words[0] == "got":
                self.got[int(words[1])] = int(words[2])
                self.seen[int(words[1])] = int(words[2])
            elif words[0] == "seen":
                self.seen[int(words[1])] = int(words[2])
            elif words[0] == "reported":
                self.reported.set()
            self.changed.set()

    async def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        with contextlib.suppress(ConnectionError):
            self.proc.stdin.write(line.encode() + b"\n")
            await self.proc.stdin.drain()

    async def stop(self) -> None:
        await self.send("quit")
        try:
            await asyncio.wait_for(self.proc.wait(), 10)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


def c_spec(spec: dict[str, Any]) -> str:
    """The spec of bench/fanout_load.py as the line format of bench/fanout_load.c."""
    from fanout_load import client_frame

    def hexed(data: bytes | None) -> str:
        return data.hex() if data else "-"

    lines = [
        f"{spec['host']} {spec['port']} {spec['count']} {spec['first_version']} "
        f"{spec['last_version']} {int(bool(spec.get('eio_pong')))} {spec['concurrency']}",
        " ".join(spec["sources"]),
        hexed(spec["request"].encode()),
        str(len(spec["steps"])),
    ]
    for marker, reply in spec["steps"]:
        data = None if reply is None else client_frame(reply) if spec["ws"] else reply.encode()
        lines.append(f"{hexed(marker.encode())} {hexed(data)}")
    ping = b"\x81\x012"  # an Engine.IO ping ("2") as a server text frame
    lines.append(f"{hexed(ping)} {hexed(client_frame('3'))}")
    return "\n".join(lines) + "\n"


async def start_generators(
    name: str, env: Env, port: int, clients: int, versions: tuple[int, int], core: int | None
) -> list[Generator]:
    count = max(1, math.ceil(clients / PER_GENERATOR))
    spec = client_spec(name, env, port)
    gens = []
    for g in range(count):
        n = clients // count + (1 if g < clients % count else 0)
        sources = [
            f"127.{10 + g}.{k // 250}.{k % 250 + 1}" for k in range(math.ceil(n / PER_SOURCE))
        ]
        full = {
            **spec,
            "host": "127.0.0.1",
            "port": port,
            "count": n,
            "sources": sources,
            "first_version": versions[0],
            "last_version": versions[1],
            "concurrency": 64,
        }
        pin = ["taskset", "-c", str(core)] if core is not None else []
        if env.generator == "c":
            spec_file = env.work / f"{name}-gen{g}.spec"
            spec_file.write_text(c_spec(full))
            cmd = [str(env.c_generator()), str(spec_file)]
        else:
            cmd = [sys.executable, str(BENCH / "fanout_load.py"), json.dumps(full)]
        proc = await asyncio.create_subprocess_exec(
            *pin,
            *cmd,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
        gens.append(Generator(proc, n))
    return gens


async def wait_for(predicate: Callable[[], bool], gens: list[Generator], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        waits = [asyncio.ensure_future(g.changed.wait()) for g in gens]
        await asyncio.wait(waits, timeout=min(left, 1.0), return_when=asyncio.FIRST_COMPLETED)
        for w in waits:
            w.cancel()
        for g in gens:
            g.changed.clear()
    return True


# -- one target --------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


async def measure(
    name: str,
    env: Env,
    clients: int,
    pokes: int,
    spacing: float,
    idle_s: float,
    gen_core: int | None,
) -> dict[str, Any]:
    from tidings.protocol.poke import Poke
    from tidings.protocol.push import poke as client_poke

    server = await start(name, env)
    gens: list[Generator] = []
    try:
        await asyncio.sleep(1.0)
        # taskset execs the server, so its pid is the server's; pushpin has children.
        pids = tree(server.proc.pid)
        server.remember(pids)
        rss_before = rss_kb(pids)
        first, last = 1, pokes + 1  # version 1 warms up, then K measured pokes
        log(f"{name}: server up (pid {server.proc.pid}, {rss_before} KB); opening {clients}")
        setup_cpu0 = cpu_sched(pids)
        gens = await start_generators(name, env, server.port, clients, (first, last), gen_core)
        started = time.monotonic()
        last_print = 0.0

        def all_done() -> bool:
            return all(g.done.is_set() for g in gens)

        while not all_done() and time.monotonic() - started < 300:
            await wait_for(all_done, gens, 2.0)
            if time.monotonic() - last_print >= 2 or all_done():
                last_print = time.monotonic()
                log(
                    f"{name}:   {sum(g.ready for g in gens)} open, "
                    f"{sum(g.failed for g in gens)} failed"
                )
        ready = sum(g.ready for g in gens)
        failed = sum(g.failed for g in gens)
        setup_s = max((g.elapsed for g in gens), default=0.0) or (time.monotonic() - started)
        if ready == 0:
            raise RuntimeError("no client connected")
        setup_cpu = cpu_sched(pids) - setup_cpu0
        await asyncio.sleep(1.0)
        pids = tree(server.proc.pid)
        server.remember(pids)
        rss_after = rss_kb(pids)

        async def one_poke(version: int) -> tuple[float, float, float, bool]:
            payload = client_poke(Poke(env.project, version, round(time.time(), 3)))
            c0, t0 = cpu_sched(pids), time.monotonic()
            await server.poke(version, payload)

            def complete() -> bool:
                return all(
                    g.got.get(version, 0) >= g.ready or g.proc.returncode is not None for g in gens
                )

            # Wait while clients keep getting it; give up after STALL_S without progress.
            ok, progress, still = False, -1, time.monotonic()
            while time.monotonic() - t0 < POKE_MAX_S:
                if await wait_for(complete, gens, 1.0):
                    ok = True
                    break
                seen = sum(g.seen.get(version, 0) for g in gens)
                if seen != progress:
                    progress, still = seen, time.monotonic()
                elif time.monotonic() - still > STALL_S:
                    break
            await asyncio.sleep(spacing)
            return t0, cpu_sched(pids) - c0, time.monotonic() - t0, ok

        await one_poke(first)  # warm-up, not measured
        await asyncio.sleep(max(1.0, spacing))  # let any work after the warm-up finish
        i0, s0, t0 = cpu_sched(pids), cpu_stat(pids), time.monotonic()
        await asyncio.sleep(idle_s)
        idle_wall = time.monotonic() - t0
        idle_rate = (cpu_sched(pids) - i0) / idle_wall
        idle_rate_stat = (cpu_stat(pids) - s0) / idle_wall
        log(f"{name}: {ready} clients ready ({failed} failed); idle CPU {idle_rate * 100:.2f}%")

        gen_pids = [g.proc.pid for g in gens]
        g0, s0, w0 = cpu_stat(gen_pids), cpu_stat(pids), time.monotonic()
        sent: dict[int, float] = {}
        per_poke_cpu: list[float] = []
        timeouts = 0
        for version in range(first + 1, last + 1):
            t_sent, used, wall, ok = await one_poke(version)
            sent[version] = t_sent
            per_poke_cpu.append(max(0.0, used - idle_rate * wall))
            timeouts += not ok
            if not ok:
                log(f"{name}:   poke {version} did not reach every client (stalled)")
        phase_wall = time.monotonic() - w0
        gen_cpu = cpu_stat(gen_pids) - g0
        phase_cpu_stat = cpu_stat(pids) - s0 - idle_rate_stat * phase_wall

        reports = []
        for g, gen in enumerate(gens):
            path = env.work / f"{name}-{g}.json"
            await gen.send(f"report {path}")
            await asyncio.wait_for(gen.reported.wait(), 60)
            reports.append(json.loads(path.read_text()))
        lost = sum(r["lost"] for r in reports)
        per_poke = []
        for version in range(first + 1, last + 1):
            lat = [(t - sent[version]) * 1000 for r in reports for t in r["arrivals"][str(version)]]
            per_poke.append(
                {
                    "version": version,
                    "received": len(lat),
                    "p50_ms": percentile(lat, 0.5),
                    "p99_ms": percentile(lat, 0.99),
                    "last_ms": max(lat) if lat else float("nan"),
                }
            )
        k = len(per_poke)
        cpu_us = [c / ready * 1e6 for c in per_poke_cpu]
        result: dict[str, Any] = {
            "description": DESCRIPTIONS[name],
            "poked_by": poked_by(name),
            "clients_asked": clients,
            "clients_ready": ready,
            "clients_failed": failed,
            "clients_lost_during_pokes": lost,
            "generators": len(gens),
            "every_client_got_every_poke": all(p["received"] == ready for p in per_poke)
            and timeouts == 0,
            "setup_seconds": round(setup_s, 3),
            "setup_rate_per_s": round(ready / setup_s, 1) if setup_s else None,
            "setup_server_cpu_us_per_conn": round(setup_cpu / ready * 1e6, 1),
            "setup_server_core_busy_percent": round(setup_cpu / setup_s * 100, 1),
            "rss_before_kb": rss_before,
            "rss_after_kb": rss_after,
            "rss_per_conn_kb": round((rss_after - rss_before) / ready, 3),
            "idle_cpu_percent": round(idle_rate * 100, 3),
            "cpu_us_per_conn_poke": round(statistics.median(cpu_us), 3),
            "cpu_us_per_conn_poke_min": round(min(cpu_us), 3),
            "cpu_us_per_conn_poke_max": round(max(cpu_us), 3),
            "cpu_us_per_conn_poke_proc_stat": round(phase_cpu_stat / (ready * k) * 1e6, 3),
            "cpu_us_per_conn_poke_each": [round(c, 3) for c in cpu_us],
            "latency_ms_p50": round(statistics.median(p["p50_ms"] for p in per_poke), 3),
            "latency_ms_p99": round(statistics.median(p["p99_ms"] for p in per_poke), 3),
            "latency_ms_last": round(statistics.median(p["last_ms"] for p in per_poke), 3),
            "server_cpu_ms_per_poke": round(statistics.median(per_poke_cpu) * 1000, 3),
            "generator_cpu_ms_per_poke": round(gen_cpu / k * 1000, 3),
            "generator_core_busy_percent": round(gen_cpu / phase_wall * 100, 1),
            "per_poke": per_poke,
        }
        log(
            f"{name}: CPU {result['cpu_us_per_conn_poke']:.2f} us/conn/poke "
            f"(min {result['cpu_us_per_conn_poke_min']:.2f}, /proc/stat "
            f"{result['cpu_us_per_conn_poke_proc_stat']:.2f}), RSS "
            f"{result['rss_per_conn_kb']:.2f} KB/conn, latency p50/p99/last "
            f"{result['latency_ms_p50']:.1f}/{result['latency_ms_p99']:.1f}/"
            f"{result['latency_ms_last']:.1f} ms, setup {result['setup_rate_per_s']:.0f}/s, "
            f"generators {result['generator_cpu_ms_per_poke']:.0f} ms CPU/poke vs server "
            f"{result['server_cpu_ms_per_poke']:.0f}"
        )
        return result
    finally:
        for gen in gens:
            with contextlib.suppress(Exception):
                await gen.stop()
        await server.stop()


# -- output ------------------------------------------------------------------

GOALS = (
    ("tidings-ws", "c-epoll", "cpu", 1.2, "WS CPU/conn/poke <= 1.2x the C floor"),
    ("tidings-sio", "node-socket.io", "cpu", 0.6, "Socket.IO CPU <= 0.6x Node socket.io"),
    ("tidings-sio", "node-socket.io", "rss", 0.5, "Socket.IO RSS <= 0.5x Node socket.io"),
)


def ratios(results: dict[str, Any]) -> dict[str, Any]:
    ok = {n: r for n, r in results.items() if "cpu_us_per_conn_poke" in r}
    table: dict[str, Any] = {}
    for mine in (n for n in ok if n.startswith("tidings-")):
        for other in ok:
            if other == mine:
                continue
            a, b = ok[mine], ok[other]
            table.setdefault(mine, {})[other] = {
                "cpu": round(a["cpu_us_per_conn_poke"] / b["cpu_us_per_conn_poke"], 3)
                if b["cpu_us_per_conn_poke"]
                else None,
                "rss": round(a["rss_per_conn_kb"] / b["rss_per_conn_kb"], 3)
                if b["rss_per_conn_kb"] > 0
                else None,
            }
    return table


def goals(results: dict[str, Any], table: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for mine, other, what, limit, text in GOALS:
        value = table.get(mine, {}).get(other, {}).get(what)
        out.append(
            {
                "goal": text,
                "value": value,
                "limit": limit,
                "met": None if value is None else value <= limit,
            }
        )
    ws = results.get("tidings-ws", {})
    if "rss_per_conn_kb" in ws:
        out.append(
            {
                "goal": "WS RSS per idle connection <= 4 KB",
                "value": ws["rss_per_conn_kb"],
                "limit": 4.0,
                "met": ws["rss_per_conn_kb"] <= 4.0,
            }
        )
    return out


def markdown(results: dict[str, Any], table: dict[str, Any]) -> str:
    lines = [
        "| target | poked by | clients | CPU us/conn/poke (median; min-max) | x C floor "
        "| x Python floor | RSS KB/conn | latency p50 / p99 / last, ms | setup conn/s "
        "| generator CPU ms/poke (server) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    c = results.get("c-epoll", {}).get("cpu_us_per_conn_poke")
    lean = results.get("python-lean", {}).get("cpu_us_per_conn_poke")
    for name, r in results.items():
        if "error" in r:
            lines.append(f"| {name} | - | - | not measured: {r['error']} | | | | | | |")
            continue
        cpu = r["cpu_us_per_conn_poke"]
        xc = f"{cpu / c:.2f}x" if c else "-"
        xl = f"{cpu / lean:.2f}x" if lean else "-"
        lines.append(
            f"| {name} | {r['poked_by']} | {r['clients_ready']:,} | {cpu:.2f} "
            f"({r['cpu_us_per_conn_poke_min']:.2f}-{r['cpu_us_per_conn_poke_max']:.2f}) | {xc} "
            f"| {xl} | {r['rss_per_conn_kb']:.2f} | {r['latency_ms_p50']:.1f} / "
            f"{r['latency_ms_p99']:.1f} / {r['latency_ms_last']:.1f} | "
            f"{r['setup_rate_per_s']:,.0f} | {r['generator_cpu_ms_per_poke']:.0f} "
            f"({r['server_cpu_ms_per_poke']:.0f}) |"
        )
    if table:
        others = sorted({o for row in table.values() for o in row})
        lines += [
            "",
            "Ratios, tidings ÷ each other target (CPU per conn per poke / RSS per conn):",
            "",
        ]
        lines.append("| tidings | " + " | ".join(others) + " |")
        lines.append("|---|" + "---|" * len(others))
        for mine, row in table.items():
            cells = []
            for o in others:
                v = row.get(o)
                cells.append(
                    "-"
                    if not v
                    else f"{v['cpu'] or 0:.2f}x / {v['rss'] if v['rss'] is not None else '-'}"
                    + ("x" if v and v["rss"] is not None else "")
                )
            lines.append(f"| {mine} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    results = {n: r for n, r in data["results"].items() if "cpu_us_per_conn_poke" in r}
    if not results:
        return
    names = list(results)
    colors = [
        "tab:red"
        if n.startswith("tidings")
        else "tab:gray"
        if n in ("c-epoll", "python-lean", "python-oswrite")
        else "tab:blue"
        for n in names
    ]
    fig, axes = plt.subplots(1, 3, figsize=(16, 5))
    series = (
        ("cpu_us_per_conn_poke", "server CPU per connection per poke, us"),
        ("rss_per_conn_kb", "server RSS per idle connection, KB"),
        ("latency_ms_last", "time until the last client got the poke, ms"),
    )
    for ax, (key, title) in zip(axes, series, strict=True):
        values = [results[n][key] for n in names]
        ax.barh(names, values, color=colors)
        ax.set_title(title, fontsize=10)
        ax.invert_yaxis()
        if key != "rss_per_conn_kb" and max(values) > 20 * min(v for v in values if v > 0):
            ax.set_xscale("log")
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.3g}", va="center", fontsize=8)
        if key == "cpu_us_per_conn_poke" and "c-epoll" in results:
            goal = results["c-epoll"][key] * 1.2
            ax.axvline(goal, color="black", linestyle="--", linewidth=1)
            ax.text(goal, -0.6, " 1.2x C floor", fontsize=8)
    m = data["machine"]
    fig.suptitle(
        f"push fan-out, {data['clients']} idle clients, {data['pokes']} pokes (medians); "
        f"server on 1 core, generators on another; {m['cpu']}, load {m['load_average_at_start']}",
        fontsize=10,
    )
    finish(fig, path)


# -- main --------------------------------------------------------------------


def start_redis(work: Path) -> tuple[subprocess.Popen[bytes] | None, str]:
    url = os.environ.get("TIDINGS_BENCH_REDIS")
    if url or not shutil.which("redis-server"):
        return None, url or "redis://127.0.0.1:6379/0"
    port = free_port()
    proc = spawn(
        [
            "redis-server",
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(work),
        ],
        None,
    )
    wait_port(port, proc)
    return proc, f"redis://127.0.0.1:{port}/0"


MEDIAN_FIELDS = (
    "setup_seconds",
    "setup_rate_per_s",
    "setup_server_cpu_us_per_conn",
    "setup_server_core_busy_percent",
    "rss_before_kb",
    "rss_after_kb",
    "rss_per_conn_kb",
    "idle_cpu_percent",
    "cpu_us_per_conn_poke_proc_stat",
    "latency_ms_p50",
    "latency_ms_p99",
    "latency_ms_last",
    "server_cpu_ms_per_poke",
    "generator_cpu_ms_per_poke",
    "generator_core_busy_percent",
)


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One target's rounds as one result: medians over rounds, per-poke CPU pooled."""
    good = [r for r in runs if "error" not in r]
    if not good:
        return runs[0]
    if len(runs) == 1:
        return good[0]
    out = dict(good[0])
    for key in MEDIAN_FIELDS:
        out[key] = round(statistics.median(r[key] for r in good), 3)
    pooled = [c for r in good for c in r["cpu_us_per_conn_poke_each"]]
    out["cpu_us_per_conn_poke"] = round(statistics.median(pooled), 3)
    out["cpu_us_per_conn_poke_min"] = round(min(pooled), 3)
    out["cpu_us_per_conn_poke_max"] = round(max(pooled), 3)
    out["cpu_us_per_conn_poke_each"] = pooled
    out["clients_ready"] = min(r["clients_ready"] for r in good)
    out["every_client_got_every_poke"] = all(r["every_client_got_every_poke"] for r in good)
    out["per_poke"] = [p for r in good for p in r["per_poke"]]
    out["rounds"] = [
        {
            "cpu_us_per_conn_poke": r["cpu_us_per_conn_poke"],
            "rss_per_conn_kb": r["rss_per_conn_kb"],
            "latency_ms_last": r["latency_ms_last"],
        }
        for r in good
    ]
    out["failed_rounds"] = [r["error"] for r in runs if "error" in r]
    return out


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "src"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    state = head + (" + uncommitted changes under src/" if dirty else "")
    # A before/after pair runs the servers from another tree's copy: say so.
    other = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if other and Path(other[0]).resolve() != (ROOT / "src").resolve():
        state += f" (the tidings servers from PYTHONPATH={other[0]})"
    return state


async def run(args: argparse.Namespace) -> dict[str, Any]:
    cores = sorted(os.sched_getaffinity(0))
    server_core, gen_core = (cores[0], cores[1]) if len(cores) >= 2 else (None, None)
    if gen_core is not None:
        os.sched_setaffinity(0, {gen_core})
    work = Path(tempfile.mkdtemp(prefix="tidings-fanout-"))
    redis_proc, redis_url = start_redis(work)
    data: dict[str, Any] = {
        "benchmark": "fanout",
        "command": " ".join([".venv/bin/python", "bench/fanout.py", *sys.argv[1:]]),
        "machine": describe(),
        "tidings_commit": git_state(),
        "clients": args.clients,
        "pokes": args.pokes,
        "spacing_s": args.spacing,
        "rounds": args.rounds,
        "generator": args.generator,
        # Whether tidings-ws ran the native fan-out loop (src/tidings/push/_fanout.c).
        "native_fanout": native_fanout_built(),
        "server_core": server_core,
        "generator_core": gen_core,
        "results": {},
    }
    try:
        env = Env(work, server_core, redis_url, args.generator)
        runs: dict[str, list[dict[str, Any]]] = {}
        for round_ in range(args.rounds):
            for name in args.servers:
                if name == "tidings-sio" and not socketio_mounted():
                    runs[name] = [
                        {
                            "error": "Socket.IO is not mounted in the push server yet "
                            "(tidings.push.sio has no http_handler)"
                        }
                    ]
                    log(f"{name}: skipped: {runs[name][0]['error']}")
                    continue
                log(f"{name}: starting, round {round_ + 1}/{args.rounds} ({DESCRIPTIONS[name]})")
                try:
                    result = await measure(
                        name, env, args.clients, args.pokes, args.spacing, args.idle, gen_core
                    )
                except Exception as exc:
                    result = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                    log(f"{name}: FAILED: {result['error']}")
                runs.setdefault(name, []).append(result)
        data["results"] = {name: combine(found) for name, found in runs.items()}
    finally:
        if redis_proc is not None:
            stop_process(redis_proc)
        shutil.rmtree(work, ignore_errors=True)
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data["ratios"] = ratios(data["results"])
    data["goals"] = goals(data["results"], data["ratios"])
    return data


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--clients", type=int, default=None, help="N (default 10000; quick 200)")
    parser.add_argument("--pokes", type=int, default=None, help="K (default 20; quick 3)")
    parser.add_argument("--servers", default=None, help="comma-separated: " + ",".join(ALL_TARGETS))
    parser.add_argument("--spacing", type=float, default=0.25, help="pause after each poke, s")
    parser.add_argument(
        "--rounds", type=int, default=1, help="repeat the target list; medians over rounds"
    )
    parser.add_argument("--idle", type=float, default=None, help="idle baseline window, s")
    parser.add_argument("--quick", action="store_true", help="200 clients, 3 pokes, 4 targets")
    parser.add_argument(
        "--generator",
        choices=("c", "python"),
        default="c" if shutil.which("cc") else "python",
        help="load generator: bench/fanout_load.c (default when cc exists) or fanout_load.py",
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "fanout")
    args = parser.parse_args(argv)
    args.clients = args.clients or (200 if args.quick else 10_000)
    args.pokes = args.pokes or (3 if args.quick else 20)
    args.idle = args.idle if args.idle is not None else (1.0 if args.quick else 3.0)
    servers = (
        args.servers.split(",")
        if args.servers
        else list(QUICK_TARGETS if args.quick else ALL_TARGETS)
    )
    unknown = [s for s in servers if s not in ALL_TARGETS]
    if unknown:
        parser.error(f"unknown servers: {unknown}; known: {','.join(ALL_TARGETS)}")
    args.servers = servers
    data = asyncio.run(run(args))
    table = markdown(data["results"], data["ratios"])
    print("\n" + table + "\n")
    for goal in data["goals"]:
        state = "n/a" if goal["met"] is None else "met" if goal["met"] else "MISSED"
        print(f"goal: {goal['goal']}: {goal['value']} (limit {goal['limit']}) {state}")
    data["table_markdown"] = table
    save(data, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
