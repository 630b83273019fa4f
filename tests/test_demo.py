"""``tidings demo`` end to end: the README's main job, as a user runs it.

A real demo process (SQLite, in-process broker, app and push server), a browser
session over HTTP, a real WebSocket client: a change made by one user reaches
another user's push connection as a poke, and the poll then returns it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import free_port
from tidings.app.seed import DEMO_PASSWORD
from tidings.testing.processes import tidings_argv
from tidings.testing.waiting import wait_http_ok


@pytest.fixture(params=["embedded", "postgres+redis"])
def demo(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[tuple[str, str, subprocess.Popen[bytes]]]:
    """The demo as shipped (SQLite, in-process broker, one process), and pointed at
    PostgreSQL and Redis with two separate push processes sharing one port."""
    port, push_port = free_port(), free_port()
    command = tidings_argv("demo", "--port", str(port), "--push-port", str(push_port))
    if request.param == "embedded":
        command += ["--db", str(tmp_path / "demo.sqlite3")]
    else:
        postgres, redis = (
            request.getfixturevalue("postgres_url"),
            request.getfixturevalue("redis_url"),
        )
        command += ["--db", postgres, "--redis-url", redis]
    log = tmp_path / "demo.log"
    with log.open("wb") as out:
        # Its own process group: the push processes it starts go with it at the end.
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        wait_http_ok(f"{base}/healthz", proc, deadline, log.read_text)
        if request.param == "embedded":
            wait_http_ok(f"http://127.0.0.1:{push_port}/readyz", proc, deadline, log.read_text)
        else:
            # The app serves only once every push process is ready: whichever one
            # a connection reaches (they share the port) answers ready.
            assert push_processes_ready(push_port) == 2, log.read_text()
        yield base, f"ws://127.0.0.1:{push_port}/ws", proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        finally:
            # Whatever the demo left running (it stops its push processes itself
            # on SIGTERM; this is for a demo that failed to).
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        # 0: it stopped its push processes and exited (killed by the signal, it
        # would have left them running).
        assert proc.returncode == 0, (
            f"the demo did not exit cleanly on SIGTERM: {proc.returncode}\n{log.read_text()}"
        )


def push_processes_ready(port: int, tries: int = 40) -> int:
    """Distinct push processes seen answering ready, each try on a new connection;
    fails on the first that is not ready."""
    seen: set[str] = set()
    for _ in range(tries):
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert r.status_code == 200 and r.json()["status"] == "ok", r.text
        seen.add(r.json()["server"])
    return len(seen)


async def sign_in(base: str, email: str) -> tuple[httpx.AsyncClient, dict[str, str]]:
    http = httpx.AsyncClient(base_url=base, timeout=10)
    r = await http.post("/api/session", json={"email": email, "password": DEMO_PASSWORD})
    assert r.status_code == 200, r.text
    return http, {"X-Tidings-CSRF": r.json()["csrf_token"]}


async def test_a_change_reaches_another_user_by_poke_then_poll(
    demo: tuple[str, str, subprocess.Popen[bytes]],
) -> None:
    base, ws_url, _proc = demo
    grace, grace_csrf = await sign_in(base, "grace@example.com")
    ada, ada_csrf = await sign_in(base, "ada@example.com")
    try:
        project = (await grace.get("/api/me")).json()["projects"][0]
        pid, version = project["id"], project["version"]
        token = (await grace.post("/api/push/token", headers=grace_csrf)).json()["token"]
        config = (await grace.get("/api/client-config")).json()
        assert config["push"]["urls"]["ws"].endswith("/ws")
        async with websockets.connect(ws_url) as ws:
            await ws.send(
                json.dumps({"type": "subscribe", "token": token, "projects": {str(pid): version}})
            )
            hello = json.loads(await asyncio.wait_for(ws.recv(), 5))
            assert hello["type"] == "subscribed" and hello["state"] == "ok"
            sent = time.monotonic()
            r = await ada.post(
                f"/api/projects/{pid}/commands",
                json={"command": {"type": "create_story", "title": "Made by Ada"}},
                headers=ada_csrf,
            )
            assert r.status_code == 200, r.text
            while True:
                message = json.loads(await asyncio.wait_for(ws.recv(), 5))
                if message["type"] == "poke":
                    break
            assert message["project"] == pid and message["version"] == version + 1
            assert time.monotonic() - sent < 1.0
        polled = (await grace.get(f"/api/projects/{pid}/events?since={version}")).json()
        assert [e["data"]["story"]["title"] for e in polled["events"]] == ["Made by Ada"]
        # The viewer reads but cannot write.
        linus, linus_csrf = await sign_in(base, "linus@example.com")
        r = await linus.post(
            f"/api/projects/{pid}/commands",
            json={"command": {"type": "create_story", "title": "nope"}},
            headers=linus_csrf,
        )
        assert r.status_code == 403
        await linus.aclose()
    finally:
        await grace.aclose()
        await ada.aclose()
