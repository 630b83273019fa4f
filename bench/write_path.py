"""The write path at project sizes: a real ``tidings app`` serving commands in
projects of 10 to 10,000 stories, on SQLite and PostgreSQL, beside a floor.

For each store it seeds one project per size, then times, per size: sequential
``update_story`` and ``move_story`` commands (app CPU per command from /proc,
latency p50/p99 from the client, WAL bytes per command on PostgreSQL), snapshot
GETs (right after a change, and unchanged) and 10-event polls. The floor is a
minimal ASGI handler on the same server stack (uvicorn, uvloop, httptools)
issuing the same statements as the app's ``update_story`` with the bare driver
(asyncpg; the stdlib sqlite3), run on the same projects in the same run. Last,
commands on distinct projects under wrk (app and floor pinned to core 0, wrk to
core 1). Writes bench/results/write_path.json and .png.

    .venv/bin/python bench/write_path.py [--sizes 10,1000,5000,10000] [--stores sqlite,postgres]

Projects are grown in-process through ``EventStore.execute_many``: the code
path of the API's commands (lock, load, decide, apply, write) without HTTP, 500
commands to a transaction. Growing 16,000 stories one HTTP command at a time
would take most of the run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import (
    Process,
    cpu_seconds,
    database,
    free_port,
    log,
    pinned,
    stop_process,
    tidings_cli,
    wait_port,
)
from machine import describe
from poll_path import parse_wrk, wrk
from report import finish, pyplot, save

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

#: Projects the distinct-projects run spreads its commands over (one story each).
SPREAD = 64

#: Seeding commands per transaction.
SEED_BATCH = 500

#: Commands in one WAL window: WAL is counted for the whole server, so other work
#: on it only adds; the smallest window is the closest to the commands' own.
WAL_WINDOW = 10

SPREAD_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
pids = {PIDS}
math.randomseed(os.time())
request = function()
  counter = counter + 1
  local pid = pids[math.random(1, #pids)]
  local body = '{"command": {"type": "update_story", "story_id": 1, '
    .. '"title": "t ' .. counter .. '"}}'
  return wrk.format(nil, "/api/projects/" .. pid .. "/commands", nil, body)
end
-- Every refused command is counted by status and the start of its body, and printed.
refused = {}
threads = {}
setup = function(thread) table.insert(threads, thread) end
response = function(status, headers, body)
  if status >= 300 then
    local key = status .. " " .. string.sub(body or "", 1, 160)
    refused[key] = (refused[key] or 0) + 1
  end
end
done = function(summary, latency, requests)
  for _, thread in ipairs(threads) do
    for key, count in pairs(thread:get("refused")) do
      io.write("Refused " .. count .. ": " .. key .. "\\n")
    end
  end
end
"""


# -- seeding -------------------------------------------------------------------


async def _rebuild_times(db_url: str, pids: dict[int, int]) -> dict[str, float]:
    """Seconds ``tidings db rebuild`` takes per project size (in-process, app stopped)."""
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore

    engines = create_engines(db_url)
    try:
        store, out = EventStore(engines), {}
        for size, pid in pids.items():
            t0 = time.perf_counter()
            await store.rebuild(pid)
            out[str(size)] = round(time.perf_counter() - t0, 2)
        return out
    finally:
        await engines.dispose()


async def _seed(db_url: str, email: str, sizes: list[int], spread: int) -> dict[str, Any]:
    """One project per size, plus ``spread`` one-story projects; returns their ids."""
    from tidings.domain import commands as c
    from tidings.domain.decide import KnownUser
    from tidings.store.accounts import Accounts
    from tidings.store.engine import create_engines
    from tidings.store.events import EventStore

    engines = create_engines(db_url)
    try:
        store = EventStore(engines)
        user = await Accounts(engines).by_email(email)
        assert user is not None
        owner = KnownUser(user.id, user.name)

        async def grow(name: str, stories: int) -> int:
            pid = (await store.create_project(name, owner)).project_id
            batch = [
                c.CreateStory(
                    type="create_story",
                    title=f"story {n}",
                    description="x" * 200,
                    labels=["bench"],
                )
                for n in range(SEED_BATCH)
            ]
            for start in range(0, stories, SEED_BATCH):
                await store.execute_many(pid, user.id, batch[: min(SEED_BATCH, stories - start)])
            return pid

        pids = [await grow(f"size {s}", s) for s in sizes]
        spread_pids = [await grow(f"spread {n}", 1) for n in range(spread)]
        return {
            "sizes": dict(zip(sizes, pids, strict=True)),
            "spread": spread_pids,
            "user_id": user.id,
        }
    finally:
        await engines.dispose()


