"""A crowd of lean clients for the herd and freshness benchmarks: one process.

Each client is the real sans-I/O sync controller (tidings.client.controller, the
same rules as the browser's) driven by a lean driver: raw HTTP/1.1 keep-alive
connections to the app and a raw WebSocket to the push server, both counting
every byte they write and read (HTTP headers and WebSocket framing included;
TCP/IP headers not). A full SyncClient (httpx, websockets, a task per client)
costs several times the CPU per poll, too much for thousands of clients on one
core; this one differs only in not keeping snapshots (events are counted, not
applied to a board).

Talks to its parent on stdin/stdout, one JSON object per line:
    -> {"progress": {...}}                   every 0.5 s: clients, live, by status, applied
    <- {"cmd": "mark", "name": "...", "at": T} snapshot the byte and request counters
                                              (dated T when given, else now)
    <- {"cmd": "warm"}                       each client opens a keep-alive connection
    <- {"cmd": "report", "path": "..."}      write marks and staleness samples, answer "reported"
    <- {"cmd": "quit"} (or EOF)              close everything and exit

    python bench/lib/crowd.py <spec.json>
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for fanout_load

from fanout_load import client_frame

from tidings.client import actions as a
from tidings.client import inputs as i
from tidings.client.controller import Config, SyncController
from tidings.client.driver import _subscribe_message
from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice
from tidings.protocol.push import ClientType

#: Seconds for any HTTP exchange or WebSocket handshake (connect included).
REQUEST_TIMEOUT = 10.0
#: Largest response head / body / WebSocket message read (a full-push poke is <= 16 KiB).
MAX_HEAD = 16 * 1024
MAX_BODY = 4 * 1024 * 1024
MAX_MESSAGE = 64 * 1024
#: Staleness samples kept per process (beyond it, samples are counted, not kept).
MAX_SAMPLES = 2_000_000


class Counters:
    """Bytes and requests of one group of clients (``active`` or ``idle`` projects)."""

    __slots__ = ("app_in", "app_out", "connects", "errors", "push_in", "push_out", "requests")

    def __init__(self) -> None:
        self.app_out = self.app_in = self.push_out = self.push_in = 0
        self.requests: dict[str, int] = {}
        self.connects = 0
        #: Failed requests by "kind status" or "kind ExceptionName".
        self.errors: dict[str, int] = {}

    def error(self, kind: str, reason: object) -> None:
        key = f"{kind} {reason if isinstance(reason, int) else type(reason).__name__}"
        self.errors[key] = self.errors.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "app_bytes_out": self.app_out,
            "app_bytes_in": self.app_in,
            "push_bytes_out": self.push_out,
            "push_bytes_in": self.push_in,
            "requests": dict(self.requests),
            "app_connects": self.connects,
            "errors": dict(self.errors),
        }


class HttpError(Exception):
    pass


class HttpConn:
    """One HTTP/1.1 keep-alive connection; the server may close it when idle (uvicorn: 5 s)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def exchange(
        self, head: bytes, body: bytes, counters: Counters
    ) -> tuple[int, dict[str, str], bytes, bool]:
        self.writer.write(head + body)
        counters.app_out += len(head) + len(body)
        raw = await self.reader.readuntil(b"\r\n\r\n")
        if len(raw) > MAX_HEAD:
            raise HttpError("response head too large")
        counters.app_in += len(raw)
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        content = b""
        if "content-length" in headers:
            length = int(headers["content-length"])
            if length > MAX_BODY:
                raise HttpError("response body too large")
            content = await self.reader.readexactly(length)
        elif headers.get("transfer-encoding") == "chunked":
            parts = []
            while True:
                size_line = await self.reader.readuntil(b"\r\n")
                size = int(size_line.split(b";")[0], 16)
                chunk = await self.reader.readexactly(size + 2)
                counters.app_in += len(size_line) + len(chunk)
                if size == 0:
                    break
                parts.append(chunk[:-2])
                if sum(map(len, parts)) > MAX_BODY:
                    raise HttpError("response body too large")
            content = b"".join(parts)
            counters.app_in -= len(content)  # counted below with the body
        counters.app_in += len(content)
        keep = headers.get("connection", "").lower() != "close"
        return status, headers, content, keep

    def close(self) -> None:
        self.writer.close()


