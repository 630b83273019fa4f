"""The asyncio client: carries out the sync controller's actions over HTTP and a push transport.

Every decision (when to poll, reconnect, back off, refresh the token) is the
controller's (tidings.client.controller); this module only moves bytes and
reads the clock. Each request and connection attempt has a timeout; a push
connection that goes quiet is given up by the controller's heartbeat rule.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any
from urllib.parse import urlencode, urljoin

import httpx
import orjson
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from tidings.client import actions as a
from tidings.client import inputs as i
from tidings.client.actions import Status
from tidings.client.controller import DEFAULT_ADVICE, Config, SyncController
from tidings.domain.project import Snapshot, apply_in_place
from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice
from tidings.protocol.errors import CloseCode
from tidings.protocol.push import ClientType, ServerType
from tidings.protocol.telemetry import TELEMETRY_PATH, TelemetryReport
from tidings.tasks import stop_tasks

log = logging.getLogger(__name__)

#: Events asked for per poll (the app's default page; at most 500).
POLL_LIMIT = 100

#: Seconds for any HTTP request (connect, read, write, pool each) and for a push
#: connection's opening handshake.
REQUEST_TIMEOUT = 10.0

#: Largest push message accepted (a full-push poke is at most 16 KiB).
MAX_PUSH_MESSAGE_BYTES = 64 * 1024

SESSION_COOKIE = "tidings_session"
CSRF_COOKIE = "tidings_csrf"
CSRF_HEADER = "X-Tidings-CSRF"

#: HTTP statuses on the SSE endpoint mapped to the WebSocket close codes they stand for.
_SSE_STATUS_CODES = {401: CloseCode.UNAUTHORIZED, 403: CloseCode.FORBIDDEN}


class Transport(StrEnum):
    WS = "ws"
    SSE = "sse"
    #: Socket.IO over its WebSocket transport, through python-socketio's client:
    #: ``pip install "tidings[socketio]"``.
    SOCKETIO = "socketio"


OnApply = Callable[[int, Sequence[dict[str, Any]], Snapshot | None], None]
#: Applies one event to a snapshot in place (the app's projector).
Projector = Callable[[Snapshot, dict[str, Any]], None]
OnReload = Callable[[int, Snapshot], None]
OnStatus = Callable[[Status], None]


@dataclass(frozen=True)
class Endpoints:
    """Where the app answers each request of docs/PROTOCOL.md §1 the client makes;
    ``{project}`` stands for the project's id. The defaults are tidings' own app;
    another app keeps its own URLs and names them here (docs/ADOPTING.md). The
    same keys as the JS client's ``endpoints`` option."""

    config: str = "/api/client-config"
    token: str = "/api/push/token"
    snapshot: str = "/api/projects/{project}"
    events: str = "/api/projects/{project}/events"
    #: Several projects in one request (§1.3); None: one request per project.
    poll: str | None = "/api/poll"
    telemetry: str = TELEMETRY_PATH


@dataclass
class ClientOptions:
    """How to reach the app and what to follow."""

    url: str
    projects: Sequence[int]
    #: An API token (``Authorization: Bearer``), or session cookies (browser-style).
    api_token: str | None = None
    cookies: dict[str, str] = field(default_factory=dict)
    transport: Transport = Transport.WS
    #: Push endpoint; None: the one GET /api/client-config names.
    push_url: str | None = None
    #: Overrides of the controller's config (e.g. a shorter ``poke_delay`` in tests).
    controller: dict[str, Any] = field(default_factory=dict)
    timeout: float = REQUEST_TIMEOUT
    poll_limit: int = POLL_LIMIT
    endpoints: Endpoints = field(default_factory=Endpoints)
    #: Applies one event to a snapshot in place; the default is the tracker's
    #: (tidings.domain.project).
    apply_event: Projector = apply_in_place


