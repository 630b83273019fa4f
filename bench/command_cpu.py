"""A command's CPU in one process, without sockets: the app's ASGI stack beside
the write-path floor's, on the same SQLite (or PostgreSQL) projects.

``bench/write_path.py`` measures the same thing under wrk, through uvicorn and
the kernel, where a single run moves by about 10%: too much to see a change of
a few microseconds. Here both ASGI apps are called directly, in alternating
rounds, with the same requests (``update_story`` on random one-story projects,
as wrk sends them), and the process's CPU (``time.process_time``, the
checkpoint thread included) is divided by the commands. What is left out is
what both servers share: uvicorn's HTTP parsing and writing and the sockets.
After each command the loop runs once, so the app's poke worker publishes as
it does under load.

    .venv/bin/python bench/command_cpu.py [--store sqlite|postgres] [--rounds 7] [--commands 2000]
    .venv/bin/python bench/command_cpu.py --profile      # cProfile of the app's rounds, top 40

Prints each round, the medians and the ratio; writes bench/results/command_cpu.json
and .png with the machine it ran on.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import os
import pstats
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from lib.stack import database, log, tidings_cli
from machine import describe
from report import finish, pyplot, save
from write_path import _seed, floor_app

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

#: One-story projects the commands are spread over (write_path.py's wrk run: 8).
PROJECTS = 8

Asgi = Callable[[dict[str, Any], Any, Any], Awaitable[None]]

_TITLES = itertools.count(1)


class Requests:
    """The same ``update_story`` requests for both apps, as wrk's script makes them."""

    def __init__(self, token: str, pids: list[int], seed: int) -> None:
        self.auth = f"Bearer {token}".encode()
        self.pids = pids
        self.rng = random.Random(seed)

    def next(self) -> tuple[dict[str, Any], bytes]:
        pid = self.rng.choice(self.pids)
        # Titles never repeat in a run: an update that changes nothing is refused.
        body = b'{"command": {"type": "update_story", "story_id": 1, "title": "t %d"}}' % next(
            _TITLES
        )
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": f"/api/projects/{pid}/commands",
            "raw_path": f"/api/projects/{pid}/commands".encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [
                (b"host", b"127.0.0.1:8000"),
                (b"authorization", self.auth),
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
            "client": ("127.0.0.1", 40000),
            "server": ("127.0.0.1", 8000),
            "state": {},
        }
        return scope, body


async def call(app: Asgi, scope: dict[str, Any], body: bytes) -> int:
    """One request through ``app``; its status (and, past 299, its body on stderr)."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = int(sent[0]["status"])
    if status > 299:
        print(sent[-1].get("body", b"")[:500], file=sys.stderr)
    return status


async def run_round(app: Asgi, requests: Requests, commands: int) -> tuple[float, float]:
    """CPU microseconds per command over ``commands`` requests: the process's
    (checkpoint thread included) and the event loop's thread's alone."""
    loop_once = asyncio.sleep
    started, started_thread = time.process_time(), time.thread_time()
    for _ in range(commands):
        scope, body = requests.next()
        status = await call(app, scope, body)
        if status != 200:
            raise RuntimeError(f"command answered {status}")
        await loop_once(0)
    process = (time.process_time() - started) / commands * 1e6
    return process, (time.thread_time() - started_thread) / commands * 1e6


class Lifespan:
    """An ASGI app's startup and shutdown, driven by hand."""

    def __init__(self, app: Asgi) -> None:
        self.app = app
        self.to_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.from_app: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.to_app.get, self.from_app.put))
        await self.to_app.put({"type": "lifespan.startup"})
        message = await asyncio.wait_for(self.from_app.get(), 60)
        if message["type"] != "lifespan.startup.complete":
            raise RuntimeError(f"startup failed: {message}")

    async def stop(self) -> None:
        await self.to_app.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(self.from_app.get(), 60)
        if self.task is not None:
            await asyncio.wait_for(self.task, 60)


