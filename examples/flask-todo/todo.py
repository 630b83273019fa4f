"""A small team to-do app: lists of items in SQLite, a JSON API and one HTML page.

Pages and scripts stay current with tidings' clients: a poke from the push
servers after each commit makes them poll ``GET /api/lists/<id>/events`` at
once (docs/ADOPTING.md); pages from before still poll ``/changes`` every 2 s.
Run it with ``python todo.py serve``; ``python todo.py add-user NAME`` prints a
user's API token.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import secrets
import signal
import sqlite3
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import tidings
from flask import Flask, Response, g, jsonify, request, send_from_directory
from tidings.protocol.errors import TidingsError
from tidings.protocol.telemetry import decode_report
from tidings.publish import (
    ADVICE_HEADER,
    Advice,
    Cadence,
    KeyRing,
    PublishFailed,
    PushFlags,
    PushPublisher,
    TokenTooLarge,
    advise,
    push_off_for_all,
    sign_push_token,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, token TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS lists (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY, list_id INTEGER NOT NULL REFERENCES lists (id),
    text TEXT NOT NULL, done INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0, updated_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS items_changed ON items (list_id, updated_at);
CREATE TABLE IF NOT EXISTS events (
    list_id INTEGER NOT NULL REFERENCES lists (id), version INTEGER NOT NULL,
    type TEXT NOT NULL, data TEXT NOT NULL, actor INTEGER NOT NULL, ts REAL NOT NULL,
    PRIMARY KEY (list_id, version));
CREATE TABLE IF NOT EXISTS push_flags (
    id INTEGER PRIMARY KEY CHECK (id = 1), enabled INTEGER NOT NULL,
    rollout_percent INTEGER NOT NULL CHECK (rollout_percent BETWEEN 0 AND 100));
INSERT OR IGNORE INTO push_flags VALUES (1, 1, 100);
"""

#: Longest list name and item text, in characters.
MAX_NAME = 200
MAX_TEXT = 500
#: Most events one poll answer carries (``limit``); the client asks again for the rest.
MAX_EVENTS = 500

app = Flask(__name__)
#: Largest request body; past it, 413.
app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
#: Shared with the push servers (kid:secret,...): the first key signs push tokens.
PUSH_KEYS = KeyRing.parse(os.environ["TIDINGS_PUSH_KEYS"])
#: Pokes go to Redis at REDIS_URL, where the push servers listen.
publisher = PushPublisher.connect()
#: Committed pokes waiting for the publishing thread; past 10,000 (Redis down a
#: long while) new ones are dropped and clients find those changes by polling.
pokes: queue.Queue[tuple[int, int, float]] = queue.Queue(maxsize=10_000)
#: The page's client library (or from npm: npm install tidings-client).
CLIENT_JS = Path(tidings.__file__).parent / "app" / "static" / "js" / "tidings-client"
#: Where browsers and scripts reach the push servers (behind one address).
PUSH_URL = os.environ["TIDINGS_PUSH_URL"]
#: Seconds between polls: the long one while push is healthy, a safety net for a
#: lost poke; the short one (what the app always polled at) otherwise.
CADENCE = Cadence(
    interval_push=float(os.environ.get("TODO_POLL_INTERVAL_PUSH", "60")),
    interval=float(os.environ.get("TODO_POLL_INTERVAL", "2")),
)