class Crowd:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec
        self.host: str = spec["app_host"]
        self.port: int = spec["app_port"]
        self.push_host: str | None = spec.get("push_host")
        self.push_port: int | None = spec.get("push_port")
        self.sources: list[str] = spec.get("sources") or ["127.0.0.1"]
        self.auth = f"Authorization: Bearer {spec['api_token']}\r\n"
        self.groups = {"active": Counters(), "idle": Counters()}
        self.idle_projects = set(spec.get("idle_projects", []))
        self.samples: list[tuple[float, int, int, int, str]] = []
        self.dropped_samples = 0
        self.applied: dict[int, int] = {}  # version -> clients that applied it (herd)
        self.marks: list[dict[str, Any]] = []
        self.clients: list[LeanClient] = []
        self.rng = random.Random(spec.get("seed", 1))

    def sample(self, project: int, version: int, staleness_ms: int, via: str) -> None:
        self.applied[version] = self.applied.get(version, 0) + 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append((time.time(), project, version, staleness_ms, via))
        else:
            self.dropped_samples += 1

    def mark(self, name: str, at: float | None = None) -> None:
        self.marks.append(
            {
                "name": name,
                "t": at if at is not None else time.time(),
                "groups": {k: v.to_json() for k, v in self.groups.items()},
                "clients": {
                    "active": sum(1 for c in self.clients if c.group == "active"),
                    "idle": sum(1 for c in self.clients if c.group == "idle"),
                },
            }
        )

    def progress(self) -> dict[str, Any]:
        statuses: dict[str, int] = {}
        for c in self.clients:
            status = str(c.controller.status)
            statuses[status] = statuses.get(status, 0) + 1
        return {
            "clients": len(self.clients),
            "status": statuses,
            "push_open": sum(1 for c in self.clients if c.ws_task is not None),
            "applied": {str(v): n for v, n in self.applied.items()},
        }


