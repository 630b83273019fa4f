"""The converted to-do app with its Redis unreachable (connections accepted,
never answered): writes and polls go on as before, because pokes are published
by a thread of their own (docs/ADOPTING.md, step 3), and clients would find
every change by polling."""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

from tests.examples.todo_app import EXAMPLE, running_app, todo_cli
from tidings.broker.redis_publisher import SOCKET_TIMEOUT
from tidings.publish import Retry


def test_writes_do_not_wait_on_an_unreachable_redis(tmp_path: Path) -> None:
    # A listener that never accepts: the kernel completes each connection into the
    # backlog and nothing ever answers, as with a Redis behind a dead network path.
    with socket.socket() as black_hole:
        black_hole.bind(("127.0.0.1", 0))
        black_hole.listen(64)
        port = black_hole.getsockname()[1]
        env = {
            **os.environ,
            "TODO_DB": str(tmp_path / "todo.sqlite3"),
            "TIDINGS_PUSH_KEYS": f"ex:{secrets.token_urlsafe(48)}",
            "REDIS_URL": f"redis://127.0.0.1:{port}/0",
            "TIDINGS_PUSH_URL": "http://127.0.0.1:1",
        }
        token = todo_cli(EXAMPLE, env, "add-user", "ada")
        with running_app(EXAMPLE, env, tmp_path) as app, app.client(token) as http:
            list_id = http.post("/api/lists", json={"name": "Groceries"}).json()["id"]
            for text in ("milk", "eggs", "bread"):
                started = time.monotonic()
                r = http.post(f"/api/lists/{list_id}/items", json={"text": text})
                took = time.monotonic() - started
                assert r.status_code == 201, r.text
                # Publishing in the request would wait out a Redis timeout per attempt.
                assert took < Retry().attempts * SOCKET_TIMEOUT, f"a write took {took:.2f} s"
            answer = http.get(f"/api/lists/{list_id}/events", params={"since": 1}).json()
            assert [e["data"]["text"] for e in answer["events"]] == ["milk", "eggs", "bread"]
