"""A crowd of Python ``SyncClient``s in one process, recording what each one lived through.

``python -m tidings.testing.faults.crowd SPEC.json OUT.json``: starts the clients the spec
lists, prints ``ready`` once all are live, then follows them until a line
``finish {"project": version, ...}`` arrives on stdin; it waits (bounded) for
every client to hold those versions, writes OUT.json and exits. The runner
starts several such processes so that 500 clients get more than one core.

Per client it records every status change (what the user is shown), every
applied event with its commit time and the time it was applied, every reload,
and at the end a digest of each project's projected state. It counts the poll
requests the crowd sends per second (the load the app sees).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from tidings.client.actions import Status
from tidings.client.driver import ClientOptions, SyncClient, Transport
from tidings.domain.project import Snapshot
from tidings.testing.waiting import until

#: Bound on the wait for every client to be live at start, and to converge at the end.
READY_TIMEOUT = 90.0
FINISH_TIMEOUT = 60.0


def digest(snapshot: Snapshot) -> str:
    """The projected state, canonically encoded and hashed (clients and server alike)."""
    return hashlib.sha256(orjson.dumps(snapshot, option=orjson.OPT_SORT_KEYS)).hexdigest()[:16]


@dataclass
class Record:
    name: str
    transport: str
    projects: list[int]
    stalled: bool
    statuses: list[tuple[float, str]] = field(default_factory=list)
    #: (project, version, commit ts, applied at)
    applied: list[tuple[int, int, float, float]] = field(default_factory=list)
    #: (project, version, at)
    reloads: list[tuple[int, int, float]] = field(default_factory=list)

    def on_apply(self, project: int, events: Sequence[dict[str, Any]], _: Snapshot | None) -> None:
        now = time.time()
        for e in events:
            self.applied.append((project, int(e["version"]), float(e["ts"]), now))

    def on_reload(self, project: int, snapshot: Snapshot) -> None:
        self.reloads.append((project, int(snapshot["version"]), time.time()))

    def on_status(self, status: Status) -> None:
        self.statuses.append((time.time(), str(status)))


class Crowd:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.records: list[Record] = []
        self.clients: list[SyncClient] = []
        self.tasks: list[asyncio.Task[None]] = []
        #: Poll requests sent, per whole second of wall-clock time.
        self.polls: Counter[int] = Counter()

    async def count_poll(self, request: httpx.Request) -> None:
        path = request.url.path
        if path == "/api/poll" or path.endswith("/events"):
            self.polls[int(time.time())] += 1

    async def start(self) -> None:
        spread = float(self.spec.get("start_spread", 3.0))
        for c in self.spec["clients"]:
            record = Record(c["name"], c["transport"], list(c["projects"]), bool(c.get("stalled")))
            http = httpx.AsyncClient(
                base_url=self.spec["app_url"],
                timeout=10.0,
                event_hooks={"request": [self.count_poll]},
            )
            client = SyncClient(
                ClientOptions(
                    url=self.spec["app_url"],
                    projects=record.projects,
                    api_token=self.spec["token"],
                    transport=Transport(record.transport),
                    push_url=c.get("push_url"),
                    controller=dict(self.spec.get("controller", {})),
                ),
                on_apply=record.on_apply,
                on_reload=record.on_reload,
                on_status=record.on_status,
                http=http,
            )
            self.records.append(record)
            self.clients.append(client)
        for client in self.clients:
            self.tasks.append(asyncio.create_task(client.run()))
            await asyncio.sleep(random.uniform(0, 2 * spread / max(1, len(self.clients))))

    async def until(self, check: Callable[[], bool], within: float) -> bool:
        """Whether ``check()`` came true within the time: the runner reports either outcome."""
        try:
            await until(check, within, "the crowd", step=0.2)
        except AssertionError:
            return False
        return True

    def all_live(self) -> bool:
        return all(c.status == Status.LIVE for c in self.clients)

    def converged(self, targets: dict[int, int]) -> bool:
        for client, record in zip(self.clients, self.records, strict=True):
            for project in record.projects:
                snap = client.snapshot(project)
                if snap is None or int(snap["version"]) < targets[project]:
                    return False
        return True

    async def finish(self, targets: dict[int, int], out: Path) -> None:
        ok = await self.until(lambda: self.converged(targets), FINISH_TIMEOUT)
        final: list[dict[str, Any]] = []
        for client, record in zip(self.clients, self.records, strict=True):
            state = {}
            for project in record.projects:
                snap = client.snapshot(project)
                state[str(project)] = None if snap is None else [int(snap["version"]), digest(snap)]
            final.append(
                {
                    "name": record.name,
                    "transport": record.transport,
                    "projects": record.projects,
                    "stalled": record.stalled,
                    "statuses": record.statuses,
                    "applied": record.applied,
                    "reloads": record.reloads,
                    "final": state,
                    "status_at_end": str(client.status),
                }
            )
        for client in self.clients:
            client.stop()
        await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 20.0)
        body = {"converged": ok, "clients": final, "polls": sorted(self.polls.items())}
        await asyncio.to_thread(out.write_bytes, orjson.dumps(body))


async def main(spec_path: Path, out: Path) -> None:
    crowd = Crowd(orjson.loads(await asyncio.to_thread(spec_path.read_bytes)))
    await crowd.start()
    live = await crowd.until(crowd.all_live, READY_TIMEOUT)
    print("ready" if live else "not-ready", flush=True)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = (await reader.readline()).decode().strip()
        if not line:  # stdin closed: the runner is gone
            return
        if line.startswith("finish "):
            targets = {int(p): int(v) for p, v in orjson.loads(line[7:]).items()}
            await crowd.finish(targets, out)
            print("done", flush=True)
            return


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(Path(sys.argv[1]), Path(sys.argv[2])))
