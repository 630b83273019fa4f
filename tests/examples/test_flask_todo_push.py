"""The converted to-do app (examples/flask-todo, docs/ADOPTING.md) with push, for
real: the app, two ``tidings push`` processes sharing one port, and a Redis
server of the test's own (the app's heartbeat saying push is off would degrade
every push server on a shared one), each its own process; each user follows
the list with tidings' Python client, as the example's ``follow.py`` does (its
endpoints and its ``apply_event``).

One change by one user reaches another by poke while clients poll every 60 s;
``kill -9`` of the push server the clients hold goes unnoticed (they reconnect
to the other one and every change reaches them); the kill switch sends them
back to polling every second, within seconds and with no change made; a
rollout percentage then puts one user back on push and leaves the other polling.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import importlib.util
import os
import secrets
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import orjson

from tests.browser.test_browser import require_browser
from tests.examples.todo_app import EXAMPLE, ROOT, TodoApp, push_server, running_app, todo_cli
from tests.support import until
from tidings.client.actions import Status
from tidings.client.driver import ClientOptions, SyncClient
from tidings.publish.advice import rollout_bucket
from tidings.testing.processes import free_port

#: The app's advice: 60 s between polls while push is healthy (a change seen
#: within a second or two came by poke), 1 s while it is not.
POLL_INTERVAL_PUSH = 60.0
POLL_INTERVAL = 1.0
JITTER = 0.2
#: Commit to applied by poke, on a busy 2-core machine.
POKE_BOUND = 1.5
#: Start-up of a client: config, snapshot, token, connect, subscribed.
GO_LIVE = 15.0
#: The kill switch to a client's push off: the app's next heartbeat (1 s), the push
#: server's state to its clients, their poll brought forward (within 1 s), its answer.
KILL_SWITCH_BOUND = 5.0
#: Every sample reported at once (the test reads them); a lost push connection
#: retried after 1 s at most, as the first retry is anyway (PROTOCOL.md §5.5).
CONTROLLER: dict[str, Any] = {"telemetry_max_samples": 1, "push_backoff_cap": 1.0}
#: Bound on the Chromium check: the browser's start, the page going live, the change.
PAGE_TIMEOUT = 60.0


def load_follow() -> ModuleType:
    """examples/flask-todo/follow.py, whose endpoints and apply_event the clients use."""
    spec = importlib.util.spec_from_file_location("todo_follow", EXAMPLE / "follow.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Follower:
    """One user's client and what it did, with wall-clock times."""

    name: str
    client: SyncClient | None = None
    statuses: list[Status] = field(default_factory=list)
    #: version -> when it was applied
    applied: dict[int, float] = field(default_factory=dict)
    vias: list[str] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def on_apply(self, _list: int, events: Sequence[dict[str, Any]], _snapshot: Any) -> None:
        now = time.time()
        for event in events:
            assert event["version"] not in self.applied, f"version {event['version']} twice"
            self.applied[event["version"]] = now
        self.changed.set()

    def on_status(self, status: Status) -> None:
        self.statuses.append(status)
        self.changed.set()

    async def on_response(self, response: httpx.Response) -> None:
        # On the answer, not the request: a sample counts once the app has taken it.
        request = response.request
        taken = response.status_code == 204 and request.method == "POST"
        if taken and request.url.path == "/api/telemetry":
            self.vias += [s["via"] for s in orjson.loads(request.content)["samples"]]
            self.changed.set()

    @property
    def items(self) -> list[dict[str, Any]]:
        assert self.client is not None
        snapshot = self.client.snapshot(self.client.options.projects[0])
        return [] if snapshot is None else list(snapshot["items"])

    async def quiet(self, needed: float = POKE_BOUND + 1.0, within: float = 8.0) -> None:
        """Until no poll is due within ``needed`` s: a change seen sooner came by poke."""

        def quiet() -> bool:
            assert self.client is not None and self.client.controller is not None
            deadline = self.client.controller.next_deadline()
            return deadline is None or deadline > time.time() + needed

        await until(quiet, within, f"{self.name}: no poll due for {needed} s")

    def switched_off(self) -> bool:
        return self.status == Status.PUSH_OFF

    def live(self) -> bool:
        return self.status == Status.LIVE

    def holds(self, version: int) -> bool:
        return version in self.applied

    def recovered_since(self, mark: int) -> bool:
        """Push was lost after ``statuses[mark]`` and is healthy again."""
        return Status.PUSH_UNAVAILABLE in self.statuses[mark:] and self.status == Status.LIVE

    @property
    def status(self) -> Status | None:
        return self.statuses[-1] if self.statuses else None

    async def until(self, check: Callable[[], bool], within: float, what: str) -> float:
        return await until(
            check,
            within,
            f"{self.name}: {what}",
            wake=self.changed,
            detail=lambda: f"statuses={self.statuses} applied={sorted(self.applied)}",
        )