# -- the floor: the same statements, a bare handler ------------------------------


def floor_app(db_url: str, token: str, user_id: int) -> Any:
    """A minimal ASGI app: bearer token from a dict, the app's update_story
    statements on the bare driver, the same response shape and headers."""
    import orjson

    tokens = {f"Bearer {token}".encode(): user_id}
    sqlite = db_url.startswith("sqlite")
    state: dict[str, Any] = {}

    async def startup() -> None:
        if sqlite:
            import sqlite3

            path = db_url.split("///", 1)[1]
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=15000")
            state["conn"] = conn
        else:
            import asyncpg

            state["pool"] = await asyncpg.create_pool(db_url, min_size=4, max_size=10)

    def run_sqlite(pid: int, uid: int, sid: int, title: str, now: float) -> bytes | None:
        conn = state["conn"]
        conn.execute("BEGIN IMMEDIATE")
        try:
            head = conn.execute(
                "SELECT p.version, p.name, p.next_id, p.story_count, m.role FROM projects p "
                "LEFT JOIN memberships m ON m.project_id = p.id AND m.user_id = ? WHERE p.id = ?",
                (uid, pid),
            ).fetchone()
            if head is None or head[4] is None:
                conn.execute("ROLLBACK")
                return None
            story = conn.execute(
                "SELECT id, rank, owner_id, body FROM stories WHERE project_id = ? AND id IN (?)",
                (pid, sid),
            ).fetchone()
            body, version = orjson.loads(story[3]), head[0] + 1
            body["title"], body["updated_at"] = title, now
            data = {"story_id": sid, "changes": {"title": title}}
            event = {"version": version, "type": "story_updated", "data": data, "actor": uid}
            event["ts"] = now
            conn.execute(
                "INSERT INTO events (project_id, version, body) VALUES (?, ?, ?)",
                (pid, version, orjson.dumps(event).decode()),
            )
            conn.execute(
                "UPDATE projects SET version = ?, updated_at = ? WHERE id = ? AND version = ?",
                (version, now, pid, version - 1),
            )
            conn.execute(
                "UPDATE stories SET owner_id = ?, body = ? WHERE project_id = ? AND id = ?",
                (body["owner_id"], orjson.dumps(body).decode(), pid, sid),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return orjson.dumps({"project": pid, "version": version, "event": event})

    async def run_pg(pid: int, uid: int, sid: int, title: str, now: float) -> bytes | None:
        async with state["pool"].acquire() as conn, conn.transaction():
            head = await conn.fetchrow(
                "SELECT p.version, p.name, p.next_id, p.story_count, m.role FROM projects p "
                "LEFT OUTER JOIN memberships m ON m.project_id = p.id AND m.user_id = $1 "
                "WHERE p.id = $2 FOR UPDATE OF p",
                uid,
                pid,
            )
            if head is None or head["role"] is None:
                return None
            story = await conn.fetchrow(
                "SELECT id, rank, owner_id, body FROM stories "
                "WHERE project_id = $1 AND id = ANY($2::bigint[])",
                pid,
                [sid],
            )
            body, version = orjson.loads(story["body"]), head["version"] + 1
            body["title"], body["updated_at"] = title, now
            data = {"story_id": sid, "changes": {"title": title}}
            event = {"version": version, "type": "story_updated", "data": data, "actor": uid}
            event["ts"] = now
            await conn.execute(
                "INSERT INTO events (project_id, version, body) VALUES ($1, $2, $3)",
                pid,
                version,
                orjson.dumps(event).decode(),
            )
            await conn.execute(
                "UPDATE projects SET version = $1, updated_at = $2 WHERE id = $3 AND version = $4",
                version,
                now,
                pid,
                version - 1,
            )
            await conn.execute(
                "UPDATE stories SET owner_id = $1, body = $2 WHERE project_id = $3 AND id = $4",
                body["owner_id"],
                orjson.dumps(body).decode(),
                pid,
                sid,
            )
        return orjson.dumps({"project": pid, "version": version, "event": event})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await startup()
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        uid = tokens.get(headers.get(b"authorization", b""))
        parts = scope["path"].split("/")
        status, out = 404, b'{"error":"not_found"}'
        if scope["path"] == "/healthz":
            status, out = 200, b"ok"
        elif uid is None:
            status, out = 401, b'{"error":"unauthorized"}'
        elif len(parts) == 5 and parts[4] == "commands" and scope["method"] == "POST":
            command = orjson.loads(body)["command"]
            args = (int(parts[3]), uid, int(command["story_id"]), command["title"], time.time())
            done = run_sqlite(*args) if sqlite else await run_pg(*args)
            if done is not None:
                status, out = 200, done
        version = orjson.loads(out)["version"] if status == 200 and out != b"ok" else 0
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"etag", f'"{version}"'.encode()),
                    (b"x-tidings-version", str(version).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": out})

    return app


def serve_floor(db_url: str, port: int, token: str, user_id: int) -> None:
    import uvicorn

    uvicorn.run(
        floor_app(db_url, token, user_id),
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http="httptools",
        access_log=False,
        log_level="warning",
    )


class Floor:
    """The floor server in its own process, pinned like the app."""

    def __init__(self, db_url: str, token: str, user_id: int, core: int | None) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            __file__,
            "--serve-floor",
            db_url,
            "--floor-port",
            str(self.port),
            # One argument: a token may start with "-".
            f"--floor-token={token}",
            "--floor-user",
            str(user_id),
        ]
        import subprocess

        self.proc = subprocess.Popen(pinned(cmd, core), env=os.environ.copy())
        wait_port(self.port, self.proc, seconds=60)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        stop_process(self.proc)


