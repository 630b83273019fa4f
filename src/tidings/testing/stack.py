"""A real tidings topology as separate processes, for the client integration tests.

One PostgreSQL database (fresh), the shared Redis, one ``tidings app`` and up to
two ``tidings push`` processes sharing one port with ``--reuse-port`` (the kernel
spreads connections over them; a draining one stops listening and the other
takes its clients). Both start with the stack; after a kill only one is brought
back unless a test asks for two (process start-up is the slow part here).
Users and API tokens come from the CLI. Every wait is bounded; every process is
stopped on teardown, at interpreter exit, and (on Linux) when the test process
dies.
"""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tidings.testing.database import (
    create_database,
    drop_database,
    offset_database_project_ids,
)
from tidings.testing.processes import (
    START_TIMEOUT,
    Process,
    clean_env,
    set_push_with_cli,
    tidings_cli,
    tidings_process,
)
from tidings.testing.topology import ADMIN_EMAIL, PASSWORD
from tidings.testing.waiting import answers, until

#: Cadence advised by the app under test (seconds). The long interval is short
#: enough that "within one poll interval" fits the time budget, and long enough
#: that a change seen within a second can only have come by poke.
POLL_INTERVAL_PUSH = 3.0
POLL_INTERVAL = 1.0
POLL_JITTER = 0.1
#: Seconds an app process may serve stale flags from its cache (FlagCache ttl).
FLAG_CACHE_TTL = 2.0
#: Push servers spread reconnects over this window when draining.
DRAIN_WINDOW = 1.0


@dataclass
class PushServer:
    proc: Process
    url: str

    async def wait_ready(self) -> None:
        """Until this very process serves with a working broker link.

        The port is shared, so /readyz may be answered by the other server: this
        one's own log says when it listens and when its link heartbeat came back.
        """

        async def ready() -> bool:
            if not self.proc.alive:
                raise AssertionError(f"{self.proc.name} exited:\n{self.proc.log_tail()}")
            log = self.proc.current_log()
            return "tidings push listening" in log and "event=push_state state=ok" in log

        await until(ready, START_TIMEOUT, f"{self.proc.name} to be ready")
        await until(lambda: answers(f"{self.url}/readyz"), START_TIMEOUT, "push /readyz")


@dataclass
class Stack:
    """The running topology and the operations the tests perform on it."""

    app_url: str
    push_url: str
    admin_token: str
    redis_url: str
    database_url: str
    app: Process
    pushes: list[PushServer] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    # ----- the app's API ------------------------------------------------------

    def http(self, token: str | None = None) -> httpx.AsyncClient:
        return httpx.AsyncClient(
            base_url=self.app_url,
            headers={"Authorization": f"Bearer {token or self.admin_token}"},
            timeout=10.0,
        )

    async def new_project(self, name: str) -> tuple[int, int]:
        """A fresh project (a fresh id: its own Redis channel); its id and version."""
        async with self.http() as http:
            r = await http.post("/api/projects", json={"name": name})
            assert r.status_code == 201, r.text
            body = r.json()
            return int(body["project"]), int(body["version"])

    async def change(self, project: int, title: str) -> tuple[int, float]:
        """Create a story; the new version and its commit time (the event's ``ts``).

        Latencies are measured from the commit, as the staleness metric is: the
        command's own round trip is not the clients' doing.
        """
        async with self.http() as http:
            r = await http.post(
                f"/api/projects/{project}/commands",
                json={"command": {"type": "create_story", "title": title}},
            )
            assert r.status_code == 200, r.text
            body = r.json()
            return int(body["version"]), float(body["event"]["ts"])

    async def set_push(self, enabled: bool) -> None:
        """The global kill switch, as an admin (PUT /api/admin/flags)."""
        async with self.http() as http:
            r = await http.put("/api/admin/flags", json={"enabled": enabled})
            assert r.status_code == 200, r.text
            assert r.json()["enabled"] is enabled

    async def set_push_cli(self, enabled: bool) -> None:
        """The kill switch as an operator flips it: ``tidings flags push on|off``.

        It writes the database only: the app sees it when its flag cache expires.
        """
        await set_push_with_cli(self.database_url, enabled)

    async def app_metric(self, series: str) -> float:
        """One series of the app's /metrics, e.g. ``tidings_client_missed_pokes_total``
        or ``tidings_client_staleness_seconds_count{via="poke"}``; 0 when absent."""
        async with httpx.AsyncClient(timeout=5.0) as http:
            text = (await http.get(f"{self.app_url}/metrics")).text
        for line in text.splitlines():
            name, _, value = line.rpartition(" ")
            if name == series:
                return float(value)
        return 0.0

    # ----- push servers -------------------------------------------------------

    def running_pushes(self) -> list[PushServer]:
        return [p for p in self.pushes if p.proc.alive]

    async def kill_pushes(self) -> None:
        """SIGKILL every push server: connections drop at once, nothing drains."""
        for push in self.pushes:
            await push.proc.kill()

    async def drain_push(self, index: int) -> int | None:
        """SIGTERM one push server (it drains, then exits); its exit code."""
        push = self.pushes[index]
        if push.proc.alive:
            push.proc.signal(signal.SIGTERM)
        code = await push.proc.wait_exit(DRAIN_WINDOW + 10.0)
        push.proc.forget()
        return code

    async def start_pushes(self, count: int = 1) -> None:
        """Until at least ``count`` push servers run (started together, each waited for).

        Most tests need one; the drain test needs two (one to drain, one to take over).
        """
        stopped = [p for p in self.pushes if not p.proc.alive]
        starting = stopped[: max(0, count - len(self.running_pushes()))]
        for push in starting:
            push.proc.start()
        for push in starting:
            await push.wait_ready()

    async def reset(self) -> None:
        """What every test starts from: a push server up, push switched on."""
        await self.start_pushes()
        await self.set_push(True)

    def close(self) -> None:
        for push in self.pushes:
            push.proc.stop()
        self.app.stop()


