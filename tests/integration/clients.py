"""The Python ``SyncClient`` run against the real stack, with what it does recorded.

Each client gets an httpx client whose request hook keeps every telemetry report
it sends the app (with ``telemetry_max_samples=1`` each applied event is reported
at once), so a test can tell how a change arrived: ``via`` is ``poke`` when a
poke announced it, ``poll`` when a regular poll found it. The same hook checks
that no request to the push servers carries the app's credentials.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson

from tests.support import until
from tidings.client.actions import Status
from tidings.client.driver import ClientOptions, SyncClient, Transport
from tidings.domain.project import Snapshot
from tidings.testing.stack import Stack

#: Controller overrides for every test client. Each sample is reported at once (so
#: the test sees it), and a lost push connection is retried every second instead
#: of backing off towards minutes (the tests restart push servers within seconds).
CONTROLLER: dict[str, Any] = {"telemetry_max_samples": 1, "push_backoff_cap": 1.0}


@dataclass
class Observed:
    """Everything one client reported, with wall-clock times."""

    name: str
    #: host:port of the push servers: requests there must carry no app credentials.
    push_origin: str = ""
    statuses: list[tuple[float, Status]] = field(default_factory=list)
    #: version -> when it was applied
    applied: dict[int, float] = field(default_factory=dict)
    reports: list[dict[str, Any]] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    #: Headers carrying app credentials seen on requests to the push servers.
    leaked: list[str] = field(default_factory=list)

    def on_apply(self, project: int, events: Sequence[dict[str, Any]], _: Snapshot | None) -> None:
        now = time.time()
        for e in events:
            self.applied[int(e["version"])] = now
        self.changed.set()

    def on_status(self, status: Status) -> None:
        self.statuses.append((time.time(), status))
        self.changed.set()

    async def on_request(self, request: httpx.Request) -> None:
        if request.url.netloc.decode() == self.push_origin:
            self.leaked += [h for h in ("authorization", "cookie") if h in request.headers]
        if request.method == "POST" and request.url.path == "/api/telemetry":
            self.reports.append(orjson.loads(request.content))
            self.changed.set()

    def samples(self, project: int) -> list[dict[str, Any]]:
        return [s for r in self.reports for s in r["samples"] if s["project"] == project]

    def vias(self, project: int) -> list[str]:
        return [s["via"] for s in self.samples(project)]

    @property
    def missed_pokes(self) -> int:
        return sum(int(r["missed_pokes"]) for r in self.reports)

    async def until(self, check: Callable[[], bool], within: float, what: str) -> float:
        """Wait (woken by every callback) until ``check()``; the seconds it took."""
        # Also re-checked every 0.1 s: the client's state moves without callbacks.
        return await until(
            check,
            within,
            f"{what} ({self.name})",
            step=0.1,
            wake=self.changed,
            detail=lambda: (
                f"statuses={[str(s) for _, s in self.statuses]} "
                f"applied={sorted(self.applied)} reports={self.reports}"
            ),
        )


@dataclass
class Followed:
    client: SyncClient
    seen: Observed
    transport: Transport

    @property
    def status(self) -> Status | None:
        return self.client.status

    def push_state(self) -> str:
        assert self.client.controller is not None
        return str(self.client.controller.inspect()["push"])

    def next_deadline(self) -> float | None:
        assert self.client.controller is not None
        deadline = self.client.controller.next_deadline()
        return deadline

    async def until_status(self, status: Status, within: float) -> float:
        return await self.seen.until(lambda: self.client.status == status, within, str(status))

    async def until_applied(self, version: int, within: float) -> float:
        return await self.seen.until(
            lambda: version in self.seen.applied, within, f"version {version} applied"
        )

    async def until_sampled(self, project: int, count: int, within: float = 2.0) -> list[str]:
        """Wait for ``count`` telemetry samples of the project; their ``via``."""
        await self.seen.until(
            lambda: len(self.seen.samples(project)) >= count, within, f"{count} samples"
        )
        return self.seen.vias(project)

    def is_quiet(self, needed: float) -> bool:
        """Nothing (no regular poll) is due within ``needed`` s."""
        deadline = self.next_deadline()
        return deadline is None or deadline > time.time() + needed

    async def quiet(self, needed: float = 1.0, within: float = 8.0) -> None:
        """Wait until the client has nothing due (no regular poll) for ``needed`` s.

        A change made then and seen before that can only have come by poke.
        """
        start = time.monotonic()
        while not self.is_quiet(needed):
            if time.monotonic() - start > within:
                raise AssertionError(f"{self.seen.name}: never quiet for {needed} s")
            deadline = self.next_deadline() or time.time()
            await asyncio.sleep(max(0.02, deadline - time.time() + 0.05))


async def all_quiet(clients: Sequence[Followed], needed: float = 1.0) -> None:
    """Until every client is quiet at the same moment (see ``Followed.quiet``)."""
    for _ in range(10):
        for c in clients:
            await c.quiet(needed)
        if all(c.is_quiet(needed) for c in clients):
            return
    raise AssertionError("the clients were never quiet at the same time")


@contextlib.asynccontextmanager
async def following(
    stack: Stack, project: int, transport: Transport, **controller: Any
) -> AsyncIterator[Followed]:
    """A SyncClient following ``project`` over ``transport``, stopped on the way out."""
    seen = Observed(f"python-{transport}", push_origin=stack.push_url.split("://", 1)[1])
    http = httpx.AsyncClient(
        base_url=stack.app_url, timeout=10.0, event_hooks={"request": [seen.on_request]}
    )
    client = SyncClient(
        ClientOptions(
            url=stack.app_url,
            projects=[project],
            api_token=stack.admin_token,
            transport=transport,
            controller={**CONTROLLER, **controller},
        ),
        on_apply=seen.on_apply,
        on_status=seen.on_status,
        http=http,
    )
    runner = asyncio.ensure_future(client.run())
    try:
        yield Followed(client, seen, transport)
        if runner.done():
            runner.result()  # a client that died is a failure, not a quiet pass
        # The push servers get a push token; the app's API token stays with the app.
        assert not seen.leaked, f"{seen.name} sent {seen.leaked} to the push server"
    finally:
        client.stop()
        try:
            await asyncio.wait_for(runner, 10)
        finally:
            await http.aclose()


@contextlib.asynccontextmanager
async def following_all(
    stack: Stack, project: int, transports: Sequence[Transport]
) -> AsyncIterator[list[Followed]]:
    async with contextlib.AsyncExitStack() as stack_of:
        yield [await stack_of.enter_async_context(following(stack, project, t)) for t in transports]