class LeanClient:
    """One client: the controller's actions carried out on raw sockets."""

    def __init__(self, crowd: Crowd, index: int, project: int, version: int | None) -> None:
        self.crowd = crowd
        self.loop = asyncio.get_running_loop()
        self.project = project
        self.group = "idle" if project in crowd.idle_projects else "active"
        self.counters = crowd.groups[self.group]
        self.source = crowd.sources[index % len(crowd.sources)]
        spec = crowd.spec
        overrides = spec.get("controller", {})
        config = Config(
            projects=(project,),
            # No version: the client loads the snapshot first, as a page load does.
            versions={} if version is None else {project: version},
            push=crowd.push_port is not None,
            advice=Advice.from_json(spec["advice"]),
            **overrides,
        )
        self.rand: Callable[[], float] = random.Random(
            spec.get("seed", 1) * 1_000_003 + index
        ).random
        self.controller = SyncController(config, self.rand)
        self.idle: list[HttpConn] = []
        self.timer: asyncio.TimerHandle | None = None
        self.ws_task: asyncio.Task[None] | None = None
        self.ws_writer: asyncio.StreamWriter | None = None
        self.ws_conn: int | None = None
        self.tasks: set[asyncio.Task[Any]] = set()
        self.via_next: str = "poll"

    # ----- the controller loop ----------------------------------------------------

    def start(self) -> None:
        self.feed(i.Start())

    def feed(self, event: i.Input) -> None:
        actions = self.controller.feed(time.time(), event)
        self.execute(actions, event)
        deadline = self.controller.next_deadline()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if deadline is not None:
            delay = max(0.0, deadline - time.time())
            self.timer = self.loop.call_later(delay, self.feed, i.Tick())

    def spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def execute(self, actions: list[a.Action], cause: i.Input) -> None:
        for action in actions:
            match action:
                case a.Poll(projects=projects):
                    self.spawn(self.poll(dict(projects)))
                case a.ApplyEvents(project=project, events=events):
                    via = "full_push" if isinstance(cause, i.PokeReceived) else "poll"
                    now = time.time()
                    for e in events:
                        ms = max(0, round((now - float(e["ts"])) * 1000))
                        self.crowd.sample(project, int(e["version"]), ms, via)
                case a.ReloadSnapshot(project=project):
                    self.spawn(self.reload(project))
                case a.RefreshToken():
                    self.spawn(self.fetch_token())
                case a.ConnectPush(conn=conn, token=token, projects=projects):
                    self.close_push()
                    self.ws_conn = conn
                    self.ws_task = asyncio.ensure_future(self.websocket(conn, token, projects))
                case a.ClosePush(conn=conn):
                    if conn == self.ws_conn:
                        self.close_push()
                case a.PushRefresh(token=token, projects=projects):
                    writer = self.ws_writer
                    if writer is not None:
                        self.ws_send(
                            writer, _subscribe_message(ClientType.REFRESH, token, projects)
                        )
                case a.ReportTelemetry(report=report):
                    self.spawn(self.telemetry(report.to_json()))
                case _:
                    pass  # PollAt, ConnectPushAt, StatusChanged: the timer follows next_deadline()

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.close_push()
        for task in list(self.tasks):
            task.cancel()
        for conn in self.idle:
            conn.close()
        self.idle.clear()

    # ----- HTTP -------------------------------------------------------------------

    async def request(
        self, kind: str, method: str, path: str, headers: str = "", body: bytes = b""
    ) -> tuple[int, dict[str, str], bytes]:
        crowd = self.crowd
        counters = self.counters
        counters.requests[kind] = counters.requests.get(kind, 0) + 1
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {crowd.host}:{crowd.port}\r\n"
            f"Accept: application/json\r\n{crowd.auth}{headers}"
        )
        if body or method == "POST":
            head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        data = (head + "\r\n").encode("latin-1")
        while True:
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self.connect()
            try:
                status, hdrs, content, keep = await asyncio.wait_for(
                    conn.exchange(data, body, counters), REQUEST_TIMEOUT
                )
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
                conn.close()
                # A kept-alive connection the server closed while idle (uvicorn: after
                # 5 s): retry, as browsers do, until a fresh connection fails.
                if reused:
                    continue
                raise
            if keep:
                self.idle.append(conn)
            else:
                conn.close()
            return status, hdrs, content

    async def connect(self) -> HttpConn:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(
                self.crowd.host, self.crowd.port, local_addr=(self.source, 0), limit=MAX_HEAD
            ),
            REQUEST_TIMEOUT,
        )
        self.counters.connects += 1
        return HttpConn(reader, writer)

    async def poll(self, projects: dict[int, int]) -> None:
        ((project, since),) = projects.items()
        try:
            status, headers, content = await self.request(
                "poll",
                "GET",
                f"/api/projects/{project}/events?since={since}&limit=100",
                f'If-None-Match: "{since}"\r\n',
            )
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.counters.error("poll", exc)
            self.feed(i.PollFailed(project, None))
            return
        if status == 304:
            header = headers.get(ADVICE_HEADER.lower())
            version = headers.get(VERSION_HEADER.lower())
            self.feed(
                i.PollResult(
                    project=project,
                    version=int(version) if version else since,
                    advice=Advice.parse_header(header) if header else None,
                )
            )
        elif status == 200:
            body = orjson.loads(content)
            advice = body.get("advice")
            self.feed(
                i.PollResult(
                    project=project,
                    version=int(body["version"]),
                    events=tuple(body.get("events") or ()),
                    has_more=bool(body.get("has_more")),
                    reload=body.get("reload"),
                    advice=None if advice is None else Advice.from_json(advice),
                )
            )
        else:
            self.counters.error("poll", status)
            retry = headers.get("retry-after")
            self.feed(i.PollFailed(project, status, float(retry) if retry else None))

    async def reload(self, project: int) -> None:
        try:
            status, _, content = await self.request("snapshot", "GET", f"/api/projects/{project}")
            if status != 200:
                self.counters.error("snapshot", status)
                self.feed(i.PollFailed(project, status))
                return
            self.feed(i.SnapshotLoaded(project, int(orjson.loads(content)["version"])))
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.counters.error("snapshot", exc)
            self.feed(i.PollFailed(project, None))

    async def fetch_token(self) -> None:
        try:
            status, _, content = await self.request(
                "token", "POST", "/api/push/token", body=orjson.dumps({"projects": [self.project]})
            )
            if status != 200:
                self.counters.error("token", status)
                self.feed(i.TokenFailed(status))
                return
            body = orjson.loads(content)
            self.feed(i.TokenFetched(str(body["token"]), float(body["expires_at"])))
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.counters.error("token", exc)
            self.feed(i.TokenFailed(None))

    async def telemetry(self, report: dict[str, Any]) -> None:
        try:
            status, _, _ = await self.request(
                "telemetry", "POST", "/api/telemetry", body=orjson.dumps(report)
            )
            if status != 204:
                self.counters.error("telemetry", status)
        except (OSError, HttpError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            self.counters.error("telemetry", exc)

    # ----- WebSocket ----------------------------------------------------------------

    def close_push(self) -> None:
        if self.ws_task is not None:
            self.ws_task.cancel()
            self.ws_task = None
        if self.ws_writer is not None:
            self.ws_writer.close()
            self.ws_writer = None
        self.ws_conn = None

    def ws_send(self, writer: asyncio.StreamWriter, text: str, opcode: int = 0x1) -> None:
        frame = client_frame(text.encode(), opcode)
        writer.write(frame)
        self.counters.push_out += len(frame)

    async def websocket(self, conn: int, token: str, projects: dict[int, int]) -> None:
        code: int | None = None
        writer: asyncio.StreamWriter | None = None
        try:
            assert self.crowd.push_host is not None and self.crowd.push_port is not None
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    self.crowd.push_host,
                    self.crowd.push_port,
                    local_addr=(self.source, 0),
                    limit=MAX_MESSAGE + 16,
                ),
                REQUEST_TIMEOUT,
            )
            key = base64.b64encode(os.urandom(16)).decode()
            hello = (
                f"GET /ws HTTP/1.1\r\nHost: {self.crowd.push_host}:{self.crowd.push_port}\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
            writer.write(hello)
            self.counters.push_out += len(hello)
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), REQUEST_TIMEOUT)
            self.counters.push_in += len(head)
            if not head.startswith(b"HTTP/1.1 101"):
                raise ConnectionError(head.split(b"\r\n", 1)[0].decode("latin-1"))
            self.ws_writer = writer
            self.feed(i.PushConnected(conn))
            self.ws_send(writer, _subscribe_message(ClientType.SUBSCRIBE, token, projects))
            while True:
                b0, b1 = await reader.readexactly(2)
                n = b1 & 0x7F
                extra = 0
                if n == 126:
                    n = int.from_bytes(await reader.readexactly(2), "big")
                    extra = 2
                elif n == 127:
                    n = int.from_bytes(await reader.readexactly(8), "big")
                    extra = 8
                if n > MAX_MESSAGE:
                    break
                payload = await reader.readexactly(n)
                self.counters.push_in += 2 + extra + n
                opcode = b0 & 0x0F
                if opcode == 0x1:
                    body = orjson.loads(payload)
                    event = i.from_push_message(conn, body)
                    if event is not None and self.ws_conn == conn:
                        self.feed(event)
                elif opcode == 0x8:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                    break
                elif opcode == 0x9:
                    frame = client_frame(payload, 0xA)
                    writer.write(frame)
                    self.counters.push_out += len(frame)
        except asyncio.CancelledError:
            if writer is not None:
                writer.close()
            raise
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        if writer is not None:
            writer.close()
        if self.ws_conn == conn:
            self.ws_task = None
            self.ws_writer = None
            self.feed(i.PushClosed(conn, code))