def start_stack(
    *,
    postgres_admin_url: str,
    redis_url: str,
    workdir: Path,
    free_port: Callable[[], int],
    app_env: dict[str, str] | None = None,
) -> Stack:
    """Build and start everything; the caller must ``stop_stack`` (a fixture's finally)."""
    database_url = asyncio.run(create_database(postgres_admin_url))
    app_port, push_port = free_port(), free_port()
    keys = f"it{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
    cli_env = clean_env(TIDINGS_DATABASE_URL=database_url)
    full_app_env = clean_env(
        TIDINGS_DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        TIDINGS_PUSH_KEYS=keys,
        TIDINGS_PUSH_URL=f"http://127.0.0.1:{push_port}",
        TIDINGS_POLL_INTERVAL=str(POLL_INTERVAL),
        TIDINGS_POLL_INTERVAL_PUSH=str(POLL_INTERVAL_PUSH),
        TIDINGS_POLL_JITTER=str(POLL_JITTER),
        # One user stands for every client here, each reporting every event.
        TIDINGS_TELEMETRY_LIMITS="0",
        **(app_env or {}),
    )
    push_env = clean_env(
        REDIS_URL=redis_url,
        TIDINGS_PUSH_KEYS=keys,
        TIDINGS_PUSH_DRAIN_WINDOW=str(DRAIN_WINDOW),
    )
    app = tidings_process(
        "app",
        ["app", "--host", "127.0.0.1", "--port", str(app_port)],
        full_app_env,
        workdir / "app.log",
    )
    push_url = f"http://127.0.0.1:{push_port}"
    pushes = [
        PushServer(
            tidings_process(
                f"push{n}",
                ["push", "--host", "127.0.0.1", "--port", str(push_port), "--reuse-port"],
                push_env,
                workdir / f"push{n}.log",
            ),
            push_url,
        )
        for n in (1, 2)
    ]
    stack = Stack(
        app_url=f"http://127.0.0.1:{app_port}",
        push_url=push_url,
        admin_token="",
        redis_url=redis_url,
        database_url=database_url,
        app=app,
        pushes=pushes,
        env=full_app_env,
    )
    try:
        # The first CLI call migrates the fresh database; ids are offset before any
        # project exists, so this run's Redis channels are its own.
        tidings_cli(
            "users", "add", ADMIN_EMAIL, "Ada", "--password", PASSWORD, "--admin", env=cli_env
        )
        asyncio.run(offset_database_project_ids(database_url))
        app.start()
        for push in pushes:
            push.proc.start()
        stack.admin_token = tidings_cli("tokens", "create", ADMIN_EMAIL, env=cli_env)
        asyncio.run(_wait_started(stack))
    except BaseException:
        stop_stack(stack, postgres_admin_url)
        raise
    return stack


async def _wait_started(stack: Stack) -> None:
    async def app_up() -> bool:
        if not stack.app.alive:
            raise AssertionError(f"app exited:\n{stack.app.log_tail()}")
        return await answers(f"{stack.app_url}/healthz")

    await until(app_up, START_TIMEOUT, "app /healthz")
    for push in stack.pushes:
        await push.wait_ready()


def stop_stack(stack: Stack, postgres_admin_url: str) -> None:
    try:
        stack.close()
    finally:
        asyncio.run(drop_database(postgres_admin_url, stack.database_url))