# -- measuring ---------------------------------------------------------------------


class Wal:
    """WAL position of the PostgreSQL server (None on SQLite)."""

    def __init__(self, db_url: str | None) -> None:
        self.loop = asyncio.new_event_loop()
        self.conn: Any = None
        if db_url is not None:
            import asyncpg

            self.conn = self.loop.run_until_complete(asyncpg.connect(db_url))

    def lsn(self) -> int | None:
        """Bytes of WAL written since the server's start of time."""
        if self.conn is None:
            return None
        query = "SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::bigint"
        return int(self.loop.run_until_complete(self.conn.fetchval(query)))

    def between(self, a: int | None, b: int | None) -> int | None:
        return None if a is None or b is None else b - a

    def close(self) -> None:
        if self.conn is not None:
            self.loop.run_until_complete(self.conn.close())
        self.loop.close()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def timed_commands(
    http: httpx.Client,
    pid: int,
    server_pid: int,
    bodies: list[dict[str, Any]],
    wal: Wal,
) -> dict[str, Any]:
    """Send ``bodies`` one after another: CPU per command, latency, WAL per command."""
    latencies: list[float] = []
    wal_per_command: list[float] = []
    before = cpu_seconds(server_pid)
    for start in range(0, len(bodies), WAL_WINDOW):
        window = bodies[start : start + WAL_WINDOW]
        a = wal.lsn()
        for body in window:
            t0 = time.perf_counter()
            r = http.post(f"/api/projects/{pid}/commands", json={"command": body})
            latencies.append((time.perf_counter() - t0) * 1000)
            if r.status_code != 200:
                raise RuntimeError(f"command failed: {r.status_code} {r.text[:300]}")
        used = wal.between(a, wal.lsn())
        if used is not None:
            wal_per_command.append(used / len(window))
    cpu = cpu_seconds(server_pid) - before
    out: dict[str, Any] = {
        "commands": len(bodies),
        "cpu_ms_per_command": round(cpu / len(bodies) * 1000, 3),
        "latency_ms_p50": round(percentile(latencies, 50), 2),
        "latency_ms_p99": round(percentile(latencies, 99), 2),
    }
    if wal_per_command:
        out["wal_bytes_per_command_min"] = round(min(wal_per_command))
        out["wal_bytes_per_command_median"] = round(statistics.median(wal_per_command))
    return out


