"""The fault-injection scenario: a crowd of clients, steady writers, faults one after another.

``run(config)`` starts the topology (tidings/testing/topology.py), the client
processes (crowd.py) and the writers, injects every fault of
``FAULTS`` in order (some overlapping), then stops the writers, waits for every
client to reach the server's versions and returns what happened; the verdicts
are observe.py's. The same code runs the short CI version
(tests/faults/test_faults.py) and the full one (bench/faults.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

import tidings
from tidings.testing.faults.crowd import digest
from tidings.testing.faults.observe import PUSH_LEVEL
from tidings.testing.processes import START_TIMEOUT, Process, set_push_with_cli
from tidings.testing.topology import Intervals, Topology
from tidings.testing.waiting import until

#: Where the running ``tidings`` package is imported from: the client processes
#: import the same one.
SOURCES = Path(tidings.__file__).resolve().parents[1]

#: Bound on one writer's command (the app behind haproxy answers within a second
#: when healthy; a restart may hold a request a little longer).
WRITE_TIMEOUT = 10.0
#: The clients' push transports, dealt in turn (Socket.IO through python-socketio).
TRANSPORTS = ("ws", "sse", "socketio")
#: uvicorn's graceful shutdown (10 s) plus the publisher's flush (2 s), and slack.
APP_SHUTDOWN_TIMEOUT = 20.0


@dataclass
class Config:
    clients: int = 120
    projects: int = 12
    workers: int = 2
    #: Commands per second, over all projects.
    write_rate: float = 3.0
    intervals: Intervals = field(default_factory=Intervals)
    #: How long the faults that are held open last (seconds).
    redis_pause: float = 5.0
    pokes_dropped: float = 5.0
    client_stall: float = 7.0
    kill_switch_off: float = 3.0
    #: Quiet time after each fault in which recovery to push-level is observed.
    settle: float = 2.0
    #: Bound on waiting for every client to be live again after a fault.
    recover_timeout: float = 30.0


@dataclass
class FaultWindow:
    name: str
    start: float
    end: float = 0.0
    #: Seconds from the end of the fault until every client was live again (None: some
    #: client was not, within ``recover_timeout``).
    all_live_after: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    #: Counter deltas over the fault, per process (what an operator's metrics showed).
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)


@dataclass
class Write:
    project: int
    version: int
    ts: float


class Run:
    def __init__(self, config: Config, workdir: Path, postgres_admin_url: str) -> None:
        self.config = config
        self.workdir = workdir
        self.topo = Topology(workdir, postgres_admin_url, config.intervals)
        self.projects: list[int] = []
        self.writes: list[Write] = []
        self.write_errors: list[str] = []
        self.write_retries = 0
        self.faults: list[FaultWindow] = []
        self.crowds: list[asyncio.subprocess.Process] = []
        self.outputs: list[Path] = []
        self.stop_writing = asyncio.Event()
        self.started_at = 0.0
        self.log_lines: list[str] = []

    def say(self, text: str) -> None:
        line = f"[{time.time() - self.started_at:7.1f}s] {text}"
        self.log_lines.append(line)
        print(line, flush=True)

    # ----- set-up -------------------------------------------------------------

    async def create_projects(self) -> None:
        """The projects; the first is quiet: written once, while pokes are dropped."""
        async with httpx.AsyncClient(
            base_url=self.topo.app_url,
            headers={"Authorization": f"Bearer {self.topo.token}"},
            timeout=WRITE_TIMEOUT,
        ) as http:
            for n in range(self.config.projects):
                r = await http.post("/api/projects", json={"name": f"faults {n}"})
                assert r.status_code == 201, r.text
                self.projects.append(int(r.json()["project"]))

    def client_specs(self) -> list[list[dict[str, Any]]]:
        """Clients dealt round-robin to the workers: ws, sse and socketio in turn,
        and in each transport half watch one project and half two (so that a
        difference between transports is not one between project counts); client
        0 reaches push through the stall proxy."""
        rng = random.Random(7)
        per_worker: list[list[dict[str, Any]]] = [[] for _ in range(self.config.workers)]
        for n in range(self.config.clients):
            transport = TRANSPORTS[n % len(TRANSPORTS)]
            watched = rng.sample(self.projects, 1 + (n // len(TRANSPORTS)) % 2)
            spec: dict[str, Any] = {"name": f"c{n}", "transport": transport, "projects": watched}
            if n == 0:
                spec["push_url"] = f"ws://127.0.0.1:{self.topo.stall_port}/ws"
                spec["stalled"] = True
            per_worker[n % self.config.workers].append(spec)
        return per_worker

    async def start_crowds(self) -> None:
        for n, clients in enumerate(self.client_specs()):
            spec_path = self.workdir / f"crowd{n}.json"
            out = self.workdir / f"crowd{n}.out.json"
            spec = {
                "app_url": self.topo.app_url,
                "token": self.topo.token,
                "clients": clients,
                "start_spread": 3.0,
            }
            spec_path.write_bytes(orjson.dumps(spec))
            env = dict(os.environ, PYTHONPATH=str(SOURCES))
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "tidings.testing.faults.crowd",
                str(spec_path),
                str(out),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=(self.workdir / f"crowd{n}.log").open("ab"),
                cwd=self.workdir,
                env=env,
            )
            self.crowds.append(proc)
            self.outputs.append(out)
        for proc in self.crowds:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120.0)
            assert line.strip() == b"ready", f"a client process was not ready: {line!r}"

    # ----- writers ------------------------------------------------------------

    async def writer(self) -> None:
        """Commands at ``write_rate`` per second (Poisson), each retried with its
        idempotency key until it is known to have committed once."""
        rng = random.Random(11)
        async with httpx.AsyncClient(
            base_url=self.topo.app_url,
            headers={"Authorization": f"Bearer {self.topo.token}"},
            timeout=WRITE_TIMEOUT,
        ) as http:
            pending: set[asyncio.Task[None]] = set()
            while not self.stop_writing.is_set():
                project = rng.choice(self.projects[1:])
                task = asyncio.create_task(self.write(http, project, len(self.writes)))
                pending.add(task)
                task.add_done_callback(pending.discard)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self.stop_writing.wait(), rng.expovariate(self.config.write_rate)
                    )
            if pending:
                await asyncio.wait(pending, timeout=4 * WRITE_TIMEOUT)

    async def write(self, http: httpx.AsyncClient, project: int, n: int) -> None:
        key = uuid.uuid4().hex
        body = {"command": {"type": "create_story", "title": f"change {n}"}}
        for attempt in range(6):
            try:
                r = await http.post(
                    f"/api/projects/{project}/commands",
                    json=body,
                    headers={"Idempotency-Key": key},
                )
                if r.status_code == 200:
                    data = r.json()
                    self.writes.append(
                        Write(project, int(data["version"]), float(data["event"]["ts"]))
                    )
                    return
                error = f"{r.status_code} {r.text[:200]}"
            except httpx.HTTPError as exc:
                error = repr(exc)
            self.write_retries += 1
            await asyncio.sleep(0.5 * 2**attempt)
        self.write_errors.append(error)

    # ----- faults -------------------------------------------------------------

    async def snapshot_metrics(self) -> dict[str, dict[str, float]]:
        ports = {f"app{n}": p for n, p in enumerate(self.topo.app_ports, 1)}
        ports |= {f"push{n}": p for n, p in enumerate(self.topo.push_ports, 1)}
        names = list(ports)
        values = await asyncio.gather(*(self.topo.metrics(ports[k]) for k in names))
        return dict(zip(names, values, strict=True))

    async def fault(
        self,
        name: str,
        inject: Callable[[FaultWindow], Awaitable[None]],
        *,
        settle: bool = True,
    ) -> FaultWindow:
        window = FaultWindow(name, time.time())
        self.faults.append(window)
        before = await self.snapshot_metrics()
        self.say(f"fault {name}: start")
        await inject(window)
        window.end = time.time()
        after = await self.snapshot_metrics()
        window.metrics = _deltas(before, after)
        self.say(f"fault {name}: end ({window.end - window.start:.1f} s)")
        if settle:
            await self.settle(window)
        return window

    async def settle(self, window: FaultWindow) -> None:
        """Until every client is live again (bounded), then ``settle`` seconds of writes."""
        live = await self.all_live(self.config.recover_timeout)
        if live is not None:
            window.all_live_after = time.time() - window.end
        self.say(f"  all clients live again: {live is not None}")
        # The judge leaves to the next fault the changes of its last PUSH_LEVEL
        # seconds before it (observe.py): settle is what remains observed.
        await asyncio.sleep(self.config.settle + PUSH_LEVEL)

    async def all_live(self, within: float) -> float | None:
        """Wait until a health probe finds every push server ready and the clients
        report nothing; the clients' own record is judged afterwards. Here: the
        push tier is ready and a short grace for clients to reconnect."""
        try:
            await until(lambda: _all_ready(self.topo), within, "push servers ready", step=0.2)
        except AssertionError:
            return None
        # Clients reconnect or hear ``ok`` within a heartbeat and a poll interval.
        await asyncio.sleep(self.config.intervals.heartbeat + 0.5)
        return time.time()

    async def kill9(
        self, w: FaultWindow, proc: Process, wait: Callable[[], Awaitable[None]]
    ) -> None:
        """SIGKILL, a second down, then started again and waited for."""
        await proc.kill()
        w.notes["killed"] = proc.name
        await asyncio.sleep(1.0)
        proc.start()
        await wait()

    async def kill9_push(self, w: FaultWindow) -> None:
        # Overlapping: an app process restarts while the push server is down.
        await self.kill9(w, self.topo.pushes[0], lambda: self.topo.wait_push(0))

    async def app_restart(self, w: FaultWindow) -> None:
        """SIGTERM: uvicorn finishes in-flight requests (up to 10 s), then the publisher
        flushes its queue (up to 2 s); the process is given that, and more, to exit."""
        app = self.topo.apps[0]
        t0 = time.time()
        app.signal(signal.SIGTERM)
        code = await app.wait_exit(APP_SHUTDOWN_TIMEOUT)
        # uvicorn ends by re-raising the signal it caught: -SIGTERM is a clean exit.
        assert code in (0, -signal.SIGTERM), f"{app.name} did not stop: {code}\n{app.log_tail()}"
        app.forget()
        w.notes["shutdown_seconds"] = round(time.time() - t0, 2)
        app.start()
        await self.topo.wait_app(0)

    async def kill9_app(self, w: FaultWindow) -> None:
        """kill -9 of an app process mid-traffic (a crash, an OOM kill): no goodbye,
        its queued pokes lost. Push servers find its Redis connections gone and
        stay degraded only one short interval (push/apps.py); the requests it held
        are retried by haproxy on the other app."""
        await self.kill9(w, self.topo.apps[1], lambda: self.topo.wait_app(1))

    async def connections(self, n: int) -> float:
        figures = await self.topo.metrics(self.topo.push_ports[n])
        return sum(v for k, v in figures.items() if k.startswith("tidings_push_connections{"))

    async def rolling_restart(self, w: FaultWindow) -> None:
        """Drain, restart and wait for each server in turn, the busiest first (after
        the kill, one server holds everyone: each drain then moves every client)."""
        drains = []
        counts = [await self.connections(n) for n in range(len(self.topo.pushes))]
        order = sorted(range(len(counts)), key=lambda n: -counts[n])
        for n in order:
            push = self.topo.pushes[n]
            clients = await self.connections(n)
            t0 = time.time()
            push.signal(signal.SIGTERM)
            code = await push.wait_exit(self.config.intervals.drain_window + 15.0)
            assert code == 0, f"{push.name} did not drain cleanly: {code}\n{push.log_tail()}"
            push.forget()
            drains.append(
                {"server": push.name, "clients": clients, "start": t0, "exited": time.time()}
            )
            push.start()
            await self.topo.wait_push(n)
        w.notes["drains"] = drains

    async def redis_restart(self, w: FaultWindow) -> None:
        await self.topo.restart_redis()
        await until(lambda: _all_ready(self.topo), START_TIMEOUT, "push ready after redis")

    async def redis_pause(self, w: FaultWindow) -> None:
        self.topo.redis.process.signal(signal.SIGSTOP)
        try:
            await asyncio.sleep(self.config.redis_pause)
        finally:
            self.topo.redis.process.signal(signal.SIGCONT)
        await until(lambda: _all_ready(self.topo), START_TIMEOUT, "push ready after pause")

    async def pokes_dropped(self, w: FaultWindow) -> None:
        self.topo.redis_proxy.signal(signal.SIGUSR1)
        try:
            # One change to the quiet project, which no other write follows: only a
            # poll can bring it, and only if the app does not trust the version key
            # its lost write left behind.
            await asyncio.sleep(self.config.pokes_dropped / 2)
            async with httpx.AsyncClient(
                base_url=self.topo.app_url,
                headers={"Authorization": f"Bearer {self.topo.token}"},
                timeout=WRITE_TIMEOUT,
            ) as http:
                await self.write(http, self.projects[0], len(self.writes))
            await asyncio.sleep(self.config.pokes_dropped / 2)
        finally:
            self.topo.redis_proxy.signal(signal.SIGUSR2)

    async def client_stall(self, w: FaultWindow) -> None:
        self.topo.stall_proxy.signal(signal.SIGUSR1)
        try:
            await asyncio.sleep(self.config.client_stall)
        finally:
            self.topo.stall_proxy.signal(signal.SIGUSR2)

    async def kill_switch(self, w: FaultWindow) -> None:
        """Off with the CLI (it writes the database; each app process rereads its flags
        within 2 s), on again from the admin API, as an operator would from the page."""
        await self.set_push_cli(False)
        await asyncio.sleep(self.config.kill_switch_off)
        w.notes["switched_on_after_s"] = round(time.time() - w.start, 2)
        async with httpx.AsyncClient(
            base_url=self.topo.app_url,
            headers={"Authorization": f"Bearer {self.topo.token}"},
            timeout=WRITE_TIMEOUT,
        ) as http:
            r = await http.put("/api/admin/flags", json={"enabled": True})
            assert r.status_code == 200 and r.json()["enabled"] is True, r.text

    async def set_push_cli(self, enabled: bool) -> None:
        await set_push_with_cli(self.topo.database_url, enabled)

    async def push_killed_while_app_restarts(self) -> None:
        """kill -9 of a push server, with an app restart overlapping its recovery."""
        kill = asyncio.create_task(self.fault("kill9_push", self.kill9_push, settle=False))
        await asyncio.sleep(0.5)
        await self.fault("app_restart", self.app_restart, settle=False)
        await self.settle(await kill)

    async def faults_in_order(self) -> None:
        await self.push_killed_while_app_restarts()
        await self.fault("rolling_restart", self.rolling_restart)
        await self.fault("redis_restart", self.redis_restart)
        await self.fault("redis_pause", self.redis_pause)
        # Pokes lost between app and Redis, with one client's network stalling meanwhile.
        drop = asyncio.create_task(self.fault("pokes_dropped", self.pokes_dropped, settle=False))
        await asyncio.sleep(1.0)
        await self.fault("client_stall", self.client_stall, settle=False)
        await self.settle(await drop)
        await self.fault("kill_switch", self.kill_switch)
        await self.fault("kill9_app", self.kill9_app)

    # ----- the whole run -------------------------------------------------------

    async def server_state(self) -> dict[int, tuple[int, str]]:
        out: dict[int, tuple[int, str]] = {}
        async with httpx.AsyncClient(
            base_url=self.topo.app_url,
            headers={"Authorization": f"Bearer {self.topo.token}"},
            timeout=WRITE_TIMEOUT,
        ) as http:
            for project in self.projects:
                r = await http.get(f"/api/projects/{project}")
                assert r.status_code == 200, r.text
                snap = r.json()
                out[project] = (int(snap["version"]), digest(snap))
        return out

    async def run(
        self, start_within: float | None = None, finish_within: float | None = None
    ) -> dict[str, Any]:
        """Start the topology and its clients, then play the faults. Each phase has
        its own limit: starting dozens of processes is what a busy machine slows
        down most, and it says nothing about the faults."""
        try:
            await asyncio.wait_for(self._start(), start_within)
            return await asyncio.wait_for(self._scenario(), finish_within)
        except BaseException:
            for proc in self.crowds:
                if proc.returncode is None:
                    proc.kill()
                    await asyncio.wait_for(proc.wait(), 10.0)
            raise

    async def _start(self) -> None:
        self.started_at = time.time()
        await self.topo.start()
        await self.create_projects()
        self.say(f"topology up: 2 apps, {len(self.topo.pushes)} push servers, haproxy, redis")
        await self.start_crowds()
        self.say(f"{self.config.clients} clients live")

    async def _scenario(self) -> dict[str, Any]:
        writer = asyncio.create_task(self.writer())
        baseline_start = time.time()
        await asyncio.sleep(self.config.settle + 2.0)
        baseline = FaultWindow("baseline", baseline_start, time.time())
        await self.faults_in_order()
        self.stop_writing.set()
        await asyncio.wait_for(writer, 6 * WRITE_TIMEOUT)
        server = await self.server_state()
        self.say(f"writers stopped after {len(self.writes)} changes; waiting for convergence")
        targets = orjson.dumps({str(p): v for p, (v, _) in server.items()}).decode()
        for proc in self.crowds:
            assert proc.stdin is not None
            proc.stdin.write(f"finish {targets}\n".encode())
            await proc.stdin.drain()
        for proc in self.crowds:
            assert proc.stdout is not None
            line = await asyncio.wait_for(proc.stdout.readline(), 120.0)
            assert line.strip() == b"done", f"a client process failed: {line!r}"
            await asyncio.wait_for(proc.wait(), 20.0)
        crowd = [orjson.loads(p.read_bytes()) for p in self.outputs]
        return {
            "config": asdict(self.config),
            "started_at": self.started_at,
            "baseline": asdict(baseline),
            "faults": [asdict(f) for f in self.faults],
            "writes": [asdict(w) for w in self.writes],
            "write_errors": self.write_errors,
            "write_retries": self.write_retries,
            "server": {str(p): list(v) for p, v in server.items()},
            "converged": all(c["converged"] for c in crowd),
            "clients": [c for part in crowd for c in part["clients"]],
            "polls": _merge_polls(part["polls"] for part in crowd),
        }

    def close(self) -> None:
        for proc in self.crowds:
            if proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
        self.topo.close()


async def _all_ready(topo: Topology) -> bool:
    async with httpx.AsyncClient(timeout=1.0) as http:
        for port in topo.push_ports:
            try:
                if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
    return True


def _merge_polls(parts: Any) -> list[list[int]]:
    total: dict[int, int] = {}
    for part in parts:
        for second, count in part:
            total[int(second)] = total.get(int(second), 0) + int(count)
    return [[s, c] for s, c in sorted(total.items())]


#: Counters whose change over a fault says what an operator would have seen.
WATCHED_SERIES = (
    "tidings_publish_failures_total",
    "tidings_publish_dropped_total",
    "tidings_pokes_published_total",
    'tidings_broker_errors_total{op="get_version"}',
    'tidings_broker_errors_total{op="set_version"}',
    "tidings_client_missed_pokes_total",
    "tidings_push_broker_reconnects_total",
    "tidings_push_recovery_pokes_total",
    "tidings_push_slow_closes_total",
    "tidings_push_pokes_received_total",
    "tidings_push_connections_refused_total",
)


def _deltas(
    before: dict[str, dict[str, float]], after: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for proc, values in after.items():
        prev = before.get(proc, {})
        changed = {
            s: values[s] - prev.get(s, 0.0)
            for s in WATCHED_SERIES
            if s in values and values[s] != prev.get(s, 0.0)
        }
        if changed:
            out[proc] = changed
    return out
