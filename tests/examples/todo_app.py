"""The example to-do app (examples/flask-todo) as a real process, for its tests;
``tidings push`` through the suite's harness (tidings.testing).

The app's directory is not a package: the tests run ``todo.py`` as its own
operators do, and talk to it over HTTP only.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tidings.testing.processes import free_port, stop_popen, tidings_process
from tidings.testing.stack import PushServer
from tidings.testing.waiting import wait_http_ok

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "flask-todo"

#: Bound on the app's start-up (imports take seconds on a busy 2-core machine).
START_TIMEOUT = 30.0


def todo_cli(app_dir: Path, env: dict[str, str], *args: str) -> str:
    """Run ``todo.py ARGS`` to completion; its stdout, stripped."""
    out = subprocess.run(
        [sys.executable, str(app_dir / "todo.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


@dataclass
class TodoApp:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10.0
        )


@contextmanager
def running_app(app_dir: Path, env: dict[str, str], workdir: Path) -> Iterator[TodoApp]:
    """``todo.py serve`` on a free port until the block ends."""
    port = free_port()
    log = workdir / f"todo-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(app_dir / "todo.py"), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    app = TodoApp(f"http://127.0.0.1:{port}", proc, log)
    try:
        wait_http_ok(f"{app.url}/", proc, time.monotonic() + START_TIMEOUT, app.output)
        yield app
    finally:
        stop_popen(proc)


def push_server(name: str, port: int, env: dict[str, str], workdir: Path) -> PushServer:
    """``tidings push`` (not started) on a port it may share with others (``--reuse-port``)."""
    args = ["push", "--host", "127.0.0.1", "--port", str(port), "--reuse-port"]
    return PushServer(
        tidings_process(name, args, env, workdir / f"{name}.log"), f"http://127.0.0.1:{port}"
    )


def exercise_polling_api(app: TodoApp, token: str) -> int:
    """What the app's pages and scripts have always done, checked; the list's id.

    Every step of docs/ADOPTING.md must keep this working: pages loaded before a
    deploy go on polling ``/changes`` until they are reloaded.
    """
    with app.client(token) as http:
        r = http.post("/api/lists", json={"name": "Groceries"})
        assert r.status_code == 201, r.text
        list_id = int(r.json()["id"])
        start = http.get(f"/api/lists/{list_id}").json()
        assert start["name"] == "Groceries" and start["items"] == []
        since = start["now"]
        ids = []
        for text in ("milk", "eggs", "bread"):
            r = http.post(f"/api/lists/{list_id}/items", json={"text": text})
            assert r.status_code == 201, r.text
            ids.append(int(r.json()["id"]))
        assert http.patch(f"/api/items/{ids[0]}", json={"done": True}).status_code == 200
        assert http.delete(f"/api/items/{ids[1]}").status_code == 204
        changed: dict[int, dict[str, Any]] = {
            item["id"]: item
            for item in http.get(f"/api/lists/{list_id}/changes", params={"since": since}).json()[
                "items"
            ]
        }
        assert set(changed) == set(ids), changed
        assert changed[ids[0]]["done"] is True and changed[ids[1]]["deleted"] is True
        items = http.get(f"/api/lists/{list_id}").json()["items"]
        assert [(i["text"], i["done"]) for i in items] == [("milk", True), ("bread", False)]
        # Bad input: 4xx with a JSON body saying what was wrong.
        r = http.post(f"/api/lists/{list_id}/items", json={"text": ""})
        assert r.status_code == 422 and r.json()["error"] == "invalid"
        r = http.post(f"/api/lists/{list_id}/items", content=b"milk")
        assert r.status_code == 415 and "JSON" in r.json()["detail"]
        assert http.get("/api/lists/999999").status_code == 404
        r = http.post(f"/api/lists/{list_id}/items", json={"text": "x" * 70_000})
        assert r.status_code == 413 and r.json()["error"] == "too_large"
    with httpx.Client(base_url=app.url, timeout=10.0) as anonymous:
        r = anonymous.get(f"/api/lists/{list_id}")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    return list_id