async def measure(args: argparse.Namespace, db_url: str, token: str) -> dict[str, Any]:
    from tidings.app.main import create_app
    from tidings.app.settings import AppSettings

    seeded = await _seed(db_url, "bench@x.io", [], PROJECTS)
    pids = seeded["spread"]
    app = create_app(AppSettings.from_env(freeze_heap=True))
    floor = floor_app(db_url, token, seeded["user_id"])
    lifespans = [Lifespan(app), Lifespan(floor)]
    for lifespan in lifespans:
        await lifespan.start()
    rounds: dict[str, list[float]] = {"app": [], "floor": []}
    loop_thread: dict[str, list[float]] = {"app": [], "floor": []}
    try:
        targets: dict[str, Asgi] = {"app": app, "floor": floor}
        for target in targets.values():  # warm up both
            await run_round(target, Requests(token, pids, 1), args.commands // 4)
        profiler = cProfile.Profile() if args.profile else None
        for n in range(args.rounds):
            for name, target in targets.items():
                requests = Requests(token, pids, 100 + n)
                if profiler is not None and name == "app":
                    profiler.enable()
                us, thread_us = await run_round(target, requests, args.commands)
                if profiler is not None and name == "app":
                    profiler.disable()
                rounds[name].append(round(us, 1))
                loop_thread[name].append(round(thread_us, 1))
            log(
                f"round {n + 1}: app {rounds['app'][-1]} us "
                f"({loop_thread['app'][-1]} on the loop), "
                f"floor {rounds['floor'][-1]} us ({loop_thread['floor'][-1]})"
            )
        if profiler is not None:
            stats = pstats.Stats(profiler)
            stats.sort_stats("tottime").print_stats(40)
            calls = sum(s[1] for s in stats.stats.values())  # type: ignore[attr-defined]
            log(f"calls per command: {calls / args.commands / args.rounds:.0f}")
    finally:
        for lifespan in lifespans:
            await lifespan.stop()
    app_us, floor_us = statistics.median(rounds["app"]), statistics.median(rounds["floor"])
    per_round = [round(a / f, 2) for a, f in zip(rounds["app"], rounds["floor"], strict=True)]
    return {
        "rounds": rounds,
        "loop_thread_rounds": loop_thread,
        "app_loop_thread_us": statistics.median(loop_thread["app"]),
        "floor_loop_thread_us": statistics.median(loop_thread["floor"]),
        "app_us_min": min(rounds["app"]),
        "floor_us_min": min(rounds["floor"]),
        "app_us": app_us,
        "floor_us": floor_us,
        "ratio": round(app_us / floor_us, 2),
        "ratio_per_round": per_round,
    }


def plot(result: dict[str, Any], out: Path) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for name, values in result["rounds"].items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("round")
    ax.set_ylabel("CPU per command, us (in-process)")
    ax.set_ylim(bottom=0)
    ax.legend()
    title = f"update_story in-process ({result['store']}): app / floor = {result['ratio']}x"
    finish(fig, out, title, result["machine"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--commands", type=int, default=2000)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default=str(RESULTS / "command_cpu"))
    args = parser.parse_args()
    import uvloop

    machine = describe()
    db_url, pg = database(args.store)
    os.environ["TIDINGS_DATABASE_URL"] = db_url
    os.environ.pop("REDIS_URL", None)
    try:
        env = dict(os.environ)
        tidings_cli("users", "add", "bench@x.io", "Bench", "--password", "password1", env=env)
        token = tidings_cli("tokens", "create", "bench@x.io", env=env)
        result = uvloop.run(measure(args, db_url, token))
    finally:
        if pg is not None:
            pg.stop()
    print(
        f"\napp {result['app_us']} us, floor {result['floor_us']} us per command: "
        f"{result['ratio']}x (rounds {result['ratio_per_round']}); minimum app "
        f"{result['app_us_min']}, floor {result['floor_us_min']}; on the loop's thread app "
        f"{result['app_loop_thread_us']}, floor {result['floor_loop_thread_us']}"
    )
    result.update({"store": args.store, "commands": args.commands, "machine": machine})
    save(result, Path(args.out), plot)


if __name__ == "__main__":
    main()