def story_ids(http: httpx.Client, pid: int) -> list[int]:
    r = http.get(f"/api/projects/{pid}")
    r.raise_for_status()
    return [s["id"] for s in r.json()["stories"]]


def measure_size(
    http: httpx.Client, app: Process, pid: int, commands: int, wal: Wal, rng: random.Random
) -> dict[str, Any]:
    ids = story_ids(http, pid)
    updates = [
        {"type": "update_story", "story_id": rng.choice(ids), "title": f"edit {n}"}
        for n in range(commands)
    ]
    moves = []
    for _ in range(commands // 2):
        a, b = rng.sample(ids, 2) if len(ids) > 1 else (ids[0], None)
        moves.append({"type": "move_story", "story_id": a, "before_id": b})
    out: dict[str, Any] = {"stories": len(ids)}
    out["update_story"] = timed_commands(http, pid, app.pid, updates, wal)
    out["move_story"] = timed_commands(http, pid, app.pid, moves, wal)
    out["snapshot_bytes"] = len(http.get(f"/api/projects/{pid}").content)
    # A snapshot GET right after a change assembles it from the rows; an unchanged
    # project's comes from the copy kept at its version.
    rounds, cold = 10, 0.0
    for n in range(rounds):
        http.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "update_story", "story_id": ids[0], "title": f"c{n}"}},
        ).raise_for_status()
        before = cpu_seconds(app.pid)
        http.get(f"/api/projects/{pid}").raise_for_status()
        cold += cpu_seconds(app.pid) - before
    out["snapshot_after_change_cpu_ms"] = round(cold / rounds * 1000, 2)
    before = cpu_seconds(app.pid)
    for _ in range(rounds * 3):
        http.get(f"/api/projects/{pid}").raise_for_status()
    out["snapshot_unchanged_cpu_ms"] = round((cpu_seconds(app.pid) - before) / rounds / 3 * 1000, 2)
    version = int(http.get(f"/api/projects/{pid}/events?since=0&limit=1").json()["version"])
    polls = 100
    before = cpu_seconds(app.pid)
    for _ in range(polls):
        since = rng.randint(max(0, version - 400), version - 10)
        r = http.get(f"/api/projects/{pid}/events?since={since}&limit=10")
        assert len(r.json()["events"]) == 10, r.text[:200]
    out["events_10_cpu_us"] = round((cpu_seconds(app.pid) - before) / polls * 1e6, 1)
    log(
        f"  {len(ids):>6} stories: update {out['update_story']['cpu_ms_per_command']:.2f} ms CPU "
        f"(p50 {out['update_story']['latency_ms_p50']} / "
        f"p99 {out['update_story']['latency_ms_p99']} ms, "
        f"WAL {out['update_story'].get('wal_bytes_per_command_median', '-')} B), "
        f"move {out['move_story']['cpu_ms_per_command']:.2f} ms, "
        f"snapshot {out['snapshot_after_change_cpu_ms']} / {out['snapshot_unchanged_cpu_ms']} ms, "
        f"poll10 {out['events_10_cpu_us']} us"
    )
    return out


def spread_run(
    base: str, token: str, server_pid: int, pids: list[int], seconds: float
) -> dict[str, Any]:
    """wrk: update_story on random projects among ``pids``, 32 connections."""
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    script.write_text(SPREAD_LUA.replace("{PIDS}", "{" + ",".join(map(str, pids)) + "}"))
    auth = {"Authorization": f"Bearer {token}"}
    wrk(base + "/", auth, min(2, seconds), 32, str(script))  # warm up
    before = cpu_seconds(server_pid)
    parsed = parse_wrk(wrk(base + "/", auth, seconds, 32, str(script)))
    used = cpu_seconds(server_pid) - before
    parsed["cpu_us_per_command"] = round(used / max(parsed["requests"], 1) * 1e6, 1)
    parsed["commands_per_cpu_second"] = round(parsed["requests"] / max(used, 1e-9))
    return parsed


