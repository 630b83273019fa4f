"""A small stand-in for the app's HTTP API and a push server, for driver tests only.

The HTTP side is an httpx.MockTransport (no sockets); the WebSocket push server
is a real ``websockets`` server on loopback. Both follow docs/PROTOCOL.md closely
enough for the client; the real servers get their own integration tests.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from websockets.asyncio.server import Server, ServerConnection, serve

from tidings.domain.project import Snapshot, apply, empty
from tidings.protocol.advice import ADVICE_HEADER, VERSION_HEADER, Advice
from tidings.protocol.telemetry import decode_report

PROJECT = 7


class FakeApp:
    """One project's history, the poll API, push tokens and (optionally) push."""

    def __init__(self, advice: Advice, *, push: bool) -> None:
        self.advice = advice
        self.push_enabled = push
        self.events: list[dict[str, Any]] = []
        self.snapshot: Snapshot = empty(PROJECT)
        self.tokens_issued = 0
        self.polls = 0
        self.telemetry: list[Any] = []
        self.ws_url = "ws://127.0.0.1:1/ws"
        self.sse_queues: list[asyncio.Queue[str]] = []
        self.ws_clients: set[ServerConnection] = set()
        self.ws_close_first_with: int | None = None
        self.sse_close_first_with: int | None = None
        self.subscribes: list[dict[str, Any]] = []
        self._server: Server | None = None
        self.change("project_created", {"name": "Website", "owner": {"user_id": 1, "name": "Ada"}})

    # ----- changing the project --------------------------------------------------

    def change(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        event = {
            "version": self.snapshot["version"] + 1,
            "type": kind,
            "data": data,
            "actor": 1,
            "ts": time.time(),
        }
        self.snapshot = apply(self.snapshot, event)
        self.events.append(event)
        return event

    async def publish(self, event: dict[str, Any]) -> None:
        poke = json.dumps(
            {"type": "poke", "project": PROJECT, "version": event["version"], "ts": event["ts"]}
        )
        for ws in list(self.ws_clients):
            await ws.send(poke)
        for queue in self.sse_queues:
            queue.put_nowait(poke)

    # ----- HTTP ------------------------------------------------------------------

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    async def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        if path == "/api/client-config":
            return httpx.Response(200, json=self.client_config())
        if path == "/sse":
            # A push server: the push token in the URL is the only credential; the
            # app's own (API token, session cookie) must not reach it.
            if "authorization" in request.headers or "cookie" in request.headers:
                return httpx.Response(400, json={"error": "bad_request", "detail": "app creds"})
            return self.sse(request)
        if request.headers.get("Authorization") != "Bearer api-token":
            return httpx.Response(401, json={"error": "unauthorized", "detail": "no"})
        if path == f"/api/projects/{PROJECT}" and method == "GET":
            return httpx.Response(200, json=self.snapshot)
        if path == f"/api/projects/{PROJECT}/events":
            return self.poll(request)
        if path == "/api/push/token" and method == "POST":
            self.tokens_issued += 1
            body = {"token": f"tok-{self.tokens_issued}", "expires_at": time.time() + 600}
            return httpx.Response(200, json={**body, "projects": [PROJECT]})
        if path == "/api/telemetry" and method == "POST":
            self.telemetry.append(decode_report(request.content))
            return httpx.Response(204)
        return httpx.Response(404, json={"error": "not_found", "detail": path})

    def client_config(self) -> dict[str, Any]:
        return {
            "push": {
                "enabled": self.push_enabled,
                "urls": {"ws": self.ws_url, "sse": "http://app/sse"},
                "token_url": "/api/push/token",
            },
            "advice": self.advice.to_json(),
            "flags": {"push": self.push_enabled},
        }

    def poll(self, request: httpx.Request) -> httpx.Response:
        self.polls += 1
        since = int(request.url.params.get("since", "0"))
        limit = int(request.url.params.get("limit", "100"))
        version = self.snapshot["version"]
        headers = {
            "ETag": f'"{version}"',
            VERSION_HEADER: str(version),
            ADVICE_HEADER: self.advice.header(),
        }
        if request.headers.get("If-None-Match") == f'"{version}"':
            return httpx.Response(304, headers=headers)
        events = [e for e in self.events if e["version"] > since][:limit]
        body = {
            "project": PROJECT,
            "version": version,
            "since": since,
            "events": events,
            "has_more": bool(events) and events[-1]["version"] < version,
            "reload": "ahead" if since > version else None,
            "advice": self.advice.to_json(),
        }
        return httpx.Response(200, json=body, headers=headers)

    def sse(self, request: httpx.Request) -> httpx.Response:
        if not request.url.params.get("token", "").startswith("tok-"):
            return httpx.Response(401)
        queue: asyncio.Queue[str] = asyncio.Queue()
        self.sse_queues.append(queue)
        held = {p.split(":")[0]: int(p.split(":")[1]) for p in request.url.params.get_list("p")}
        token = request.url.params["token"]
        self.subscribes.append({"transport": "sse", "token": token, "projects": held})
        if self.sse_close_first_with is not None:
            code, self.sse_close_first_with = self.sse_close_first_with, None
            close = json.dumps({"type": "close", "code": code, "reason": "token expired"})
            return httpx.Response(
                200, headers={"Content-Type": "text/event-stream"}, content=f"data: {close}\n\n"
            )
        subscribed = {
            "type": "subscribed",
            "projects": {str(PROJECT): self.snapshot["version"]},
            "state": "ok",
            "heartbeat": 25,
        }

        async def body() -> AsyncIterator[bytes]:
            yield f"data: {json.dumps(subscribed)}\n\n".encode()
            while True:
                message = await queue.get()
                yield f"event: message\ndata: {message}\n\n".encode()

        return httpx.Response(200, headers={"Content-Type": "text/event-stream"}, content=body())

    # ----- WebSocket push ----------------------------------------------------------

    async def start_ws(self) -> None:
        self._server = await serve(self._ws_handler, "127.0.0.1", 0)
        port = next(iter(self._server.sockets)).getsockname()[1]
        self.ws_url = f"ws://127.0.0.1:{port}/ws"

    async def stop_ws(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _ws_handler(self, ws: ServerConnection) -> None:
        first = json.loads(await ws.recv())
        self.subscribes.append({"transport": "ws", **first})
        if self.ws_close_first_with is not None:
            code, self.ws_close_first_with = self.ws_close_first_with, None
            await ws.close(code, "token expired")
            return
        await ws.send(
            json.dumps(
                {
                    "type": "subscribed",
                    "projects": {str(PROJECT): self.snapshot["version"]},
                    "state": "ok",
                    "heartbeat": 25,
                }
            )
        )
        self.ws_clients.add(ws)
        try:
            async for message in ws:
                self.subscribes.append({"transport": "ws", **json.loads(message)})
        finally:
            self.ws_clients.discard(ws)
