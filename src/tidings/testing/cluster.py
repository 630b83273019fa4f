"""Real Redis Clusters and a tidings stack (one app, two push servers) on them.

The shared cluster (127.0.0.1:7000-7005, 3 masters and 3 replicas) is started by
``.ci/redis-cluster`` (``.ci/run`` does it); tests and benchmarks that kill nodes
start their own small cluster on other ports in a temporary directory, through
the same script (so this module needs a source checkout), and shut it down
after. Clients here are raw WebSockets that record every poke and every state
the push server announces: what the tests assert is what a client would see.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import websockets
from redis.crc import key_slot

from tidings.protocol.channels import project_channel
from tidings.testing.processes import (
    START_TIMEOUT,
    Process,
    clean_env,
    free_port,
    tidings_cli,
    tidings_process,
)
from tidings.testing.waiting import answers, until

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / ".ci" / "redis-cluster"
#: Bound on starting a throwaway cluster (6 redis-server processes + create).
CLUSTER_START_TIMEOUT = 30.0


@dataclass
class OwnCluster:
    """A throwaway cluster a test may damage (kill -9 a master, bring it back)."""

    first: int
    masters: int
    workdir: Path
    node_timeout_ms: int

    @property
    def ports(self) -> list[int]:
        return list(range(self.first, self.first + 2 * self.masters))

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in self.ports)

    def start(self) -> None:
        subprocess.run(
            [
                str(SCRIPT),
                str(self.first),
                str(self.masters),
                str(self.workdir),
                str(self.node_timeout_ms),
            ],
            check=True,
            timeout=CLUSTER_START_TIMEOUT,
            capture_output=True,
        )

    def stop(self) -> None:
        subprocess.run(
            [str(SCRIPT), "stop", str(self.first), str(self.masters)],
            timeout=CLUSTER_START_TIMEOUT,
            capture_output=True,
        )

    def nodes(self) -> list[dict[str, Any]]:
        """CLUSTER NODES as seen by any live node: id, port, role, slot ranges."""
        for port in self.ports:
            try:
                out = subprocess.run(
                    ["redis-cli", "-p", str(port), "cluster", "nodes"],
                    capture_output=True,
                    text=True,
                    timeout=5,
                ).stdout
            except (OSError, subprocess.TimeoutExpired):
                continue
            if not out.strip():
                continue
            nodes = []
            for line in out.strip().splitlines():
                parts = line.split()
                if len(parts) < 8:  # not CLUSTER NODES output (a refused connection)
                    break
                nodes.append(
                    {
                        "port": int(parts[1].split("@")[0].rsplit(":", 1)[1]),
                        "flags": parts[2].split(","),
                        "slots": parts[8:],
                    }
                )
            return nodes
        return []

    def master_of(self, slot: int) -> int:
        """The port of the live master serving ``slot``."""
        return master_in(self.nodes(), slot)

    def kill(self, port: int) -> None:
        pid = int((self.workdir / f"{port}.pid").read_text())
        os.kill(pid, signal.SIGKILL)

    def restart(self, port: int) -> None:
        """The killed node comes back with its config file: it rejoins as a replica."""
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(self.workdir / f"nodes-{port}.conf"),
                "--cluster-node-timeout",
                str(self.node_timeout_ms),
                "--cluster-replica-validity-factor",
                "0",
                "--repl-ping-replica-period",
                "1",
                "--dir",
                str(self.workdir),
                "--logfile",
                str(self.workdir / f"{port}.log"),
                "--pidfile",
                str(self.workdir / f"{port}.pid"),
            ],
            check=True,
            timeout=10,
        )


def master_in(nodes: list[dict[str, Any]], slot: int) -> int:
    """The port of the live master serving ``slot`` in one CLUSTER NODES reading."""
    for node in nodes:
        if "master" in node["flags"] and "fail" not in node["flags"]:
            for spec in node["slots"]:
                low, _, high = spec.partition("-")
                if int(low) <= slot <= int(high or low):
                    return int(node["port"])
    raise LookupError(f"no live master for slot {slot}")


def slot_of_project(project: int) -> int:
    return key_slot(project_channel(project).encode())


@dataclass
class Watcher:
    """One WebSocket client of one push server, following some projects."""

    server: str
    projects: dict[int, int]
    #: project -> highest version poked
    poked: dict[int, int] = field(default_factory=dict)
    #: (monotonic time, state) for every state the server announced
    states: list[tuple[float, str]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    @property
    def state(self) -> str | None:
        return self.states[-1][1] if self.states else None

    def converged(self, versions: dict[int, int]) -> bool:
        return all(self.poked.get(p, self.projects[p]) >= v for p, v in versions.items())


@dataclass
class ClusterStack:
    """An app and two push servers (each on its own port) on one Redis Cluster."""

    app: Process
    app_url: str
    pushes: list[Process]
    push_urls: list[str]
    token: str
    watchers: list[Watcher] = field(default_factory=list)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.app_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=10.0,
        )

    async def new_projects(self, count: int) -> dict[int, int]:
        found: dict[int, int] = {}
        async with self.http() as http:
            for n in range(count):
                r = await http.post("/api/projects", json={"name": f"cluster {n}"})
                assert r.status_code == 201, r.text
                found[int(r.json()["project"])] = int(r.json()["version"])
        return found

    async def change(self, project: int, title: str = "story") -> int:
        async with self.http() as http:
            r = await http.post(
                f"/api/projects/{project}/commands",
                json={"command": {"type": "create_story", "title": title}},
            )
            assert r.status_code == 200, r.text
            return int(r.json()["version"])

    async def push_token(self, projects: list[int]) -> str:
        async with self.http() as http:
            r = await http.post("/api/push/token", json={"projects": projects})
            assert r.status_code == 200, r.text
            return str(r.json()["token"])

    async def watch(self, server: int, projects: dict[int, int]) -> Watcher:
        """A client of push server ``server`` holding ``projects`` at their versions;
        returns once the server confirmed the subscription."""
        watcher = Watcher(self.push_urls[server], dict(projects))
        token = await self.push_token(list(projects))
        ready = asyncio.Event()
        url = self.push_urls[server].replace("http://", "ws://") + "/ws"

        async def run() -> None:
            async with websockets.connect(url, max_size=2**20) as ws:
                held = {str(p): v for p, v in projects.items()}
                await ws.send(
                    orjson.dumps({"type": "subscribe", "token": token, "projects": held}).decode()
                )
                async for raw in ws:
                    body = orjson.loads(raw)
                    kind = body.get("type")
                    now = time.monotonic()
                    if kind in ("subscribed", "heartbeat"):
                        watcher.states.append((now, str(body.get("state"))))
                        ready.set()
                    elif kind == "poke":
                        p, v = int(body["project"]), int(body["version"])
                        watcher.poked[p] = max(v, watcher.poked.get(p, 0))

        watcher.task = asyncio.create_task(run())
        waiter = asyncio.ensure_future(ready.wait())
        await asyncio.wait({waiter, watcher.task}, timeout=10, return_when="FIRST_COMPLETED")
        waiter.cancel()
        if watcher.task.done():
            watcher.task.result()
        assert ready.is_set(), f"no subscribed from {url}"
        self.watchers.append(watcher)
        return watcher

    async def until_all_converged(self, versions: dict[int, int], within: float) -> float:
        async def done() -> bool:
            for w in self.watchers:
                if w.task is not None and w.task.done():
                    w.task.result()
            return all(w.converged(versions) for w in self.watchers)

        return await until(done, within, f"every client at {versions}")

    async def until_state(self, state: str, within: float) -> float:
        async def seen() -> bool:
            return all(w.state == state for w in self.watchers)

        return await until(seen, within, f"every client told {state}")

    async def close_watchers(self) -> None:
        for w in self.watchers:
            if w.task is not None:
                w.task.cancel()
                with contextlib.suppress(BaseException):
                    await w.task
        self.watchers.clear()

    def logs(self) -> str:
        return "\n".join(f"== {p.name}\n{p.log_tail(4000)}" for p in [self.app, *self.pushes])


@contextlib.asynccontextmanager
async def cluster_stack(
    redis_url: str, workdir: Path, *, sharded: bool, **push_env: str
) -> AsyncIterator[ClusterStack]:
    """Start the app (SQLite) and two push servers on ``redis_url``; stop them after."""
    database = f"sqlite:///{workdir}/app.sqlite3"
    keys = f"cl{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
    broker = {"REDIS_URL": redis_url, "TIDINGS_REDIS_SHARDED": "true" if sharded else "false"}
    cli_env = clean_env(TIDINGS_DATABASE_URL=database)
    email = "ada@cluster.test"
    await asyncio.to_thread(
        tidings_cli, "users", "add", email, "Ada", "--password", "cluster-pw", env=cli_env
    )
    token = await asyncio.to_thread(tidings_cli, "tokens", "create", email, env=cli_env)
    app_port = free_port()
    push_ports = [free_port(), free_port()]
    app = tidings_process(
        "app",
        ["app", "--host", "127.0.0.1", "--port", str(app_port)],
        clean_env(TIDINGS_DATABASE_URL=database, TIDINGS_PUSH_KEYS=keys, **broker),
        workdir / "app.log",
    )
    pushes = [
        tidings_process(
            f"push{n}",
            ["push", "--host", "127.0.0.1", "--port", str(port)],
            clean_env(
                TIDINGS_PUSH_KEYS=keys, TIDINGS_PUSH_DRAIN_WINDOW="0.5", **broker, **push_env
            ),
            workdir / f"push{n}.log",
        )
        for n, port in enumerate(push_ports)
    ]
    stack = ClusterStack(
        app,
        f"http://127.0.0.1:{app_port}",
        pushes,
        [f"http://127.0.0.1:{p}" for p in push_ports],
        token,
    )
    began = time.monotonic()
    try:
        for proc in (app, *pushes):
            proc.start()
        await until(lambda: answers(f"{stack.app_url}/healthz"), START_TIMEOUT, "app up")
        for url in stack.push_urls:
            await until(lambda u=url: answers(f"{u}/readyz"), START_TIMEOUT, f"{url} ready")  # type: ignore[misc]
        print(f"cluster stack: started in {time.monotonic() - began:.1f} s")
        yield stack
    except BaseException:
        print(stack.logs())
        raise
    finally:
        await stack.close_watchers()
        for proc in (*pushes, app):
            proc.stop()
