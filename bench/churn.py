"""Connection churn against one push server: RSS, file descriptors and tasks come back.

Starts one ``tidings push`` process on a private Redis and runs C cycles (default
200,000) of connect, subscribe, wait for ``subscribed``, disconnect, with a few
hundred cycles in flight at once, from source addresses across 127.0.0.0/8.
The cycles mix what clients do: WebSocket closed with a close frame (half),
WebSocket dropped without one, SSE dropped, Socket.IO over WebSocket dropped,
and Socket.IO over long-polling (an eighth each; of the polling sessions half
send a close packet and half are abandoned to the ping timeout, closed in
``--quick``), over 50 projects, so the server's Redis subscriptions come and
go too. Every ``--sample-interval`` it records the server's RSS
(/proc/PID/status), open file descriptors (/proc/PID/fd) and live asyncio tasks
(``tidings_push_asyncio_tasks`` in /metrics). Goals (issue 7): between the end
of the warm-up (the first half of the cycles: abandoned sessions live 45 s, and
their number must first reach what the measured half sees) and the end, each
measured once the last client has gone, RSS drift <= 5% over the 100,000
measured cycles, and descriptors and tasks back to their count. Writes
bench/results/churn.json and .png.

    .venv/bin/python bench/churn.py [--cycles 200000] [--warmup 100000] [--concurrency 200]
    .venv/bin/python bench/churn.py --quick

Results and how to read them: docs/PERFORMANCE.md, "Churn".
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fanout import cpu_sched, free_port, git_state, log, rss_kb, start_redis, stop_process
from fanout_load import IP_BIND_ADDRESS_NO_PORT, client_frame
from lib.crowd import Counters, HttpConn, HttpError
from machine import describe
from report import finish, print_goals, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PROJECTS = 50
#: Source addresses the cycles rotate over: each closing client leaves a TIME_WAIT
#: socket for 60 s, and each address has ~28,000 ephemeral ports.
SOURCES = [f"127.77.{k // 250}.{k % 250 + 1}" for k in range(64)]
CYCLE_TIMEOUT_S = 10.0
#: A WebSocket close frame (1000, no reason), masked with a zero key.
CLOSE_FRAME = bytes((0x88, 0x82)) + b"\x00\x00\x00\x00" + (1000).to_bytes(2, "big")
GOAL_DRIFT_PERCENT = 5.0
SIO_PATH = "/socket.io/?EIO=4"
#: An abandoned Engine.IO polling session is closed after pingInterval +
#: pingTimeout (25 + 20 s, push/sio/engineio.py); the settling waits that long.
SETTLE_S = 30.0
SETTLE_ABANDONED_S = 60.0


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def spawn_logged(
    cmd: list[str], log_path: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """A server process in its own session, allowed every file it may open, its
    stderr in ``log_path``: a file, as a pipe nobody reads would stall it."""
    with open(log_path, "wb") as logfile:
        return subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=logfile,
            start_new_session=True,
            preexec_fn=raise_nofile,
        )


def start_push(
    port: int,
    env: dict[str, str],
    log_path: Path,
    max_conn: int = 19_500,
    extra: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-m", "tidings", "push", "--host", "127.0.0.1", "--port", str(port)]
    cmd += ["--max-connections", str(max_conn), "--log-level", "WARNING", *extra]
    return spawn_logged(cmd, log_path, env)


def ready(port: int) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
    return False


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_targets(pid: int) -> list[str]:
    """What each descriptor is; TCP sockets as ``tcp local_port->remote_port`` (a leak
    then says what leaked: a client, a Redis connection, a listener)."""
    tcp: dict[str, str] = {}
    with contextlib.suppress(OSError), open(f"/proc/{pid}/net/tcp") as f:
        for line in f.readlines()[1:]:
            cols = line.split()
            local, remote, inode = cols[1], cols[2], cols[9]
            tcp[inode] = f"tcp {int(local[-4:], 16)}->{int(remote[-4:], 16)}"
    out = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                target = tcp.get(target[8:-1], "socket")
            out.append(target)
    return sorted(out)


async def scrape(port: int) -> dict[str, float]:
    """The server's /metrics as {name{labels}: value} (unlabelled names plain)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 5)
    try:
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
    out = {}
    for line in body.decode().split("\r\n\r\n", 1)[-1].splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            with contextlib.suppress(ValueError):
                out[name] = float(value)
    return out