@contextlib.asynccontextmanager
async def following(app: TodoApp, token: str, list_id: int, name: str) -> AsyncIterator[Follower]:
    follow = load_follow()
    seen = Follower(name)
    http = httpx.AsyncClient(
        base_url=app.url, timeout=10.0, event_hooks={"response": [seen.on_response]}
    )
    seen.client = SyncClient(
        ClientOptions(
            url=app.url,
            projects=[list_id],
            api_token=token,
            endpoints=follow.ENDPOINTS,
            apply_event=follow.apply_event,
            controller=CONTROLLER,
        ),
        on_apply=seen.on_apply,
        on_status=seen.on_status,
        http=http,
    )
    runner = asyncio.ensure_future(seen.client.run())
    try:
        yield seen
    finally:
        seen.client.stop()
        await asyncio.wait_for(runner, 15)
        await http.aclose()


class Api:
    """One user's requests to the app, as its page makes them."""

    def __init__(self, app: TodoApp, token: str) -> None:
        self.http = httpx.AsyncClient(
            base_url=app.url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )

    async def write(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        r = await self.http.request(method, path, json=body)
        assert r.status_code in (200, 201, 204), r.text
        return r.json() if r.content else None

    async def add(self, list_id: int, text: str) -> tuple[int, float]:
        """Add an item; the list's version after it, and when it was committed."""
        await self.write("POST", f"/api/lists/{list_id}/items", {"text": text})
        committed = time.time()
        return (await self.list(list_id))["version"], committed

    async def list(self, list_id: int) -> dict[str, Any]:
        r = await self.http.get(f"/api/lists/{list_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def freshness(self) -> dict[str, Any]:
        body: dict[str, Any] = (await self.http.get("/api/freshness")).json()
        return body


async def page_shows_change(
    app: TodoApp, token: str, list_id: int, other_token: str, text: str
) -> None:
    """tests/examples/todo_page.mjs: the page in Chromium shows another user's item."""
    require_browser()
    proc = await asyncio.create_subprocess_exec(
        "node",
        str(Path(__file__).with_name("todo_page.mjs")),
        app.url,
        token,
        str(list_id),
        other_token,
        text,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PAGE_TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, out.decode(errors="replace")


def rollout_splitting(db: str, *, inside: str, outside: str) -> int:
    """A rollout percentage that takes user ``inside`` and leaves ``outside`` out
    (the example's users table, tidings.publish's stable buckets)."""
    with contextlib.closing(sqlite3.connect(db)) as conn:
        ids = dict(conn.execute("SELECT name, id FROM users").fetchall())
    low, high = rollout_bucket(ids[inside]), rollout_bucket(ids[outside])
    assert low < high, f"{inside}'s bucket {low} is not below {outside}'s {high}"
    return high


async def test_changes_reach_other_users_by_poke_through_a_push_crash_the_kill_switch_and_a_rollout(
    tmp_path: Path, own_redis: str
) -> None:
    push_port = free_port()
    keys = f"ex{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
    base = {
        k: v for k, v in os.environ.items() if not k.startswith(("TIDINGS_", "REDIS_", "TODO_"))
    }
    push_env = base | {"REDIS_URL": own_redis, "TIDINGS_PUSH_KEYS": keys}
    env = push_env | {
        "TODO_DB": str(tmp_path / "todo.sqlite3"),
        "TIDINGS_PUSH_URL": f"http://127.0.0.1:{push_port}",
        "TODO_POLL_INTERVAL_PUSH": str(POLL_INTERVAL_PUSH),
        "TODO_POLL_INTERVAL": str(POLL_INTERVAL),
    }
    ada_token = todo_cli(EXAMPLE, env, "add-user", "ada")
    bob_token = todo_cli(EXAMPLE, env, "add-user", "bob")
    pushes = [push_server(f"push{n}", push_port, push_env, tmp_path) for n in (1, 2)]
    try:
        pushes[0].proc.start()
        with running_app(EXAMPLE, env, tmp_path) as app:
            ada = Api(app, ada_token)
            list_id = int((await ada.write("POST", "/api/lists", {"name": "Groceries"}))["id"])
            await pushes[0].wait_ready()
            async with (
                following(app, bob_token, list_id, "bob") as bob,
                following(app, ada_token, list_id, "ada") as own,
            ):
                for follower in (bob, own):
                    await follower.until(follower.live, GO_LIVE, "live")
                # Both hold push1, the only server listening; push2 starts behind them.
                pushes[1].proc.start()

                # 1. Ada's change reaches Bob by poke, not by his poll every 60 s.
                await bob.quiet()
                version, committed = await ada.add(list_id, "milk")
                await bob.until(lambda: version in bob.applied, POKE_BOUND, "milk by poke")
                assert bob.applied[version] - committed < POKE_BOUND
                await bob.until(lambda: bob.vias[-1:] == ["poke"], 5.0, "its sample via poke")
                assert [i["text"] for i in bob.items] == ["milk"]
                # The page of step 4, in Chromium: live over push, and Ada's item shows.
                await page_shows_change(app, bob_token, list_id, ada_token, "coffee")

                # 2. kill -9 of push1: the clients reconnect to push2, nothing is lost.
                await pushes[1].wait_ready()
                marks = {id(f): len(f.statuses) for f in (bob, own)}
                await pushes[0].proc.kill()
                await ada.add(list_id, "eggs")
                item = await ada.write("POST", f"/api/lists/{list_id}/items", {"text": "bread"})
                await ada.write("PATCH", f"/api/items/{item['id']}", {"done": True})
                for follower in (bob, own):
                    mark = marks[id(follower)]
                    recovered = functools.partial(follower.recovered_since, mark)
                    await follower.until(recovered, GO_LIVE, "live again, on push2")
                # Every change made meanwhile reached them (by the reconnect's
                # announcement or a poll), and push2 pokes from now on.
                for follower in (bob, own):
                    await follower.quiet()
                version, committed = await ada.add(list_id, "jam")
                for follower in (bob, own):
                    holds = functools.partial(follower.holds, version)
                    await follower.until(holds, POKE_BOUND, "jam by poke")
                    assert follower.applied[version] - committed < POKE_BOUND
                    assert sorted(follower.applied) == list(range(2, version + 1))
                server = await ada.list(list_id)
                assert bob.items == server["items"] == own.items
                assert [(i["text"], i["done"]) for i in bob.items] == [
                    ("milk", False),
                    ("coffee", False),
                    ("eggs", False),
                    ("bread", True),
                    ("jam", False),
                ]

                # 3. The kill switch, with no change made: the app's heartbeat says
                # push is off, push servers report degraded, the clients poll at
                # once and read the advice; from then on they poll every second.
                applied = len(bob.applied)
                await asyncio.to_thread(todo_cli, EXAMPLE, env, "push", "off")
                for follower in (bob, own):
                    await follower.until(follower.switched_off, KILL_SWITCH_BOUND, "push off")
                assert len(bob.applied) == applied
                version, committed = await ada.add(list_id, "rice")
                bound = POLL_INTERVAL * (1 + JITTER) + POKE_BOUND
                await bob.until(lambda: version in bob.applied, bound, "rice by poll")
                await bob.until(lambda: bob.vias[-1:] == ["poll"], 5.0, "its sample via poll")
                assert bob.status == Status.PUSH_OFF

                # 4. Push back on for a percentage that takes Ada and leaves Bob out:
                # her client goes live at its next poll, his keeps polling every second.
                percent = rollout_splitting(env["TODO_DB"], inside="ada", outside="bob")
                mark = len(bob.statuses)
                await asyncio.to_thread(todo_cli, EXAMPLE, env, "push", str(percent))
                await asyncio.to_thread(todo_cli, EXAMPLE, env, "push", "on")
                await own.until(own.live, KILL_SWITCH_BOUND + GO_LIVE, "live in the rollout")
                version, committed = await ada.add(list_id, "tea")
                await own.until(lambda: own.holds(version), POKE_BOUND, "tea by poke")
                await bob.until(lambda: version in bob.applied, bound, "tea by poll")
                await bob.until(lambda: bob.vias[-1:] == ["poll"], 5.0, "tea's sample via poll")
                assert bob.status == Status.PUSH_OFF and Status.LIVE not in bob.statuses[mark:]

            # Step 6's figures: the same story, told by the clients' reports.
            stats = await ada.freshness()
            assert stats["via"]["poke"]["count"] >= 3 and stats["via"]["poll"]["count"] >= 1
            assert stats["missed_pokes"] == 0, stats
    finally:
        for push in pushes:
            push.proc.stop()