class Refused(Exception):
    """A request the app answers with a 4xx and a JSON body saying why."""

    def __init__(self, status: int, error: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.error, self.detail = status, error, detail


@app.errorhandler(Refused)
def refused(exc: Refused) -> tuple[Response, int]:
    return jsonify(error=exc.error, detail=exc.detail), exc.status


@app.errorhandler(404)
def not_found(_exc: Exception) -> tuple[Response, int]:
    return jsonify(error="not_found", detail="no such route"), 404


@app.errorhandler(413)
def too_large(_exc: Exception) -> tuple[Response, int]:
    return jsonify(error="too_large", detail="request bodies are at most 64 KiB"), 413


def db() -> sqlite3.Connection:
    """This request's connection (autocommit: each write names its own transaction)."""
    if "db" not in g:
        g.db = connect(app.config["DATABASE"])
    conn: sqlite3.Connection = g.db
    return conn


def connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


@contextmanager
def transaction(begin: str = "BEGIN IMMEDIATE") -> Iterator[sqlite3.Connection]:
    """One transaction; BEGIN IMMEDIATE makes concurrent writers queue, BEGIN
    alone gives a reader one consistent view."""
    conn = db()
    conn.execute(begin)
    g.pokes = []
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    # After the commit, never before: a client poked early would poll and find nothing.
    for poke in g.pop("pokes"):
        try:
            pokes.put_nowait(poke)
        except queue.Full:
            logging.getLogger("todo").warning("poke of list %d dropped", poke[0])


def publish_pokes() -> None:
    """The publishing thread, so that no request waits on Redis (a poke queued
    after a later one of its list finds the version key ahead, and is skipped)."""
    while True:
        list_id, version, ts = pokes.get()
        try:
            publisher.poke(list_id, version, ts=ts)
        except PublishFailed:
            # The change is committed; clients will find it by polling.
            logging.getLogger("todo").exception("poke of list %d lost", list_id)


@app.teardown_appcontext
def close_db(_exc: BaseException | None) -> None:
    conn = g.pop("db", None)
    if conn is not None:
        conn.close()


def current_user() -> int:
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    row = db().execute("SELECT id FROM users WHERE token = ?", (token,)).fetchone()
    if row is None:
        raise Refused(401, "unauthorized", "send Authorization: Bearer <your API token>")
    return int(row["id"])


def body() -> dict[str, Any]:
    data = request.get_json(silent=True)
    if not request.is_json or not isinstance(data, dict):
        raise Refused(415, "unsupported_media_type", "send a JSON object (application/json)")
    return data


def text_field(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not 1 <= len(value.strip()) <= limit:
        raise Refused(422, "invalid", f"{name}: a string of 1 to {limit} characters")
    return value.strip()


def int_arg(name: str, default: int, low: int, high: int = 2**53) -> int:
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        value = low - 1
    if not low <= value <= high:
        raise Refused(400, "bad_request", f"{name}: an integer from {low} to {high}")
    return value


def record(conn: sqlite3.Connection, list_id: int, kind: str, data: Any, actor: int) -> None:
    """Bump the list's version and append the event that made it, in the change's
    own transaction: the (list_id, version) key makes a gap or a duplicate impossible."""
    (version,) = conn.execute(
        "UPDATE lists SET version = version + 1 WHERE id = ? RETURNING version", (list_id,)
    ).fetchone()
    ts = time.time()
    conn.execute(
        "INSERT INTO events (list_id, version, type, data, actor, ts) VALUES (?, ?, ?, ?, ?, ?)",
        (list_id, version, kind, json.dumps(data), actor, ts),
    )
    g.pokes.append((list_id, version, ts))


def event_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "version": row["version"],
        "type": row["type"],
        "data": json.loads(row["data"]),
        "actor": row["actor"],
        "ts": row["ts"],
    }


def item_json(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "text": row["text"],
        "done": bool(row["done"]),
        "deleted": bool(row["deleted"]),
        "updated_at": row["updated_at"],
    }


def load_list(list_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = (
        db().execute("SELECT * FROM lists WHERE id = ?", (list_id,)).fetchone()
    )
    if row is None:
        raise Refused(404, "not_found", f"no list {list_id}")
    return row


def load_item(item_id: int) -> sqlite3.Row:
    row: sqlite3.Row | None = (
        db().execute("SELECT * FROM items WHERE id = ? AND NOT deleted", (item_id,)).fetchone()
    )
    if row is None:
        raise Refused(404, "not_found", f"no item {item_id}")
    return row


@app.get("/")
def page() -> Response:
    return app.send_static_file("index.html")


@app.get("/vendor/tidings-client/<path:name>")
def tidings_client(name: str) -> Response:
    """The npm package tidings-client, as it ships inside the Python package."""
    return send_from_directory(CLIENT_JS, name)


@app.post("/api/lists")
def create_list() -> tuple[Response, int]:
    user = current_user()
    name = text_field(body(), "name", MAX_NAME)
    with transaction() as conn:
        cur = conn.execute(
            "INSERT INTO lists (name, updated_at) VALUES (?, ?)", (name, time.time())
        )
        assert cur.lastrowid is not None
        record(conn, cur.lastrowid, "list_created", {"name": name}, user)
    return jsonify(id=cur.lastrowid, name=name), 201


@app.get("/api/lists/<int:list_id>")
def get_list(list_id: int) -> Response:
    current_user()
    now = time.time()
    with transaction("BEGIN") as conn:
        row = load_list(list_id)
        items = conn.execute(
            "SELECT * FROM items WHERE list_id = ? AND NOT deleted ORDER BY id", (list_id,)
        ).fetchall()
    return jsonify(
        id=row["id"],
        name=row["name"],
        version=row["version"],
        items=[item_json(i) for i in items],
        now=now,
    )


def push_flags(conn: sqlite3.Connection) -> PushFlags:
    """The kill switch and the rollout, read on every answer."""
    row = conn.execute("SELECT * FROM push_flags").fetchone()
    return PushFlags(enabled=bool(row["enabled"]), rollout_percent=row["rollout_percent"])


def push_off() -> bool:
    """Asked every second by the app's heartbeat: while it says push is off, push
    servers send their clients to the poll, and so to its advice, within seconds."""
    conn = connect(app.config["DATABASE"])
    try:
        return push_off_for_all(push_flags(conn))
    finally:
        conn.close()


def advice(user: int, list_id: int | None = None) -> Advice:
    """Push on or off for this user and list, and the cadence to poll at."""
    return advise(push_flags(db()), user, list_id, CADENCE)


@app.get("/api/client-config")
def client_config() -> Response:
    """What a client needs to start: where push is, and the advice until its first poll."""
    user = current_user()
    return jsonify(
        push={"urls": {"ws": f"{PUSH_URL}/ws", "sse": f"{PUSH_URL}/sse"}},
        advice=advice(user).to_json(),
    )


@app.get("/api/lists/<int:list_id>/events")
def events(list_id: int) -> Response:
    """The events after version ``since``, in order: docs/PROTOCOL.md §1.2's answer."""
    user = current_user()
    since = int_arg("since", 0, 0)
    limit = int_arg("limit", 100, 1, MAX_EVENTS)
    with transaction("BEGIN") as conn:
        version = load_list(list_id)["version"]
        rows = conn.execute(
            "SELECT * FROM events WHERE list_id = ? AND version > ? ORDER BY version LIMIT ?",
            (list_id, since, limit + 1),
        ).fetchall()
    advised = advice(user, list_id)
    response = jsonify(
        list=list_id,
        version=version,
        since=since,
        events=[event_json(r) for r in rows[:limit]],
        has_more=len(rows) > limit,
        # A client holding a version this list never had (a restored backup) starts over.
        reload="ahead" if since > version else None,
        advice=advised.to_json(),
    )
    response.headers[ADVICE_HEADER] = advised.header()
    return response


@app.get("/api/lists/<int:list_id>/changes")
def changes(list_id: int) -> Response:
    """The items changed after ``since`` (a time from an earlier answer), deleted ones too."""
    current_user()
    try:
        since = float(request.args.get("since", "0"))
    except ValueError:
        raise Refused(400, "bad_request", "since: a number (the `now` of an answer)") from None
    now = time.time()
    load_list(list_id)
    rows = db().execute(
        "SELECT * FROM items WHERE list_id = ? AND updated_at > ? ORDER BY updated_at",
        (list_id, since),
    )
    return jsonify(items=[item_json(r) for r in rows], now=now)


@app.post("/api/lists/<int:list_id>/items")
def add_item(list_id: int) -> tuple[Response, int]:
    user = current_user()
    text = text_field(body(), "text", MAX_TEXT)
    with transaction() as conn:
        load_list(list_id)
        cur = conn.execute(
            "INSERT INTO items (list_id, text, updated_at) VALUES (?, ?, ?)",
            (list_id, text, time.time()),
        )
        row = conn.execute("SELECT * FROM items WHERE id = ?", (cur.lastrowid,)).fetchone()
        record(conn, list_id, "item_added", item_json(row), user)
    return jsonify(item_json(row)), 201


@app.patch("/api/items/<int:item_id>")
def update_item(item_id: int) -> Response:
    user = current_user()
    data = body()
    with transaction() as conn:
        row = load_item(item_id)
        text = text_field(data, "text", MAX_TEXT) if "text" in data else row["text"]
        done = data.get("done", bool(row["done"]))
        if not isinstance(done, bool):
            raise Refused(422, "invalid", "done: true or false")
        conn.execute(
            "UPDATE items SET text = ?, done = ?, updated_at = ? WHERE id = ?",
            (text, done, time.time(), item_id),
        )
        row = conn.execute("SELECT * FROM items WHERE id = ?", (item_id,)).fetchone()
        record(conn, row["list_id"], "item_updated", item_json(row), user)
    return jsonify(item_json(row))


@app.delete("/api/items/<int:item_id>")
def delete_item(item_id: int) -> tuple[str, int]:
    """Kept as a tombstone, so that pollers see it go."""
    user = current_user()
    with transaction() as conn:
        row = load_item(item_id)
        conn.execute(
            "UPDATE items SET deleted = 1, updated_at = ? WHERE id = ?", (time.time(), item_id)
        )
        record(conn, row["list_id"], "item_deleted", {"id": item_id}, user)
    return "", 204


@app.post("/api/push/token")
def push_token() -> Response:
    """A push token naming the lists asked for that exist (every user may read every list)."""
    user = current_user()
    asked = body().get("projects")
    if not isinstance(asked, list) or not all(type(p) is int and p > 0 for p in asked):
        raise Refused(422, "invalid", "projects: a list of list ids")
    rows = db().execute(
        "SELECT id FROM lists WHERE id IN (SELECT value FROM json_each(?))", (json.dumps(asked),)
    )
    try:
        token, claims = sign_push_token(PUSH_KEYS, user, [r["id"] for r in rows])
    except TokenTooLarge as exc:
        raise Refused(422, "invalid", f"projects: {exc}") from None
    return jsonify(token=token, expires_at=claims.expires_at, projects=sorted(claims.projects))


#: The latest staleness samples (ms) by how the change came (poke, poll,
#: full_push), per process: 10,000 of each at most (about 1 MB in all).
freshness = {via: deque[int](maxlen=10_000) for via in ("poke", "poll", "full_push")}
counts: Counter[str] = Counter()
freshness_lock = threading.Lock()


@app.post("/api/telemetry")
def telemetry() -> tuple[str, int]:
    """A client's freshness report (docs/PROTOCOL.md §5.7)."""
    current_user()
    try:
        report = decode_report(request.get_data())
    except TidingsError as exc:
        raise Refused(exc.status, exc.code, exc.detail) from None
    with freshness_lock:
        for sample in report.samples:
            freshness[str(sample.via)].append(sample.staleness_ms)
        counts.update(
            missed_pokes=report.missed_pokes,
            polls=report.polls,
            pokes=report.pokes,
            poll_errors=report.poll_errors,
        )
    return "", 204


@app.get("/api/freshness")
def freshness_stats() -> Response:
    """How stale changes were when clients applied them: push works when nearly
    all come by poke, p99 within a second or two, and missed_pokes stays 0."""
    current_user()
    with freshness_lock:
        samples = {via: sorted(ms) for via, ms in freshness.items()}
        totals = dict(counts)
    by_via = {
        via: {"count": len(ms), "p50_ms": ms[len(ms) // 2], "p99_ms": ms[len(ms) * 99 // 100]}
        for via, ms in samples.items()
        if ms
    }
    return jsonify(via=by_via, **totals)


def add_user(name: str) -> str:
    token = secrets.token_urlsafe(24)
    conn = connect(app.config["DATABASE"])
    conn.execute("INSERT INTO users (name, token) VALUES (?, ?)", (name, token))
    conn.close()
    return token


def create_tables() -> None:
    conn = connect(app.config["DATABASE"])
    conn.executescript(SCHEMA)
    if "version" not in {c["name"] for c in conn.execute("PRAGMA table_info(lists)")}:
        conn.execute("ALTER TABLE lists ADD COLUMN version INTEGER NOT NULL DEFAULT 0")
    conn.close()


def set_push(setting: str) -> None:
    """``on``, ``off`` (the kill switch) or a rollout percentage, e.g. ``25``."""
    conn = connect(app.config["DATABASE"])
    if setting in ("on", "off"):
        conn.execute("UPDATE push_flags SET enabled = ?", (setting == "on",))
    else:
        conn.execute("UPDATE push_flags SET rollout_percent = ?", (int(setting),))
    print(dict(conn.execute("SELECT enabled, rollout_percent FROM push_flags").fetchone()))
    conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("push", help="on, off or a rollout percent").add_argument("setting")
    serve = commands.add_parser("serve", help="run the app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=5000)
    commands.add_parser("add-user", help="add a user; prints the API token").add_argument("name")
    args = parser.parse_args()
    if args.command == "add-user":
        print(add_user(args.name))
    elif args.command == "push":
        set_push(args.setting)
    else:
        threading.Thread(target=publish_pokes, name="pokes", daemon=True).start()
        heartbeat = publisher.start_heartbeat(push_off=push_off)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            app.run(args.host, args.port, threaded=True)
        finally:
            heartbeat.stop()  # app_bye: push servers stop waiting for this process


app.config["DATABASE"] = os.environ.get("TODO_DB", "todo.sqlite3")
create_tables()

if __name__ == "__main__":
    main()