class SyncClient:
    """Follows projects and calls back on every applied change, reload and status change.

    ``await client.run()`` runs until ``client.stop()``. Snapshots are loaded at
    start and kept up to date with the pure projector, so ``snapshot(p)`` is
    always the state at the version last applied.
    """

    def __init__(
        self,
        options: ClientOptions,
        *,
        on_apply: OnApply | None = None,
        on_reload: OnReload | None = None,
        on_status: OnStatus | None = None,
        http: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.options = options
        self._on_apply = on_apply
        self._on_reload = on_reload
        self._on_status = on_status
        self._own_http = http is None
        headers = {"Accept": "application/json"}
        if options.api_token:
            headers["Authorization"] = f"Bearer {options.api_token}"
        self._http = http or httpx.AsyncClient(
            base_url=options.url,
            headers=headers,
            cookies=options.cookies,
            timeout=options.timeout,
        )
        if http is not None:
            self._http.headers.update(headers)
        self._clock = clock
        self._rand = rand
        self._inbox: asyncio.Queue[i.Input] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._push: dict[int, PushConnection] = {}
        self._snapshots: dict[int, Snapshot] = {}
        self._stopped = asyncio.Event()
        self._push_url: str | None = options.push_url
        self.controller: SyncController | None = None

    # ----- public surface -------------------------------------------------------

    def snapshot(self, project: int) -> Snapshot | None:
        return self._snapshots.get(project)

    @property
    def status(self) -> Status | None:
        return None if self.controller is None else self.controller.status

    def stop(self) -> None:
        self._stopped.set()

    async def run(self) -> None:
        """Follow the projects until stop(); all connections are closed on the way out."""
        try:
            config = await self._configure()
            self.controller = SyncController(config, self._rand)
            self._execute(self.controller.feed(self._clock(), i.Start()))
            stop = asyncio.ensure_future(self._stopped.wait())
            try:
                while not self._stopped.is_set():
                    deadline = self.controller.next_deadline()
                    timeout = None if deadline is None else max(0.0, deadline - self._clock())
                    get = asyncio.ensure_future(self._inbox.get())
                    done, _ = await asyncio.wait(
                        {get, stop}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                    )
                    if get in done:
                        event: i.Input = get.result()
                    else:
                        get.cancel()
                        if stop in done:
                            break
                        event = i.Tick()
                    self._execute(self.controller.feed(self._clock(), event))
            finally:
                stop.cancel()
        finally:
            await self._shutdown()

    # ----- start-up -------------------------------------------------------------

    async def _configure(self) -> Config:
        """Read GET /api/client-config; without it, poll only (push needs its URL).

        ``push.enabled`` there already folds in the kill switch, which the advice
        carries too and which may flip back on: a client whose transport has a URL
        keeps push possible and lets the latest advice decide.
        """
        opts = self.options
        advice = DEFAULT_ADVICE
        try:
            response = await self._http.get(opts.endpoints.config)
            response.raise_for_status()
            body = response.json()
            advice = Advice.from_json(body["advice"])
            if self._push_url is None:
                urls = (body.get("push") or {}).get("urls") or {}
                self._push_url = _push_url(opts.url, urls.get(str(opts.transport)), opts.transport)
        except (httpx.HTTPError, ValueError, KeyError, TypeError, AttributeError) as exc:
            log.warning("client-config unavailable (%r): polling only", exc)
        config = Config(
            projects=tuple(opts.projects), push=self._push_url is not None, advice=advice
        )
        return replace(config, **opts.controller) if opts.controller else config

    async def _shutdown(self) -> None:
        for connection in list(self._push.values()):
            connection.close()
        self._push.clear()
        await stop_tasks(list(self._tasks), REQUEST_TIMEOUT)
        if self._own_http:
            await self._http.aclose()

    # ----- actions --------------------------------------------------------------

    def _spawn(self, coro: Any) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _execute(self, actions: list[a.Action]) -> None:
        for action in actions:
            match action:
                case a.Poll(projects=projects):
                    self._spawn(self._poll(dict(projects)))
                case a.ReloadSnapshot(project=project):
                    self._spawn(self._reload(project))
                case a.ApplyEvents(project=project, events=events):
                    self._apply(project, events)
                case a.RefreshToken():
                    self._spawn(self._fetch_token())
                case a.ConnectPush(conn=conn, token=token, projects=projects):
                    self._connect(conn, token, projects)
                case a.PushRefresh(conn=conn, token=token, projects=projects):
                    connection = self._push.get(conn)
                    if connection is not None:
                        connection.refresh(token, projects)
                case a.ClosePush(conn=conn):
                    connection = self._push.pop(conn, None)
                    if connection is not None:
                        connection.close()
                case a.StatusChanged(status=status):
                    if self._on_status is not None:
                        self._on_status(status)
                case a.ReportTelemetry(report=report):
                    self._spawn(self._report(report))
                case a.PollAt() | a.ConnectPushAt():
                    pass  # the run loop sleeps until controller.next_deadline()

    def _apply(self, project: int, events: Sequence[dict[str, Any]]) -> None:
        snapshot = self._snapshots.get(project)
        if snapshot is not None:
            for event in events:
                self.options.apply_event(snapshot, event)
        if self._on_apply is not None:
            self._on_apply(project, events, snapshot)

    async def _poll(self, projects: dict[int, int]) -> None:
        if len(projects) > 1 and self.options.endpoints.poll is None:
            for project, since in projects.items():
                self._spawn(self._poll({project: since}))
            return
        try:
            if len(projects) == 1:
                ((project, since),) = projects.items()
                await self._poll_one(project, since)
            else:
                await self._poll_many(projects)
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.info("poll failed: %r", exc)
            for project in projects:
                self._inbox.put_nowait(i.PollFailed(project, None))

    async def _poll_one(self, project: int, since: int) -> None:
        response = await self._http.get(
            self.options.endpoints.events.format(project=project),
            params={"since": since, "limit": self.options.poll_limit},
            headers={"If-None-Match": f'"{since}"'},
        )
        if response.status_code == 304:
            header = response.headers.get(ADVICE_HEADER)
            version = response.headers.get(VERSION_HEADER)
            self._inbox.put_nowait(
                i.PollResult(
                    project=project,
                    version=int(version) if version else since,
                    advice=Advice.parse_header(header) if header else None,
                )
            )
        elif response.status_code == 200:
            self._inbox.put_nowait(_poll_result(project, response.json()))
        else:
            self._inbox.put_nowait(_failed(project, response))

    async def _poll_many(self, projects: dict[int, int]) -> None:
        params = httpx.QueryParams(
            [*(("p", f"{p}:{v}") for p, v in projects.items()), ("limit", self.options.poll_limit)]
        )
        assert self.options.endpoints.poll is not None
        response = await self._http.get(self.options.endpoints.poll, params=params)
        if response.status_code != 200:
            for project in projects:
                self._inbox.put_nowait(_failed(project, response))
            return
        results = response.json()["projects"]
        for project in projects:
            body = results.get(str(project))
            if not isinstance(body, dict) or "error" in body:
                self._inbox.put_nowait(i.PollFailed(project, 404))
            else:
                self._inbox.put_nowait(_poll_result(project, body))

    async def _reload(self, project: int) -> None:
        try:
            response = await self._http.get(self.options.endpoints.snapshot.format(project=project))
            if response.status_code != 200:
                self._inbox.put_nowait(_failed(project, response))
                return
            snapshot: Snapshot = response.json()
            version = int(snapshot["version"])
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.info("snapshot load failed: %r", exc)
            self._inbox.put_nowait(i.PollFailed(project, None))
            return
        self._snapshots[project] = snapshot
        if self._on_reload is not None:
            self._on_reload(project, snapshot)
        self._inbox.put_nowait(i.SnapshotLoaded(project, version))

    async def _fetch_token(self) -> None:
        try:
            response = await self._http.post(
                self.options.endpoints.token,
                json={"projects": list(self.options.projects)},
                headers=self._csrf(),
            )
            if response.status_code != 200:
                self._inbox.put_nowait(i.TokenFailed(response.status_code))
                return
            body = response.json()
            self._inbox.put_nowait(i.TokenFetched(str(body["token"]), float(body["expires_at"])))
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            log.info("push token fetch failed: %r", exc)
            self._inbox.put_nowait(i.TokenFailed(None))

    async def _report(self, report: TelemetryReport) -> None:
        with contextlib.suppress(httpx.HTTPError):
            await self._http.post(
                self.options.endpoints.telemetry, json=report.to_json(), headers=self._csrf()
            )

    def _csrf(self) -> dict[str, str]:
        token = self.options.cookies.get(CSRF_COOKIE)
        return {CSRF_HEADER: token} if token else {}

    def _connect(self, conn: int, token: str, projects: dict[int, int]) -> None:
        if self._push_url is None:
            self._inbox.put_nowait(i.PushClosed(conn, None))
            return
        connection = _transport(self.options.transport)(self, conn, self._push_url, token, projects)
        self._push[conn] = connection
        connection.start()


def _transport(transport: Transport) -> type[PushConnection]:
    if transport == Transport.SSE:
        return _SsePush
    if transport == Transport.SOCKETIO:
        # Imported here: the Socket.IO client (python-socketio, aiohttp) is optional.
        from tidings.client.sio_push import SocketIoPush

        return SocketIoPush
    return _WebSocketPush


def _push_url(base: str, found: object, transport: Transport) -> str | None:
    """The advertised endpoint made absolute (a relative ``/ws`` gets a ws: scheme)."""
    if not isinstance(found, str) or not found:
        return None
    url = urljoin(base, found)
    if transport == Transport.WS and url.startswith(("http://", "https://")):
        url = "ws" + url.removeprefix("http")
    return url


def _poll_result(project: int, body: dict[str, Any]) -> i.PollResult:
    advice = body.get("advice")
    return i.PollResult(
        project=project,
        version=int(body["version"]),
        events=tuple(body.get("events") or ()),
        has_more=bool(body.get("has_more")),
        reload=body.get("reload"),
        advice=None if advice is None else Advice.from_json(advice),
    )


def _failed(project: int, response: httpx.Response) -> i.PollFailed:
    retry_after: float | None = None
    raw = response.headers.get("Retry-After")
    if raw is not None:
        with contextlib.suppress(ValueError):
            retry_after = max(0.0, float(raw))
    return i.PollFailed(project, response.status_code, retry_after)


def _subscribe_message(kind: ClientType, token: str, projects: dict[int, int]) -> str:
    body = {"type": str(kind), "token": token, "projects": {str(p): v for p, v in projects.items()}}
    return orjson.dumps(body).decode()


class PushConnection:
    """One push connection, numbered by the controller; reports what it hears to the inbox."""

    def __init__(
        self, client: SyncClient, conn: int, url: str, token: str, projects: dict[int, int]
    ) -> None:
        self.client = client
        self.conn = conn
        self.url = url
        self.token = token
        self.projects = projects
        self.tasks: list[asyncio.Task[None]] = []
        self.closing = False
        #: From a ``close`` message (SSE has no close frame to carry it).
        self.close_code: int | None = None

    def start(self) -> None:
        self.tasks.append(self.client._spawn(self._run()))

    def close(self) -> None:
        """Closed at the controller's request: nothing more is reported for it."""
        self.closing = True
        for task in self.tasks:
            task.cancel()

    def refresh(self, token: str, projects: dict[int, int]) -> None:
        raise NotImplementedError

    def report(self, event: i.Input) -> None:
        if not self.closing:
            self.client._inbox.put_nowait(event)

    def message(self, data: str | bytes) -> None:
        if len(data) > MAX_PUSH_MESSAGE_BYTES:
            return
        try:
            body = orjson.loads(data)
        except orjson.JSONDecodeError:
            return
        self.received(body)

    def received(self, body: object) -> None:
        """One decoded push message (§4.1), whatever carried it."""
        if isinstance(body, dict) and body.get("type") == ServerType.CLOSE:
            code = body.get("code")
            self.close_code = code if type(code) is int else None
            return
        event = i.from_push_message(self.conn, body)
        if event is not None:
            self.report(event)

    async def _run(self) -> None:
        raise NotImplementedError


class _WebSocketPush(PushConnection):
    """``/ws``: the subscribe goes as the first text frame; ``refresh`` on the same socket."""

    ws: ClientConnection | None = None

    async def _run(self) -> None:
        code: int | None = None
        try:
            async with ws_connect(
                self.url,
                open_timeout=self.client.options.timeout,
                close_timeout=2,
                max_size=MAX_PUSH_MESSAGE_BYTES,
                ping_interval=None,  # liveness is the server's heartbeat, judged by the controller
            ) as ws:
                self.ws = ws
                self.report(i.PushConnected(self.conn))
                await ws.send(_subscribe_message(ClientType.SUBSCRIBE, self.token, self.projects))
                async for data in ws:
                    self.message(data)
                code = ws.close_code
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
        except InvalidStatus as exc:
            code = _SSE_STATUS_CODES.get(exc.response.status_code)
        except (OSError, TimeoutError, WebSocketException) as exc:
            log.info("push connection %d failed: %r", self.conn, exc)
        self.report(i.PushClosed(self.conn, code))

    def refresh(self, token: str, projects: dict[int, int]) -> None:
        ws = self.ws
        if ws is not None:
            message = _subscribe_message(ClientType.REFRESH, token, projects)
            self.client._spawn(_send_quietly(ws, message))


async def _send_quietly(ws: ClientConnection, message: str) -> None:
    with contextlib.suppress(ConnectionClosed):
        await asyncio.wait_for(ws.send(message), REQUEST_TIMEOUT)


class _SsePush(PushConnection):
    """``/sse?token=...&p=7:42``: one event per message. A refresh opens a second stream
    with the new token and drops the first once the second has subscribed."""

    def _stream_url(self, token: str, projects: dict[int, int]) -> str:
        query = [("token", token), *(("p", f"{p}:{v}") for p, v in projects.items())]
        sep = "&" if "?" in self.url else "?"
        return f"{self.url}{sep}{urlencode(query)}"

    async def _run(self) -> None:
        code = await self._stream(self._stream_url(self.token, self.projects), None)
        self.report(i.PushClosed(self.conn, code))

    async def _stream(self, url: str, replacing: asyncio.Task[None] | None) -> int | None:
        http = self.client._http
        timeout = httpx.Timeout(self.client.options.timeout, read=None)
        request = http.build_request(
            "GET", url, headers={"Accept": "text/event-stream"}, timeout=timeout
        )
        # The push server is another origin and needs only the push token in the URL:
        # the app's credentials (API token, session cookie) are not sent to it.
        for name in ("Authorization", "Cookie"):
            request.headers.pop(name, None)
        try:
            response = await http.send(request, stream=True)
            try:
                if response.status_code != 200:
                    return _SSE_STATUS_CODES.get(response.status_code)
                self.report(i.PushConnected(self.conn))
                async for data in _sse_data(response.aiter_lines()):
                    if replacing is not None:
                        replacing.cancel()
                        replacing = None
                    self.message(data)
            finally:
                await response.aclose()
        except httpx.HTTPError as exc:
            log.info("push stream %d failed: %r", self.conn, exc)
        return self.close_code

    def refresh(self, token: str, projects: dict[int, int]) -> None:
        old = self.tasks[-1] if self.tasks else None
        url = self._stream_url(token, projects)

        async def takeover() -> None:
            code = await self._stream(url, old)
            self.report(i.PushClosed(self.conn, code))

        self.tasks = [*(t for t in self.tasks if not t.done()), self.client._spawn(takeover())]


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined by newlines)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
