"""docs/ADOPTING.md's diffs are the example's history: undone from the converted
app (examples/flask-todo), last first, they lead back to the app that only
polled; redone one by one on the same database, the app works after each.

Each state runs as a real process on one SQLite file, beside the state before
it, as a rolling deploy would: the pages of every earlier state keep polling
``/changes`` on either, and each step's own addition is checked once it is
there. Redis is a server of the test's own: the app's heartbeat saying push is
off would degrade every push server on a shared one.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import redis

from tests.examples.todo_app import EXAMPLE, TodoApp, exercise_polling_api, running_app, todo_cli
from tidings.protocol.advice import ADVICE_HEADER
from tidings.protocol.channels import project_channel, version_key
from tidings.protocol.tokens import KeyRing, verify_push_token

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "ADOPTING.md"
STEP_HEADING = re.compile(r"^## Step (\d+)\b", re.MULTILINE)
DIFF_BLOCK = re.compile(r"^```diff\n(.*?)^```$", re.MULTILINE | re.DOTALL)

#: The steps the doc walks through, in order.
STEPS = 6


def doc_steps() -> list[list[str]]:
    """The diff blocks under each ``## Step N`` heading, steps in order."""
    text = DOC.read_text()
    headings = list(STEP_HEADING.finditer(text))
    assert [int(h.group(1)) for h in headings] == list(range(1, STEPS + 1)), headings
    steps = []
    for n, heading in enumerate(headings):
        end = headings[n + 1].start() if n + 1 < len(headings) else len(text)
        steps.append(DIFF_BLOCK.findall(text, heading.end(), end))
    return steps


def git_apply(root: Path, diff: str, *, reverse: bool = False) -> None:
    args = ["git", "apply", "--whitespace=nowarn", *(["-R"] if reverse else []), "-"]
    out = subprocess.run(args, cwd=root, input=diff, capture_output=True, text=True)
    assert out.returncode == 0, f"{'un' if reverse else ''}applying failed: {out.stderr}\n{diff}"


def test_every_step_has_a_diff_and_they_touch_only_the_example() -> None:
    for n, diffs in enumerate(doc_steps(), 1):
        assert diffs or n == 2, f"step {n} shows no diff"
        for diff in diffs:
            for path in re.findall(r"^(?:---|\+\+\+) [ab]/(\S+)", diff, re.MULTILINE):
                assert path.startswith("examples/flask-todo/"), path