def run_store(
    store: str, sizes: list[int], commands: int, seconds: float, spread: int
) -> dict[str, Any]:
    db_url, pg = database(store)
    rng = random.Random(7)
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url}
    env.pop("REDIS_URL", None)
    wal = Wal(None if store == "sqlite" else db_url)
    try:
        tidings_cli("users", "add", "bench@x.io", "Bench", "--password", "password1", env=env)
        token = tidings_cli("tokens", "create", "bench@x.io", env=env)
        t0 = time.monotonic()
        seeded = asyncio.run(_seed(db_url, "bench@x.io", sizes, spread))
        log(f"{store}: seeded {sum(sizes) + spread} stories in {time.monotonic() - t0:.0f} s")
        result: dict[str, Any] = {"sizes": {}, "floor": {}}
        app = Process("app", env, 0, [])
        try:
            headers = {"Authorization": f"Bearer {token}"}
            with httpx.Client(base_url=app.base, headers=headers, timeout=60) as http:
                for size in sizes:
                    pid = seeded["sizes"][size]
                    result["sizes"][str(size)] = measure_size(http, app, pid, commands, wal, rng)
            result["spread"] = spread_run(app.base, token, app.pid, seeded["spread"], seconds)
            log(
                f"  app, {spread} projects: {result['spread']['rps']:.0f} commands/s, "
                f"{result['spread']['cpu_us_per_command']} us CPU each"
            )
        finally:
            app.stop()
        result["rebuild_s"] = asyncio.run(_rebuild_times(db_url, seeded["sizes"]))
        log(f"  rebuild seconds by size: {result['rebuild_s']}")
        floor = Floor(db_url, token, seeded["user_id"], 0)
        try:
            with httpx.Client(
                base_url=floor.base, headers={"Authorization": f"Bearer {token}"}, timeout=60
            ) as http:
                for size in sizes:
                    pid = seeded["sizes"][size]
                    ids = list(range(1, size + 1))
                    bodies = [
                        {"type": "update_story", "story_id": rng.choice(ids), "title": f"floor {n}"}
                        for n in range(commands)
                    ]
                    result["floor"][str(size)] = timed_commands(http, pid, floor.pid, bodies, wal)
                    cpu = result["floor"][str(size)]["cpu_ms_per_command"]
                    log(f"  floor {size:>6} stories: {cpu:.2f} ms CPU")
            result["floor_spread"] = spread_run(
                floor.base, token, floor.pid, seeded["spread"], seconds
            )
            log(
                f"  floor, {spread} projects: {result['floor_spread']['rps']:.0f} commands/s, "
                f"{result['floor_spread']['cpu_us_per_command']} us CPU each"
            )
        finally:
            floor.stop()
        return result
    finally:
        wal.close()
        if pg is not None:
            pg.stop()


def ratio(a: float, b: float) -> float | None:
    """a / b; None when b measured zero (a run too short for /proc's 10 ms ticks)."""
    return round(a / b, 2) if b else None