class Churn:
    def __init__(self, args: argparse.Namespace, port: int, token: str, base: int) -> None:
        self.args = args
        self.port = port
        self.token = token
        self.base = base
        self.next = 0
        self.limit = args.cycles
        self.done = 0
        self.failed: dict[str, int] = {}
        self.in_flight = 0
        #: Leave every other polling session without a close packet (it then
        #: lives until the ping timeout, so the settling takes that long).
        self.abandon_polling = not args.quick

    def request(self, i: int) -> bytes:
        project = self.base + i % PROJECTS
        if i % 8 == 3:
            return (
                f"GET /sse?token={self.token}&p={project}:0 HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{self.port}\r\nAccept: text/event-stream\r\n\r\n"
            ).encode()
        upgrade = (
            f"HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        )
        if i % 8 == 5:  # Socket.IO over WebSocket: CONNECT with the token, pipelined
            connect = self.sio_connect(project)
            return f"GET {SIO_PATH}&transport=websocket {upgrade}".encode() + client_frame(connect)
        sub = json.dumps({"type": "subscribe", "token": self.token, "projects": {project: 0}})
        return f"GET /ws {upgrade}".encode() + client_frame(sub)

    def sio_connect(self, project: int) -> str:
        return "40" + json.dumps({"token": self.token, "projects": {str(project): 0}})

    async def polling(self, i: int, http: HttpConn) -> None:
        """Socket.IO over Engine.IO long-polling on one keep-alive connection:
        handshake, CONNECT, GET until ``subscribed``; then a close packet
        (polite), or nothing, leaving the session to the ping timeout."""
        host = f"Host: 127.0.0.1:{self.port}\r\n"

        async def request(method: str, path: str, text: str = "") -> bytes:
            body = text.encode()
            head = f"{method} {path} HTTP/1.1\r\n{host}"
            if body:
                head += f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n"
            status, _, answer, _ = await http.exchange(f"{head}\r\n".encode(), body, Counters())
            if status != 200:
                raise ConnectionError(f"HTTP {status}: {answer[:200]!r}")
            return answer

        opened = await request("GET", f"{SIO_PATH}&transport=polling")
        path = f"{SIO_PATH}&transport=polling&sid={json.loads(opened[1:])['sid']}"
        await request("POST", path, self.sio_connect(self.base + i % PROJECTS))
        while b'"subscribed"' not in await request("GET", path):
            pass
        if self.abandon_polling and i % 16 == 15:
            return
        await request("POST", path, "1")

    async def cycle(self, i: int) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        writer = None
        try:
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            sock.bind((SOURCES[i % len(SOURCES)], 0))
            sock.setblocking(False)
            await loop.sock_connect(sock, ("127.0.0.1", self.port))
            reader, writer = await asyncio.open_connection(sock=sock, limit=65536)
            if i % 8 == 7:
                await self.polling(i, HttpConn(reader, writer))
                return
            writer.write(self.request(i))
            await reader.readuntil(b'"subscribed"')
            if i % 2 == 0:  # a polite WebSocket: close frame, then wait for the server's
                writer.write(CLOSE_FRAME)
                await reader.read()
        finally:
            if writer is not None:
                writer.close()
            else:
                sock.close()

    async def worker(self) -> None:
        while self.next < self.limit:
            i = self.next
            self.next += 1
            self.in_flight += 1
            try:
                await asyncio.wait_for(self.cycle(i), CYCLE_TIMEOUT_S)
            except (
                OSError,
                TimeoutError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                HttpError,
            ) as exc:
                kind = type(exc).__name__
                self.failed[kind] = self.failed.get(kind, 0) + 1
            finally:
                self.in_flight -= 1
                self.done += 1


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from tidings.protocol.tokens import KeyRing, sign_push_token

    work = Path(tempfile.mkdtemp(prefix="tidings-churn-"))
    redis_proc, redis_url = start_redis(work)
    keys = KeyRing.generate()
    base = 600_000_000 + secrets.randbelow(99_000_000)
    token, _ = sign_push_token(keys, 1, list(range(base, base + PROJECTS)), ttl=24 * 3600)
    port = free_port()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "TIDINGS_PUSH_KEYS": keys.spec(),
        "TIDINGS_PUSH_IP_RATE": "0",  # the cycles come from a few addresses
    }
    proc = start_push(port, env, work / "push.log")
    data: dict[str, Any] = {
        "benchmark": "churn",
        "command": " ".join([".venv/bin/python", "bench/churn.py", *sys.argv[1:]]),
        "machine": describe(),
        "tidings_commit": git_state(),
        "cycles": args.cycles,
        "concurrency": args.concurrency,
        "warmup_cycles": args.warmup,
        "mix": "1/2 WebSocket closed with a close frame, 1/8 WebSocket dropped, 1/8 SSE "
        "dropped, 1/8 Socket.IO over WebSocket dropped, 1/8 Socket.IO long-polling ("
        + ("half closed with a close packet, half abandoned" if not args.quick else "closed")
        + f"); {PROJECTS} projects",
    }
    samples: list[dict[str, Any]] = []
    redis_suffix = f"->{int(redis_url.rsplit(':', 1)[1].split('/')[0])}"

    async def sample(label: str = "") -> dict[str, Any]:
        fds = open_fds(proc.pid)  # before our own scrape opens a socket
        m = await scrape(port)
        s = {
            "t": round(time.monotonic() - t0, 2),
            "cycles": churn.done,
            "rss_kb": rss_kb([proc.pid]),
            "fds": fds,
            "tasks": int(m.get("tidings_push_asyncio_tasks", -1)),
            "connections": int(
                sum(v for k, v in m.items() if k.startswith("tidings_push_connections{"))
            ),
            "open_sockets": int(m.get("tidings_push_open_sockets", -1)),
        }
        if label:
            s["label"] = label
            s["fd_targets"] = fd_targets(proc.pid)
            # Connections to Redis are pooled by the server (sized by its concurrent
            # broker commands, not by clients): counted apart from the rest.
            s["redis_connections"] = sum(t.endswith(redis_suffix) for t in s["fd_targets"])
            s["fds_but_redis"] = len(s["fd_targets"]) - s["redis_connections"]
        samples.append(s)
        return s

    try:
        deadline = time.monotonic() + 30
        while not await asyncio.to_thread(ready, port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "push server did not become ready: " + (work / "push.log").read_text()[-2000:]
                )
            await asyncio.sleep(0.2)
        t0 = time.monotonic()
        churn = Churn(args, port, token, base)
        await asyncio.sleep(args.pause)
        baseline = await sample("baseline")
        log(
            f"push server pid {proc.pid}: RSS {baseline['rss_kb']} KB, {baseline['fds']} fds, "
            f"{baseline['tasks']} tasks; {args.cycles} cycles, {args.concurrency} at once"
        )
        last_print = time.monotonic()
        busy: list[float] = []  # seconds with cycles running, settling excluded

        async def phase(upto: int, label: str) -> dict[str, Any]:
            """Cycles until ``upto`` are done, then wait for the server to see the last go."""
            nonlocal last_print
            churn.limit = upto
            began = time.monotonic()
            peak = 0
            workers = [asyncio.create_task(churn.worker()) for _ in range(args.concurrency)]
            while not all(w.done() for w in workers):
                await asyncio.wait(workers, timeout=args.sample_interval)
                s = await sample()
                peak = max(peak, s["connections"])
                if proc.poll() is not None:
                    raise RuntimeError("push server exited: " + (work / "push.log").read_text())
                if time.monotonic() - last_print >= args.print_interval:
                    last_print = time.monotonic()
                    rate = churn.done / max(s["t"] - baseline["t"], 1e-6)
                    log(
                        f"  {churn.done} cycles ({rate:.0f}/s), {sum(churn.failed.values())} "
                        f"failed, RSS {s['rss_kb']} KB, {s['fds']} fds, {s['tasks']} tasks, "
                        f"{s['connections']} connected"
                    )
            for w in workers:
                w.result()
            busy.append(time.monotonic() - began)
            settle = time.monotonic() + (SETTLE_ABANDONED_S if churn.abandon_polling else SETTLE_S)
            while time.monotonic() < settle:
                s = await sample()
                if s["connections"] == 0 and s["open_sockets"] <= 1:  # 1: the scrape itself
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(args.pause)
            done = await sample(label)
            done["peak_connections"] = peak
            return done

        # The warm-up lets pools and caches reach their size (the Redis connection
        # pool, say, opens its connections lazily): fds, tasks and RSS are compared
        # between its end and the end, each measured with no client connected.
        cpu0 = cpu_sched([proc.pid])
        warm = await phase(args.warmup, "after warm-up")
        log(
            f"after {args.warmup} warm-up cycles: RSS {warm['rss_kb']} KB, {warm['fds']} fds, "
            f"{warm['tasks']} tasks"
        )
        end = await phase(args.cycles, "end")
        churn_s = sum(busy)
        cpu = cpu_sched([proc.pid]) - cpu0
        drift = round((end["rss_kb"] - warm["rss_kb"]) / warm["rss_kb"] * 100, 2)
        failed = sum(churn.failed.values())
        data.update(
            {
                "seconds": round(churn_s, 1),
                "cycles_per_s": round(args.cycles / churn_s, 1),
                "server_cpu_us_per_cycle": round(cpu / args.cycles * 1e6, 1),
                "failed": failed,
                "failed_by_kind": churn.failed,
                "baseline": baseline,
                "after_warmup": warm,
                "end": end,
                "peak_rss_kb": max(x["rss_kb"] for x in samples),
                "rss_drift_percent": drift,
                "samples": samples,
            }
        )
        data["goals"] = [
            {
                "goal": f"RSS drift after warm-up <= {GOAL_DRIFT_PERCENT:g}%",
                "value_percent": drift,
                "met": drift <= GOAL_DRIFT_PERCENT,
            },
            {
                "goal": "open file descriptors, Redis connections aside, back to their count "
                "after the warm-up",
                "value": [warm["fds_but_redis"], end["fds_but_redis"]],
                "met": end["fds_but_redis"] <= warm["fds_but_redis"],
            },
            {
                "goal": "asyncio tasks back to their count after the warm-up",
                "value": [warm["tasks"], end["tasks"]],
                "met": end["tasks"] <= warm["tasks"],
            },
            {"goal": "every cycle completed", "value": failed, "met": failed == 0},
        ]
    finally:
        stop_process(proc)
        if redis_proc is not None:
            stop_process(redis_proc)
        shutil.rmtree(work, ignore_errors=True)
    data["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return data


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    samples = data["samples"]
    xs = [s["cycles"] / 1000 for s in samples]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    series = (
        ("rss_kb", "server RSS, MB", 1 / 1024),
        ("fds", "open file descriptors (incl. the clients in flight)", 1),
        ("tasks", "asyncio tasks", 1),
    )
    for ax, (key, title, scale) in zip(axes, series, strict=True):
        ax.plot(xs, [s[key] * scale for s in samples], marker=".", markersize=3)
        ax.axhline(data["after_warmup"][key] * scale, color="gray", linestyle=":", linewidth=1)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("cycles done, thousands")
        ax.set_ylim(bottom=0)
    axes[0].axvline(
        data["after_warmup"]["cycles"] / 1000, color="gray", linestyle="--", linewidth=1
    )
    title = (
        f"{data['cycles']:,} connect/subscribe/disconnect cycles, {data['concurrency']} at once, "
        f"{data['cycles_per_s']:.0f}/s: RSS drift {data['rss_drift_percent']:+.2f}%, fds "
        f"{data['after_warmup']['fds']}->{data['end']['fds']}, tasks "
        f"{data['after_warmup']['tasks']}->{data['end']['tasks']}"
    )
    finish(fig, path, title, data["machine"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--cycles", type=int, default=None, help="default 200000; quick 2000")
    parser.add_argument("--concurrency", type=int, default=200, help="cycles in flight")
    parser.add_argument(
        "--warmup", type=int, default=None, help="cycles before the drift base (default half)"
    )
    parser.add_argument("--sample-interval", type=float, default=None, help="s (default 2)")
    parser.add_argument("--print-interval", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="2,000 cycles")
    parser.add_argument("--out", type=Path, default=RESULTS / "churn")
    args = parser.parse_args(argv)
    args.cycles = args.cycles or (2000 if args.quick else 200_000)
    if args.warmup is None:
        # Abandoned polling sessions live 45 s: the warm-up must be long enough for
        # their number to reach what the measured cycles see, or the drift would
        # count the allocator's larger high-water mark as a leak. Half the run is.
        args.warmup = max(args.cycles // 10, 1) if args.quick else args.cycles // 2
    args.sample_interval = args.sample_interval or (0.25 if args.quick else 2.0)
    args.pause = 0.3 if args.quick else 1.0  # for the server to settle before a sample
    data = uvloop.run(run(args))
    print(
        f"\n{data['cycles']:,} cycles in {data['seconds']} s ({data['cycles_per_s']:.0f}/s, server "
        f"{data['server_cpu_us_per_cycle']:.0f} us CPU each), {data['failed']} failed; RSS "
        f"{data['baseline']['rss_kb']} -> {data['after_warmup']['rss_kb']} (warm) -> "
        f"{data['end']['rss_kb']} KB (drift {data['rss_drift_percent']:+.2f}%), fds "
        f"{data['baseline']['fds']} -> {data['after_warmup']['fds']} (warm) -> "
        f"{data['end']['fds']}, tasks {data['baseline']['tasks']} -> "
        f"{data['after_warmup']['tasks']} (warm) -> {data['end']['tasks']}; Redis connections "
        f"{data['after_warmup']['redis_connections']} (warm) -> {data['end']['redis_connections']}"
    )
    print_goals(data)
    save(data, args.out, plot, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