def test_undoing_the_steps_leads_to_the_polling_app_and_each_step_keeps_it_working(
    tmp_path: Path, own_redis: str
) -> None:
    steps = doc_steps()
    root = tmp_path / "repo"
    app_dir = root / "examples" / "flask-todo"
    shutil.copytree(EXAMPLE, app_dir, ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3*"))
    for diffs in reversed(steps):
        for diff in reversed(diffs):
            git_apply(root, diff, reverse=True)
    start = (app_dir / "todo.py").read_text()
    assert "version" not in start and "tidings" not in start, "step 0 already knows versions"

    keys = f"ex{secrets.token_hex(4)}:{secrets.token_urlsafe(48)}"
    db = tmp_path / "todo.sqlite3"
    env = {
        **os.environ,
        "TODO_DB": str(db),
        "TIDINGS_PUSH_KEYS": keys,
        "REDIS_URL": own_redis,
        "TIDINGS_PUSH_URL": "http://127.0.0.1:1",
    }
    token = todo_cli(app_dir, env, "add-user", "ada")
    with contextlib.ExitStack() as running:
        previous: TodoApp | None = None
        for n in range(STEPS + 1):
            if n:
                for diff in steps[n - 1]:
                    git_apply(root, diff)
            # Each state deploys from a folder of its own, as a rolling deploy does.
            deployed = tmp_path / f"state{n}"
            shutil.copytree(app_dir, deployed)
            stop = contextlib.ExitStack()
            app = stop.enter_context(running_app(deployed, env, tmp_path))
            list_id = exercise_polling_api(app, token)
            for step, check in CHECKS.items():
                if n >= step:
                    check(app, token, list_id, env | {"APP_DIR": str(deployed)})
            if previous is not None:
                # The state before, still running beside it on the migrated database,
                # still serves its pages.
                exercise_polling_api(previous, token)
                running.close()
            running.push(stop)
            previous = app
    for path in EXAMPLE.rglob("*"):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".sqlite3":
            redone = app_dir / path.relative_to(EXAMPLE)
            assert redone.read_bytes() == path.read_bytes(), f"{path.name} differs once redone"


def check_events(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 1: the events since any version replay to the list as it stands."""
    with app.client(token) as http:
        snapshot = http.get(f"/api/lists/{list_id}").json()
        answer = http.get(f"/api/lists/{list_id}/events", params={"since": 0}).json()
        assert [e["version"] for e in answer["events"]] == list(range(1, snapshot["version"] + 1))
        assert answer["version"] == snapshot["version"] and answer["has_more"] is False
        items: dict[int, str] = {}
        for event in answer["events"]:
            if event["type"] in ("item_added", "item_updated"):
                items[event["data"]["id"]] = event["data"]["text"]
            elif event["type"] == "item_deleted":
                del items[event["data"]["id"]]
        assert items == {i["id"]: i["text"] for i in snapshot["items"]}
        page = http.get(f"/api/lists/{list_id}/events", params={"since": 1, "limit": 2}).json()
        assert [e["version"] for e in page["events"]] == [2, 3] and page["has_more"] is True
        ahead = http.get(f"/api/lists/{list_id}/events", params={"since": 10**6}).json()
        assert ahead["reload"] == "ahead" and ahead["events"] == []
        r = http.get(f"/api/lists/{list_id}/events", params={"since": "x"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"


def check_push_token(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 2: the app signs push tokens that push servers verify."""
    with app.client(token) as http:
        r = http.post("/api/push/token", json={"projects": [list_id, 2**50]})
        assert r.status_code == 200, r.text
        body = r.json()
        claims = verify_push_token(KeyRing.parse(env["TIDINGS_PUSH_KEYS"]), body["token"])
        assert claims.projects == {list_id} and body["projects"] == [list_id]
        r = http.post("/api/push/token", json={"projects": "all"})
        assert r.status_code == 422 and r.json()["error"] == "invalid"


def check_version_key(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 3: after each commit the list's poke is published, its version key first."""
    with redis.Redis.from_url(env["REDIS_URL"]) as r, r.pubsub() as sub:
        sub.subscribe(project_channel(list_id))
        assert sub.get_message(timeout=5.0) is not None, "no SUBSCRIBE confirmation"
        with app.client(token) as http:
            r_add = http.post(f"/api/lists/{list_id}/items", json={"text": "jam"})
            assert r_add.status_code == 201, r_add.text
            version = http.get(f"/api/lists/{list_id}").json()["version"]
        deadline = time.monotonic() + 5.0
        poke = None
        while poke is None and time.monotonic() < deadline:
            message = sub.get_message(timeout=deadline - time.monotonic())
            # Earlier pokes of the list may still be on their way: the one of this commit.
            if message is not None and message["type"] == "message":
                body = orjson.loads(message["data"])
                poke = body if body["version"] == version else None
        assert poke is not None, f"no poke of version {version} within 5 s of the commit"
        assert (poke["type"], poke["project"]) == ("poke", list_id)
        assert r.get(version_key(list_id)) == str(version).encode()


def check_advice(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 4: the client config and every poll answer carry the advice."""
    with app.client(token) as http:
        config = http.get("/api/client-config").json()
        assert config["push"]["urls"]["ws"].endswith("/ws")
        assert config["advice"]["push"] is True
        r = http.get(f"/api/lists/{list_id}/events", params={"since": 0})
        assert r.json()["advice"]["push"] is True and r.headers[ADVICE_HEADER].startswith("push=1")
        assert http.get("/vendor/tidings-client/tidings-client.js").status_code == 200


def check_kill_switch(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 5: ``todo.py push off`` turns push off in the next poll answer, ``on`` back on."""
    with app.client(token) as http:
        todo_cli(Path(env["APP_DIR"]), env, "push", "off")
        r = http.get(f"/api/lists/{list_id}/events", params={"since": 0})
        assert r.json()["advice"]["push"] is False and r.headers[ADVICE_HEADER].startswith("push=0")
        todo_cli(Path(env["APP_DIR"]), env, "push", "on")
        assert http.get("/api/client-config").json()["advice"]["push"] is True


def check_telemetry(app: TodoApp, token: str, list_id: int, env: dict[str, str]) -> None:
    """Step 6: clients' freshness reports add up in /api/freshness."""
    report = {
        "samples": [{"project": list_id, "staleness_ms": ms, "via": "poke"} for ms in (90, 120)],
        "missed_pokes": 0,
        "polls": 2,
    }
    with app.client(token) as http:
        assert http.post("/api/telemetry", json=report).status_code == 204
        r = http.post("/api/telemetry", json={"samples": "many"})
        assert r.status_code == 400 and r.json()["error"] == "bad_request"
        stats = http.get("/api/freshness").json()
        assert stats["via"]["poke"]["count"] == 2 and stats["polls"] == 2
        assert stats["via"]["poke"]["p50_ms"] == 120


CHECKS: dict[int, Callable[[TodoApp, str, int, dict[str, str]], None]] = {
    1: check_events,
    2: check_push_token,
    3: check_version_key,
    4: check_advice,
    5: check_kill_switch,
    6: check_telemetry,
}