def ratios(data: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for store, r in data["stores"].items():
        sizes = list(r["sizes"])
        small, large = r["sizes"][sizes[0]], r["sizes"][sizes[-1]]
        cpu = {s: r["sizes"][s]["update_story"]["cpu_ms_per_command"] for s in sizes}
        wal = [r["sizes"][s]["update_story"].get("wal_bytes_per_command_median") for s in sizes] + [
            r["sizes"][s]["move_story"].get("wal_bytes_per_command_median") for s in sizes
        ]
        out[store] = {
            "update_cpu_largest_vs_smallest": ratio(cpu[sizes[-1]], cpu[sizes[0]]),
            "move_cpu_largest_vs_smallest": ratio(
                large["move_story"]["cpu_ms_per_command"],
                small["move_story"]["cpu_ms_per_command"],
            ),
            "update_cpu_vs_floor_sequential": {
                s: ratio(cpu[s], r["floor"][s]["cpu_ms_per_command"]) for s in sizes
            },
            "cpu_vs_floor_under_load": ratio(
                r["spread"]["cpu_us_per_command"], r["floor_spread"]["cpu_us_per_command"]
            ),
            "commands_per_app_core_second": r["spread"]["commands_per_cpu_second"],
            "max_snapshot_after_change_cpu_ms": max(
                r["sizes"][s]["snapshot_after_change_cpu_ms"] for s in sizes
            ),
        }
        if all(w is not None for w in wal):
            out[store]["max_wal_bytes_per_command"] = max(wal)
    return out


def plot(data: dict[str, Any], path: Path) -> None:
    plt = pyplot()

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for store, r in data["stores"].items():
        sizes = [int(s) for s in r["sizes"]]
        axes[0].plot(
            sizes,
            [r["sizes"][str(s)]["update_story"]["cpu_ms_per_command"] for s in sizes],
            "o-",
            label=f"{store} update_story",
        )
        axes[0].plot(
            sizes,
            [r["sizes"][str(s)]["move_story"]["cpu_ms_per_command"] for s in sizes],
            "s--",
            label=f"{store} move_story",
        )
        axes[0].plot(
            sizes,
            [r["floor"][str(s)]["cpu_ms_per_command"] for s in sizes],
            "k:",
            marker="x",
            label=f"{store} floor",
        )
        axes[1].plot(
            sizes,
            [r["sizes"][str(s)]["update_story"]["latency_ms_p99"] for s in sizes],
            "o-",
            label=f"{store} p99",
        )
        axes[1].plot(
            sizes,
            [r["sizes"][str(s)]["update_story"]["latency_ms_p50"] for s in sizes],
            "s--",
            label=f"{store} p50",
        )
        axes[2].plot(
            sizes,
            [r["sizes"][str(s)]["snapshot_after_change_cpu_ms"] for s in sizes],
            "o-",
            label=f"{store} snapshot after a change",
        )
        axes[2].plot(
            sizes,
            [r["sizes"][str(s)]["snapshot_unchanged_cpu_ms"] for s in sizes],
            "s--",
            label=f"{store} snapshot unchanged",
        )
    for ax, title in zip(
        axes,
        ("app CPU per command, ms", "command latency, ms", "app CPU per snapshot GET, ms"),
        strict=True,
    ):
        ax.set_xscale("log")
        ax.set_xlabel("stories in the project")
        ax.set_title(title)
        ax.legend(fontsize=7)
    fig.suptitle("tidings write path by project size (app pinned to one core)")
    finish(fig, path)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="10,1000,5000,10000")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--commands", type=int, default=200, help="timed commands per size")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of the wrk run")
    parser.add_argument(
        "--spread", type=int, default=SPREAD, help="one-story projects of the wrk run"
    )
    parser.add_argument("--out", type=Path, default=RESULTS / "write_path")
    parser.add_argument("--serve-floor", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--floor-port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--floor-token", default="", help=argparse.SUPPRESS)
    parser.add_argument("--floor-user", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_floor:
        serve_floor(args.serve_floor, args.floor_port, args.floor_token, args.floor_user)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")]
    data: dict[str, Any] = {
        "benchmark": "write_path",
        "machine": describe(),
        "sizes": sizes,
        "commands_per_size": args.commands,
        "seeding": "in-process EventStore.execute (the API's command path without HTTP)",
        "stores": {},
    }
    for store in args.stores.split(","):
        log(f"{store}: seeding {sizes} and {args.spread} one-story projects")
        data["stores"][store] = run_store(store, sizes, args.commands, args.duration, args.spread)
    data["ratios"] = ratios(data)
    print("\nratios:")
    for store, r in data["ratios"].items():
        print(f"  {store}: {r}")
    save(data, args.out, plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