def write_report(crowd: Crowd, path: str) -> None:
    data = {"marks": crowd.marks, "samples": crowd.samples, "dropped": crowd.dropped_samples}
    Path(path).write_text(json.dumps(data))


def emit(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def main(spec: dict[str, Any]) -> None:
    crowd = Crowd(spec)
    # Clients start spread over ``start_over`` seconds (token fetches and connects
    # at a steady rate rather than all at once).
    start_over = float(spec.get("start_over", 0.0))
    plan = spec["clients"]  # [[project, version], ...]
    stop = asyncio.Event()

    async def starter() -> None:
        for n, (project, version) in enumerate(plan):
            held = None if version is None else int(version)
            client = LeanClient(crowd, spec.get("index_base", 0) + n, int(project), held)
            crowd.clients.append(client)
            client.start()
            if start_over > 0:
                await asyncio.sleep(start_over / len(plan))
            elif n % 200 == 199:
                await asyncio.sleep(0)

    async def reporter() -> None:
        while not stop.is_set():
            emit({"progress": crowd.progress()})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def commands() -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                break
            cmd = json.loads(line)
            if cmd["cmd"] == "mark":
                crowd.mark(cmd["name"], cmd.get("at"))
                emit({"marked": cmd["name"]})
            elif cmd["cmd"] == "report":
                write_report(crowd, cmd["path"])
                emit({"reported": cmd["path"]})
            elif cmd["cmd"] == "warm":
                # One up-to-date poll per client outside the controller: each then
                # holds a kept-alive connection, as behind a load balancer.
                async def warm(c: LeanClient) -> None:
                    since = c.controller.version(c.project) or 0
                    with contextlib.suppress(
                        OSError, HttpError, TimeoutError, asyncio.IncompleteReadError, ValueError
                    ):
                        await c.request(
                            "warm",
                            "GET",
                            f"/api/projects/{c.project}/events?since={since}&limit=100",
                            f'If-None-Match: "{since}"\r\n',
                        )

                await asyncio.gather(*(warm(c) for c in crowd.clients))
                emit({"warmed": len(crowd.clients)})
            elif cmd["cmd"] == "quit":
                break

    tasks = [asyncio.ensure_future(starter()), asyncio.ensure_future(reporter())]
    await commands()
    stop.set()
    for client in crowd.clients:
        client.stop()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


if __name__ == "__main__":
    uvloop.run(main(json.loads(Path(sys.argv[1]).read_text())))
